//! Black-box tests of the running services over HTTP, in both run modes.
//!
//! One test binary (as in zero-to-production); each test starts its own apps on port 0 with
//! a fresh SQLite directory or a fresh PostgreSQL database.

// Tests read top to bottom as one story; the line limit is for the product code.
#![allow(clippy::too_many_lines)]

mod auth_users;
mod broker;
mod catcher_bounds;
mod dead_letters;
mod dead_letters_rabbit;
mod errors;
mod events;
mod helpers;
mod logger;
mod mail;
mod metrics;
mod openapi;
mod outage;
mod reads;
mod status;
mod tail;
mod trace_cli;
mod traces;
