//! Example entities used by sea-orm-cache's examples, tests and benches. Each declares its
//! cache policy with `#[derive(Cached)]`; tests and examples override it in the builder.
//!
//! - [`user`]: auto-increment `i64` key, unique email; read-through.
//! - [`post`]: belongs to a user; cache-aside.
//! - [`profile`]: primary key set by the client (the user's id), so write-behind inserts work;
//!   write-behind.
//! - [`membership`]: composite primary key `(org_id, user_id)`; write-through.

pub mod membership;
pub mod post;
pub mod profile;
pub mod user;
