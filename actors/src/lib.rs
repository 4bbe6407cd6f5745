//! Troupe's service actors and the backends they own.
//!
//! - [`supervision`]: the reusable connect-with-backoff / report-readiness / restart-on-loss
//!   piece every backend-owning actor is built on.
//! - [`auth`]: the authentication actor (users in PostgreSQL or SQLite, bcrypt, JWT).
//! - [`mailer`]: the mailer actor (templates, lettre over SMTP).
//! - [`catcher`]: the built-in mail catcher (SMTP server and store).
//! - [`events`]: the event pipeline (RabbitMQ publisher, listener stream actor, in-process bus).
//! - [`logger`]: the logger actor (entries in MongoDB or SQLite, batched writes).
//! - [`retry`]: the one "retry until done" loop (bus, listener, mailer).
//! - [`sqlite`]: the embedded SQLite files' set-up (log store, event queue).
//!
//! Actors are started under an actix `Supervisor`; adapters (HTTP, RPC) only send them the
//! messages defined in `troupe_core::messages`.

pub mod auth;
pub mod catcher;
pub mod events;
pub mod logger;
pub mod mailer;
pub mod retry;
pub mod sqlite;
pub mod supervision;
