//! Per-key write locks: writes to one key (write-through, write-behind) run one at a time, so
//! the cache and the database see them in the same order.

use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use quick_cache::DefaultHashBuilder;
use tokio::sync::{Mutex, MutexGuard};

use crate::stats::{Counters, bump};

/// Number of per-key write lock stripes.
const STRIPES: usize = 1024;

/// Serialises writes to one key (write-through, write-behind) so that the cache ends with the
/// value of the last write the database applied. Striped: keys that share a stripe also share
/// the lock, which costs write concurrency, never correctness.
pub(crate) struct KeyLocks {
    hasher: DefaultHashBuilder,
    stripes: Box<[Mutex<()>]>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for KeyLocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyLocks")
            .field("stripes", &self.stripes.len())
            .finish()
    }
}

impl KeyLocks {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Self {
            hasher: DefaultHashBuilder::default(),
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            counters,
        }
    }

    /// Waits for the key's write lock; a wait is counted in `write_lock_waits`.
    pub(crate) async fn lock<K: Hash>(&self, key: &K) -> MutexGuard<'_, ()> {
        let stripe = &self.stripes[(self.hasher.hash_one(key) as usize) % STRIPES];
        match stripe.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                bump(&self.counters.write_lock_waits);
                stripe.lock().await
            }
        }
    }
}
