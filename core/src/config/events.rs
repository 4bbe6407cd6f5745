//! Settings of the event pipeline: where RabbitMQ is (or the in-process bus and its queue on
//! disk when unset), the exchange, and the listener's queue.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use secrecy::SecretString;

use super::{parse_duration, parse_secret};

/// `RABBIT_URL`: every node's URL `amqp://`, so a scheme the client cannot speak stops
/// start-up instead of failing every reconnect. The error never repeats the value (it holds
/// a password), which clap's own value errors would.
#[derive(Debug, Clone, Copy)]
struct RabbitUrl;

impl clap::builder::TypedValueParser for RabbitUrl {
    type Value = SecretString;

    fn parse_ref(
        &self,
        _: &clap::Command,
        _: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<SecretString, clap::Error> {
        let invalid = |why: &str| {
            clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("RABBIT_URL: {why}\n"))
        };
        let raw = value.to_str().ok_or_else(|| invalid("not UTF-8"))?;
        check_rabbit_url(raw).map_err(|e| invalid(&e))?;
        parse_secret(raw).map_err(|e| invalid(&e))
    }
}

fn check_rabbit_url(raw: &str) -> Result<(), String> {
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
    /// RabbitMQ, as an amqp:// URL (e.g. amqp://guest:guest@rabbitmq:5672/%2f), or amqps://
    /// for TLS (trusting the system's roots and TLS_CA_FILE); for a cluster, the nodes' URLs
    /// separated by commas, tried in turn on every (re)connect. Unset: the in-process bus
    /// (`troupe up` only).
    #[arg(long, env = "RABBIT_URL", value_parser = RabbitUrl, hide_env_values = true)]
    pub rabbit_url: Option<SecretString>,
    /// File holding RABBIT_URL instead (e.g. a mounted secret), checked the same way.
    #[arg(long, env = "RABBIT_URL_FILE")]
    pub rabbit_url_file: Option<PathBuf>,
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
        super::fill_from_file(
            "RABBIT_URL",
            &mut self.rabbit_url,
            self.rabbit_url_file.as_deref(),
            check_rabbit_url,
        )
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn rabbit_urls_must_be_amqp() {
        let parse = |raw: &str| {
            let command = clap::Command::new("t");
            clap::builder::TypedValueParser::parse_ref(&RabbitUrl, &command, None, std::ffi::OsStr::new(raw))
        };
        let cluster = parse("amqp://u:p@a:5672/%2f, AMQP://u:p@b:5672/%2f").expect("amqp");
        assert_eq!(cluster.expose_secret(), "amqp://u:p@a:5672/%2f, AMQP://u:p@b:5672/%2f");
        parse("amqp://a, amqps://u:secret@b:5671/x").expect("amqps (TLS) too");
        let other = parse("http://u:secret@b").expect_err("http").to_string();
        assert!(other.contains("RABBIT_URL: expected amqp:// or amqps:// URLs"), "{other}");
        assert!(!other.contains("secret"), "the password leaked");
    }
}
