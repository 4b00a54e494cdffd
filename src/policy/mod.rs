//! The four policies' read and write paths (DESIGN section 1), one file each, as methods on
//! the per-entity state that [`Repository`](crate::Repository) dispatches to.

pub(crate) mod cache_aside;
pub(crate) mod in_transaction;
pub(crate) mod read_through;
pub(crate) mod write_behind;
pub(crate) mod write_through;

use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::time::Duration;

use quick_cache::DefaultHashBuilder;
use tokio::sync::{Mutex, MutexGuard};

use crate::stats::{Counters, bump};

/// Retries of a write the database refused for a deadlock or a busy lock; the waits double
/// from [`FIRST_RETRY`], about 1.3 s in all, so a writer holding SQLite's lock can finish.
const WRITE_RETRIES: u32 = 7;
const FIRST_RETRY: Duration = Duration::from_millis(10);

/// Runs one autocommit write statement, again if the database refused it for a deadlock or
/// a busy lock (SQLite returns "database is locked" at once, without waiting, when waiting
/// could deadlock). A refused statement did not apply, so running it again is safe. Each
/// retry is counted in `write_retries`. Not for writes inside a caller's transaction, which
/// the refusal has aborted.
pub(crate) async fn retrying<T, F, Fut>(
    counters: &Counters,
    mut write: F,
) -> Result<T, sea_orm::DbErr>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, sea_orm::DbErr>>,
{
    let mut wait = FIRST_RETRY;
    for _ in 0..WRITE_RETRIES {
        match write().await {
            Err(err) if crate::outbox::is_transient(&err) => {
                bump(&counters.write_retries);
                tracing::debug!(%err, ?wait, "write refused for a lock; retrying");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    write().await
}

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
