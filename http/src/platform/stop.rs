//! What a platform runs, and in which order each thing stops: the shutdown policy, as data,
//! in one place.
//!
//! Every [`Part`] has a [`Stage`]. When the shutdown future resolves, the stages run in
//! order and the parts of one stage stop together:
//!
//! 0. [`Part::Streams`]: the long-lived replies (the live log tail) end at once, so they do
//!    not hold the drain below for `SHUTDOWN_TIMEOUT`; their clients reconnect elsewhere.
//! 1. [`Stage::Http`]: the HTTP servers stop accepting and finish the requests in flight
//!    (within `SHUTDOWN_TIMEOUT`), so no new event can be published through them.
//! 2. [`Stage::Consumers`]: the event consumers (the RabbitMQ listener, the in-process bus)
//!    take nothing more and finish what they were handed, while the actors they feed still
//!    run (stopping the actor system first would lose those events).
//! 3. [`Stage::Tasks`]: the servers that are tasks of their own (gRPC, JSON-RPC) are told to
//!    stop and finish their calls in flight; background tasks (the metrics sampler) end.
//!
//! An HTTP server that fails on its own ends the run with its error; the later stages
//! still run.

use std::future::Future;
use std::time::Duration;

use actix::Recipient;
use futures_util::future::{join_all, try_join_all};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use troupe_actors::events::Drain;

use crate::api::RunningServer;

/// How long exporting the last spans may take at shutdown.
const TRACE_FLUSH: Duration = Duration::from_secs(5);

/// How long a task server may take to stop once told to.
const TASK_GRACE: Duration = Duration::from_secs(10);

/// When a part stops; earlier stages stop first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// HTTP servers: stop accepting, finish the requests in flight.
    Http,
    /// Event consumers: take nothing more, finish what they were handed.
    Consumers,
    /// Task servers (gRPC, JSON-RPC): cancelled, finishing their calls in flight.
    Tasks,
}

/// One thing a platform runs.
pub enum Part {
    /// An HTTP server.
    Http(RunningServer),
    /// Long-lived replies of a server (the live log tail), ended first by cancelling it.
    Streams(CancellationToken),
    /// An event consumer, drained within `within` at shutdown.
    Consumer {
        /// Name (for logs).
        name: &'static str,
        /// Where the drain request goes.
        drain: Recipient<Drain>,
        /// The grace period (`SHUTDOWN_TIMEOUT`).
        within: Duration,
    },
    /// A server running as a task of its own, stopped by cancelling `stop`.
    Task {
        /// Name (`logger-grpc`, `logger-rpc`).
        name: &'static str,
        /// The bound port.
        port: u16,
        /// Cancelled at shutdown.
        stop: CancellationToken,
        /// The task; it ends once the server has stopped.
        task: JoinHandle<()>,
    },
}

impl Part {
    /// A task server: `serve` gets a future that resolves when the platform stops it.
    pub fn task<F>(name: &'static str, port: u16, serve: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(stop.clone()));
        Self::Task { name, port, stop, task }
    }

    /// A background task (no port) that `run` ends once its token is cancelled, stopped
    /// with the task servers.
    pub fn background<F>(name: &'static str, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = ()> + Send + 'static,
    {
        Self::task(name, 0, run)
    }

    /// When this part stops.
    pub fn stage(&self) -> Stage {
        match self {
            Self::Http(_) | Self::Streams(_) => Stage::Http,
            Self::Consumer { .. } => Stage::Consumers,
            Self::Task { .. } => Stage::Tasks,
        }
    }

    /// Its name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Http(s) => s.name,
            Self::Streams(_) => "streams",
            Self::Consumer { name, .. } | Self::Task { name, .. } => name,
        }
    }

    /// The port it listens on, if it does.
    pub fn port(&self) -> Option<u16> {
        match self {
            Self::Http(s) => Some(s.port),
            Self::Task { port, .. } => Some(*port).filter(|p| *p != 0),
            Self::Consumer { .. } | Self::Streams(_) => None,
        }
    }

    /// Stop a part of a later stage (HTTP servers are stopped by [`run_until`] itself).
    async fn stop(self) {
        match self {
            Self::Http(_) | Self::Streams(_) => {}
            Self::Consumer { name, drain, within } => {
                if let Err(err) = drain.send(Drain(within)).timeout(within + Duration::from_secs(1)).await {
                    tracing::warn!(consumer = name, error = %err, "the event consumer did not drain");
                }
            }
            Self::Task { name, stop, task, .. } => {
                stop.cancel();
                if tokio::time::timeout(TASK_GRACE, task).await.is_err() {
                    tracing::warn!(server = name, "did not stop in time");
                }
            }
        }
    }
}

/// Serve `parts` until `shutdown` resolves, then stop them stage by stage.
pub async fn run_until(parts: Vec<Part>, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let (servers, mut rest): (Vec<_>, Vec<_>) = parts.into_iter().partition(|p| p.stage() == Stage::Http);
    let streams: Vec<CancellationToken> = servers
        .iter()
        .filter_map(|p| if let Part::Streams(t) = p { Some(t.clone()) } else { None })
        .collect();
    let servers: Vec<RunningServer> =
        servers.into_iter().filter_map(|p| if let Part::Http(s) = p { Some(s) } else { None }).collect();
    let handles: Vec<_> = servers.iter().map(RunningServer::handle).collect();
    let serving = try_join_all(servers.into_iter().map(RunningServer::run_until_stopped));
    tokio::pin!(serving, shutdown);
    let res = tokio::select! {
        res = &mut serving => res.map(drop),
        () = &mut shutdown => {
            tracing::info!("stopping: draining requests in flight");
            streams.iter().for_each(CancellationToken::cancel);
            // The stop command is sent at once; the servers' own futures carry it out.
            for handle in &handles {
                drop(handle.stop(true));
            }
            serving.await.map(drop)
        }
    };
    for stage in [Stage::Consumers, Stage::Tasks] {
        let (now, later): (Vec<_>, Vec<_>) = rest.into_iter().partition(|p| p.stage() == stage);
        rest = later;
        join_all(now.into_iter().map(Part::stop)).await;
    }
    // Last, the spans of everything above go out to the OTLP collector (when one is set).
    let flush = tokio::task::spawn_blocking(troupe_core::telemetry::flush);
    if tokio::time::timeout(TRACE_FLUSH, flush).await.is_err() {
        tracing::warn!("traces not all exported at shutdown: the collector did not answer in time");
    }
    res
}
