//! The durable write-behind outbox (DESIGN G5, G6, G7): a write-behind write is acknowledged
//! once its outbox row has committed; a background flusher applies outbox rows to the table
//! and deletes them in one transaction, so each write takes effect exactly once, and a crash
//! loses nothing that was acknowledged.
//!
//! - `table`: the outbox and dead-letter tables ([`create_tables`]) and the capacity of
//!   their columns, which every row is checked against before it is written.
//! - `writer`: group commit of concurrent writers' rows.
//! - `flusher`: claim, coalesce per key, apply, retry with backoff, dead-letter.
//! - `queue`: one entity's outbox: rows written, pending writes read, the flusher's loop.
//! - `backpressure`: the bound on pending rows (`max_pending`) and the flusher's wake-ups.
//! - `pending`: a pending write as readers see it.
//! - `apply_lag`: the ack → applied lag histogram the flusher records.

mod apply_lag;
mod backpressure;
mod flusher;
mod pending;
mod queue;
mod table;
mod writer;

pub use crate::config::MAX_ATTEMPTS;
pub(crate) use pending::PendingWrite;
pub(crate) use queue::Outbox;
pub use table::{DEAD_LETTER_TABLE, OUTBOX_TABLE, create_tables};
