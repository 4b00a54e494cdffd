//! Read-through: on a miss the repository loads the row by primary key itself; writes
//! invalidate, as under cache-aside. Both are the defaults of [`PolicyPaths`].

use async_trait::async_trait;

use super::paths::PolicyPaths;
use crate::key::CacheableEntity;

/// Read-through: loads on a miss, invalidates on a write.
#[derive(Debug)]
pub(crate) struct ReadThrough;

#[async_trait]
impl<E: CacheableEntity> PolicyPaths<E> for ReadThrough {}
