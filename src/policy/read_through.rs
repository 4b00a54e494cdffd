//! Read-through: on a miss the repository loads the row by primary key itself. Write-through
//! and write-behind read the same way; write-behind first asks its queue for a pending write.

use std::sync::Arc;

use crate::error::Result;
use crate::key::{CacheableEntity, KeyOf};
use crate::repository::EntityCache;

impl<E: CacheableEntity> EntityCache<E> {
    /// Loads one row by key: a pending write-behind write wins over the table (G6).
    pub(crate) async fn load_by_key(&self, key: &KeyOf<E>) -> Result<Option<Arc<E::Model>>> {
        if let Some(queue) = &self.queue
            && let Some(pending) = queue.pending(&self.db, key).await?
        {
            return Ok(pending.into_value());
        }
        let row = E::find_by_id(key.clone()).one(&self.db).await?;
        Ok(row.map(Arc::new))
    }
}
