//! One file per service. `local(..)` starts the service in this process (its actor, its
//! servers) and `remote(..)` (auth, logger, mailer) makes the proxy another process reaches
//! it through; both give the same kind of handle (`Recipient`s of the service's messages),
//! so whoever uses the service does not know where it runs.
//!
//! Adding a service is one file here plus a line in `up.rs` and one in `serve.rs`.

pub mod auth;
pub mod broker;
pub mod catcher;
pub mod events;
pub mod frontend;
pub mod logger;
pub mod mailer;

use std::net::{IpAddr, TcpListener};

use actix::{Actor, Addr, Arbiter, Context};
use anyhow::Context as _;
use troupe_core::config::CommonSettings;
use troupe_core::health::Readiness;

use super::stop::Part;
use crate::api::ServerOptions;

/// What starting a service gave: the handle the next services use, and what it runs.
pub struct Service<T> {
    /// The service's name, as `GET /status` lists it.
    pub name: &'static str,
    /// What other services hold to reach it.
    pub handle: T,
    /// Its servers and consumers, each stopped in its stage.
    pub parts: Vec<Part>,
}

impl<T> Service<T> {
    /// A service `name` reached through `handle`, running `parts`.
    pub fn new(name: &'static str, handle: T, parts: Vec<Part>) -> Self {
        Self { name, handle, parts }
    }
}

/// Bind `addr:port`; the error names the variable that chose the port.
pub fn bind(addr: IpAddr, port: u16, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((addr, port)).with_context(|| format!("{variable}: cannot listen on {addr}:{port}"))
}

/// The server options of a service: CORS `origins`, `workers` HTTP workers.
pub fn options(
    common: &CommonSettings,
    readiness: &Readiness,
    origins: &[String],
    workers: usize,
) -> ServerOptions {
    ServerOptions {
        cors_origins: origins.to_vec(),
        shutdown_timeout: common.shutdown_timeout,
        readiness: readiness.clone(),
        workers,
        limits: crate::limits::ClientLimits::from_settings(common),
    }
}

/// Start a proxy actor on an arbiter (thread) of its own, so the proxies of a split-mode
/// broker do not all share the System thread. `make` runs on that thread (clients that
/// spawn background tasks, like tonic's channel, put them on its runtime).
pub fn on_own_thread<A>(make: impl FnOnce() -> A + Send + 'static) -> Addr<A>
where
    A: Actor<Context = Context<A>>,
{
    A::start_in_arbiter(&Arbiter::new().handle(), move |_| make())
}
