//! The four policies (DESIGN section 1), one file each, behind one small trait,
//! [`PolicyPaths`]: how a miss loads, and what a write does to the database and the cache,
//! outside a transaction and inside a caller's [`CachedTransaction`](crate::CachedTransaction).
//! [`Repository`](crate::Repository) holds the policy's paths and calls them; it never asks
//! which policy it has.

pub(crate) mod cache_aside;
pub(crate) mod in_transaction;
pub(crate) mod paths;
pub(crate) mod read_through;
pub(crate) mod write_behind;
pub(crate) mod write_through;

pub(crate) use paths::PolicyPaths;

use crate::config::Policy;
use crate::key::CacheableEntity;

/// The paths of `policy`.
pub(crate) fn paths_of<E: CacheableEntity>(policy: Policy) -> &'static dyn PolicyPaths<E> {
    match policy {
        Policy::CacheAside => &cache_aside::CacheAside,
        Policy::ReadThrough => &read_through::ReadThrough,
        Policy::WriteThrough => &write_through::WriteThrough,
        Policy::WriteBehind => &write_behind::WriteBehind,
    }
}
