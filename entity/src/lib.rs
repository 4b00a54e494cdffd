//! Example entities used by sea-orm-cache's examples, tests and benches.
//!
//! - [`user`]: auto-increment `i64` key, unique email.
//! - [`post`]: belongs to a user.
//! - [`profile`]: primary key set by the client (the user's id), so write-behind inserts work.
//! - [`membership`]: composite primary key `(org_id, user_id)`.

pub mod membership;
pub mod post;
pub mod profile;
pub mod user;
