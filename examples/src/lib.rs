//! Programs that drive Troupe's actors directly, without HTTP. Run one with
//! `cargo run -p troupe-examples --bin <name>`:
//!
//! - `auth`: start the authentication actor on a throw-away SQLite store and log in.
