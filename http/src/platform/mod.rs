//! The composition root: which services a process runs, how they are connected, and how
//! they stop.
//!
//! - [`services`]: one file per service. `local(..)` starts the service's actor and its
//!   servers in this process; `remote(..)`, where another process can reach the service,
//!   makes the proxy that does. Each returns a [`Service`]: the handle others connect to and
//!   the [`Part`]s it started.
//! - [`up`]: `troupe up`, every service in one process, actors addressed directly.
//! - [`serve`]: `troupe serve <service>`, one service per process, the others reached over
//!   the network.
//! - [`stop`]: what each part is and the order parts stop in (shutdown policy as data).
//!
//! `up` and `serve` only connect services: every deadline, default and substitution is
//! decided by the service's own file or its settings (`*Settings::answer_within()`).
//! Every listener is bound before `Platform` is returned, so tests pass port 0 and read the
//! bound port back with [`Platform::port`].

pub mod serve;
pub mod services;
pub mod stop;
mod up;

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use troupe_core::health::Readiness;

pub use self::serve::{
    serve_auth, serve_broker, serve_catcher, serve_frontend, serve_listener, serve_logger, serve_mailer,
};
pub use self::services::Service;
pub use self::stop::{Part, Stage};
pub use self::up::up;

/// The names of the services running in this process (for the broker's `GET /status`).
#[derive(Clone, Default)]
pub struct ServiceNames(Arc<Mutex<Vec<&'static str>>>);

impl ServiceNames {
    /// The names, in the order the services started.
    pub fn list(&self) -> Vec<String> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).iter().map(|s| (*s).to_owned()).collect()
    }

    fn push(&self, name: &'static str) {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(name);
    }
}

/// What a process runs: its services' parts, and the readiness they report to.
pub struct Platform {
    readiness: Readiness,
    names: ServiceNames,
    parts: Vec<Part>,
    /// HTTP workers of a server that is not the process's edge: one when several services
    /// share the process (`troupe up`), one per core when it serves one service alone.
    workers: usize,
}

impl Platform {
    /// A process running every service (`troupe up`): one HTTP worker per service, the
    /// broker (the edge) one per core.
    pub fn all_in_one() -> Self {
        Self {
            readiness: Readiness::default(),
            names: ServiceNames::default(),
            parts: Vec::new(),
            workers: 1,
        }
    }

    /// A process running one service (`troupe serve`): its server has a worker per core.
    pub fn single() -> Self {
        Self { workers: cores(), ..Self::all_in_one() }
    }

    /// The process's metrics as `settings` say (`TROUPE_METRICS`): every actor started later
    /// counts into them.
    pub fn measured(self, settings: &troupe_core::config::MetricsSettings) -> Self {
        let metrics = troupe_core::metrics::Metrics::new(settings.mode);
        Self { readiness: Readiness::with_metrics(metrics), ..self }
    }

    /// The readiness registry every actor of this process reports to (`GET /readyz`), with
    /// the process's metrics.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The services started so far (and every one started later), for `GET /status`.
    pub fn names(&self) -> ServiceNames {
        self.names.clone()
    }

    /// HTTP workers for a service's server; `edge` for the broker, which takes every
    /// request first.
    pub fn workers(&self, edge: bool) -> usize {
        if edge { cores() } else { self.workers }
    }

    /// Take what `service` started; returns its handle for the next services to use.
    pub fn add<T>(&mut self, service: Service<T>) -> T {
        self.names.push(service.name);
        self.parts.extend(service.parts);
        service.handle
    }

    /// The port a part got (`broker`, `logger`, `logger-grpc`, `logger-rpc`, ...).
    pub fn port(&self, name: &str) -> Option<u16> {
        self.parts.iter().find(|p| p.name() == name).and_then(Part::port)
    }

    /// Serve until `shutdown` resolves (SIGTERM or Ctrl-C in the binary, whatever a test
    /// chooses), then stop every part, stage by stage ([`stop`]).
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
        stop::run_until(self.parts, shutdown).await
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT); never, if neither can be listened for.
pub async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
