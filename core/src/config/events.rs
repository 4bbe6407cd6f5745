//! Settings of the event pipeline: where RabbitMQ is (or the in-process bus and its queue on
//! disk when unset), the exchange, and the listener's queue.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse_duration;
use super::secret::{RabbitUrl, Secret};

/// `RABBIT_URL`'s check: every node's URL `amqp://`, so a scheme the client cannot speak
/// stops start-up instead of failing every reconnect.
pub(super) fn check_rabbit_url(raw: &str) -> Result<(), String> {
    for node in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match node.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()) {
            Some(scheme) if scheme == "amqp" || scheme == "amqps" => {}
            _ => return Err("expected amqp:// or amqps:// URLs (comma-separated for a cluster)".into()),
        }
    }
    Ok(())
}

/// Publishing events (the broker, auth, `troupe up`, and the listener's connection).
#[derive(Debug, Clone, Args)]
pub struct EventSettings {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub rabbit_url: Secret<RabbitUrl>,
    /// The topic exchange events are published to (durable).
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = "logs_topic")]
    pub events_exchange: String,
    /// Deadline for one publish, from send to the broker's confirm; also the connect timeout.
    #[arg(long, env = "PUBLISH_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub publish_timeout: Duration,
    /// Directory of the in-process bus's queue (`events.db`), without RABBIT_URL.
    #[arg(long = "events-data-dir", env = "TROUPE_DATA_DIR", default_value = "./data")]
    pub events_data_dir: PathBuf,
    /// Most events the in-process bus's queue holds waiting for the store; beyond it,
    /// `event` answers 503 "event queue full". Without RABBIT_URL.
    #[arg(long, env = "EVENTS_QUEUE_MAX", default_value_t = 1_000_000)]
    pub events_queue_max: u64,
}

impl EventSettings {
    /// RABBIT_URL read from RABBIT_URL_FILE when that is set, checked as RABBIT_URL is.
    ///
    /// # Errors
    ///
    /// Both set, an unreadable or empty file, or a URL RABBIT_URL would refuse.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.rabbit_url.read_file()
    }

    /// Settings for the in-process bus with its queue in `data_dir`, else the defaults.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self { events_data_dir: data_dir.into(), ..Self::default() }
    }
}

/// The type of the listener's queue (`LISTENER_QUEUE_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueueType {
    /// One node's queue (RabbitMQ's default).
    Classic,
    /// A Raft-replicated queue on every node of the cluster.
    Quorum,
}

/// The listener (the consumer feeding the logger).
#[derive(Debug, Clone, Args)]
pub struct ListenerSettings {
    /// Port of the listener's health and status endpoints.
    #[arg(long, env = "LISTENER_PORT", default_value_t = 8085)]
    pub listener_port: u16,
    /// The durable queue every listener instance shares (N listeners split the work).
    /// Its dead-letter exchange is `<queue>.dlx` and dead-letter queue `<queue>.dead`.
    #[arg(long, env = "LISTENER_QUEUE", default_value = "troupe.logs")]
    pub listener_queue: String,
    /// `classic`, or `quorum` (replicated over a cluster's nodes: what RabbitMQ recommends
    /// for durable queues). A queue that exists as the other type is a start-up error.
    #[arg(long, env = "LISTENER_QUEUE_TYPE", value_enum, default_value = "classic", ignore_case = true)]
    pub listener_queue_type: QueueType,
    /// Most unacknowledged deliveries held by one listener at a time.
    #[arg(long, env = "LISTENER_PREFETCH", default_value_t = 64)]
    pub listener_prefetch: u16,
    /// Deadline for storing one event (a write to the logger).
    #[arg(long, env = "LISTENER_STORE_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub store_timeout: Duration,
}

impl ListenerSettings {
    /// How long a consumer waits for one event to be stored by a logger with `logger`'s
    /// settings: LISTENER_STORE_TIMEOUT, and never less than the logger's own answer time.
    pub fn store_within(&self, logger: &super::LoggerSettings) -> Duration {
        self.store_timeout.max(logger.answer_within())
    }
}
