//! A pending write-behind write, as the outbox holds it and readers see it.

use std::sync::Arc;

/// A write-behind write: the row after it, or the row it deletes.
#[derive(Debug)]
pub(crate) enum PendingWrite<M> {
    /// Insert or update the row to this model.
    Upsert(Arc<M>),
    /// Delete the row (the model is its last known value, which names its key).
    Delete(Arc<M>),
}

impl<M> PendingWrite<M> {
    /// What a reader sees for the key while the write is pending.
    pub(crate) fn into_value(self) -> Option<Arc<M>> {
        match self {
            PendingWrite::Upsert(m) => Some(m),
            PendingWrite::Delete(_) => None,
        }
    }

    pub(crate) fn op(&self) -> &'static str {
        match self {
            PendingWrite::Upsert(_) => UPSERT,
            PendingWrite::Delete(_) => DELETE,
        }
    }

    pub(crate) fn model(&self) -> &M {
        match self {
            PendingWrite::Upsert(m) | PendingWrite::Delete(m) => m,
        }
    }
}

/// The `op` of an upsert row.
pub(crate) const UPSERT: &str = "upsert";
/// The `op` of a delete row.
pub(crate) const DELETE: &str = "delete";
