//! [`CachedConnectionTrait`]: what a repository's `*_with` methods accept as their last
//! argument, as SeaORM's own methods take `&C: ConnectionTrait` last: a [`CachedTransaction`]
//! (the write joins it, and the cache follows its outermost commit) or a [`CachedConnection`]
//! (the write runs in a transaction of its own, committed before the method returns).

use sea_orm::{DbErr, TransactionTrait};

use crate::connection::{CachedConnection, CachedTransaction};

/// A connection of the cache layer: [`CachedConnection`] or [`CachedTransaction`]. Sealed:
/// SeaORM's own connection types are not accepted, because a write made on them would not
/// reach the cache after its commit.
pub trait CachedConnectionTrait: sealed::Sealed + Send + Sync {}

impl CachedConnectionTrait for CachedConnection {}
impl CachedConnectionTrait for CachedTransaction {}

/// Where a `*_with` call runs.
#[doc(hidden)]
#[derive(Debug)]
pub enum Target<'a> {
    /// Inside the caller's transaction.
    Joined(&'a CachedTransaction),
    /// In a transaction of its own, begun here, to commit when the write is done.
    Own(CachedTransaction),
}

impl Target<'_> {
    /// The transaction the write runs in.
    pub(crate) fn txn(&self) -> &CachedTransaction {
        match self {
            Target::Joined(txn) => txn,
            Target::Own(txn) => txn,
        }
    }

    /// Commits a transaction begun for the write (its cache effects run then); a joined one
    /// is the caller's to commit.
    pub(crate) async fn finish(self) -> Result<(), DbErr> {
        match self {
            Target::Joined(_) => Ok(()),
            Target::Own(txn) => txn.commit().await,
        }
    }
}

pub(crate) mod sealed {
    use std::future::Future;

    use super::{CachedConnection, CachedTransaction, DbErr, Target, TransactionTrait};

    /// Keeps [`CachedConnectionTrait`](super::CachedConnectionTrait) to this crate's types.
    pub trait Sealed {
        /// The transaction a write on this connection runs in.
        #[doc(hidden)]
        fn target(&self) -> impl Future<Output = Result<Target<'_>, DbErr>> + Send;
    }

    impl Sealed for CachedConnection {
        async fn target(&self) -> Result<Target<'_>, DbErr> {
            Ok(Target::Own(self.begin().await?))
        }
    }

    impl Sealed for CachedTransaction {
        async fn target(&self) -> Result<Target<'_>, DbErr> {
            Ok(Target::Joined(self))
        }
    }
}
