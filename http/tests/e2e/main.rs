//! Split-mode end-to-end test: every service as its own `troupe serve <service>` process,
//! wired like compose (ports and URLs from the environment) on loopback, against the real
//! PostgreSQL (a fresh database per run), MongoDB-wire server (a fresh database per run),
//! RabbitMQ (a fresh exchange and queue per run) and SMTP server (aiosmtpd from
//! `make services`, read through its Maildir). The docs/compat.md contract is driven through
//! the broker, side effects are checked in the backends, and a service process is killed
//! mid-run and started again.
//!
//! Adding a service is one row in [`cluster::SERVICES`] plus its
//! backend settings in [`cluster::Cluster::start`].

// Tests read top to bottom as one story; the line limit is for the product code.
#![allow(clippy::too_many_lines)]

mod cluster;
mod contract;
mod dead_letters_rabbit;
mod durability;
mod embedded_events;
mod failover;
mod flows;
mod gate;
mod otlp;
mod resilience;
mod tls;
