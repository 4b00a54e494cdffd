//! Measured freshness (DESIGN G10): a sampler reads the rows of a fraction of cache hits from
//! the database off the hit path, at once, compares each with the value the hit served, and
//! reports the staleness ratio against the entity's inconsistency budget.
//!
//! The hit path's part (picking a hit, handing it over without waiting) is in
//! `store/sample.rs`; the task in `sampler.rs`, the sliding window in `window.rs`, the budget
//! in `budget.rs`, the report in `report.rs`.

mod budget;
mod report;
mod sampler;
mod window;

pub use report::Freshness;
pub(crate) use sampler::{RowRead, SampleSource, Sampler};
