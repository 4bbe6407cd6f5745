//! Programs that drive Troupe's actors directly, without HTTP. Run one with
//! `cargo run -p troupe-examples --bin <name>` (or `--example send_mail`):
//!
//! - `auth`: start the authentication actor on a throw-away SQLite store and log in.
//! - `logger`: start the logger actor on an embedded store (MongoDB when `MONGO_URL` is
//!   set), write a few entries and query them back.
//! - `events`: publish events and watch them land in the logger, through RabbitMQ when
//!   `RABBIT_URL` is set, else the in-process bus.
//! - `send_mail` (an example, `--example send_mail -- <to> <subject> <message>`): send a mail
//!   through the mailer actor, to `MAIL_HOST` or to the built-in catcher it starts.
//! - `bench_events` (`make bench-events`): events/s through the publisher and listener
//!   actors against the same RabbitMQ driven by a bare lapin program.
//! - `bench_ceiling` (driven by `make bench-log`): the ceilings log ingestion is measured
//!   against: a bare actix-web server, the store written directly, bcrypt on N threads.
//! - `bench_mail` (`make bench-mail`): mails/s through the mailer's SMTP sessions, one per
//!   mail against pooled, plain and STARTTLS.
//!
//! Figures of the benchmarks are in `docs/benchmarks.md`.
