//! Typed settings, read from environment variables (or the matching `--flags`).
//!
//! Variable names follow the Go platform where it had one (`DSN`, `AUTH_URL`, ...). Each
//! settings struct is a `clap::Args`, so `troupe --help` documents every variable and a bad
//! value stops start-up with an error naming it. Tests build the structs directly.
//!
//! Each default is written once, in its `#[arg(default_value..)]`: every settings struct's
//! `Default` is what clap gives with no variable and no flag set ([`clap_defaults`]).
//!
//! One module per service; [`CommonSettings`] is shared by every process.

mod auth;
mod broker;
mod mailer;

pub use auth::{AuthSettings, ServiceKeySettings};
pub use broker::{BrokerSettings, FrontendSettings, ReadAuth, UpstreamSettings};
pub use mailer::{CatcherSettings, MailAuth, MailEncryption, MailerSettings};
mod events;
mod logger;
mod secret;
mod tls;
pub use events::{EventSettings, ListenerSettings, QueueType};
pub use logger::{LoggerSettings, LoggerUpstream};
pub use secret::{
    Dsn, JwtSecret, MailPassword, MongoPassword, MongoUrl, RabbitUrl, Secret, SecretName, secret_or_file,
};
pub use tls::TlsSettings;

use std::net::IpAddr;
use std::time::Duration;

use clap::{Args, FromArgMatches};
use url::Url;

use crate::backoff::BackoffPolicy;
use crate::limits::RateSpec;
use crate::telemetry::LogFormat;

/// The web console's origins at its default port: the default of every CORS allow-list.
const CONSOLE_ORIGINS: &str = "http://localhost:8081,http://127.0.0.1:8081";

/// Parse `5s`, `250ms`, `1h`...
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

pub(crate) fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

/// The settings `T` as `troupe` reads them when no variable and no flag is set: clap's own
/// defaults, with the environment ignored.
///
/// # Panics
///
/// When a default does not parse: a literal in `T`'s `#[arg]`s, so a bug the unit tests catch.
pub fn clap_defaults<T: Args + FromArgMatches>() -> T {
    let command =
        T::augment_args(clap::Command::new("defaults")).mut_args(|arg| arg.env(None::<&'static str>));
    command
        .try_get_matches_from(["defaults"])
        .and_then(|matches| T::from_arg_matches(&matches))
        .unwrap_or_else(|e| panic!("the defaults of {} do not parse: {e}", std::any::type_name::<T>()))
}

/// `Default` for settings structs: [`clap_defaults`].
macro_rules! default_from_clap {
    ($($settings:ty),* $(,)?) => {$(
        impl Default for $settings {
            fn default() -> Self {
                clap_defaults()
            }
        }
    )*};
}

default_from_clap!(
    CommonSettings,
    AuthSettings,
    BrokerSettings,
    UpstreamSettings,
    FrontendSettings,
    EventSettings,
    ListenerSettings,
    LoggerSettings,
    LoggerUpstream,
    MailerSettings,
    CatcherSettings,
    MetricsSettings,
    TlsSettings,
);

/// Settings every service process shares.
#[derive(Debug, Clone, Args)]
pub struct CommonSettings {
    /// Address the HTTP servers listen on.
    #[arg(long, env = "BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,
    /// Log output: `text` or `json`. Filter with RUST_LOG (default `info`).
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// How long shutdown waits for in-flight requests after SIGTERM or Ctrl-C.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// First delay before reconnecting to a backend.
    #[arg(long, env = "BACKOFF_MIN", default_value = "200ms", value_parser = parse_duration)]
    pub backoff_min: Duration,
    /// Longest delay between reconnect attempts.
    #[arg(long, env = "BACKOFF_MAX", default_value = "10s", value_parser = parse_duration)]
    pub backoff_max: Duration,
    /// Login attempts per client address through the broker's `auth` action (the edge; auth
    /// itself limits per e-mail): `N/DURATION` or `off`; beyond it 429 with Retry-After.
    #[arg(long, env = "LOGIN_RATE_PER_CLIENT", default_value = "30/1m", value_parser = RateSpec::parse)]
    pub login_rate_per_client: RateSpec,
    /// Requests per client address on the broker's `/handle` (`N/DURATION` or `off`).
    #[arg(long, env = "REQUEST_RATE_PER_CLIENT", default_value = "off", value_parser = RateSpec::parse)]
    pub request_rate_per_client: RateSpec,
    /// Proxies (IP addresses, comma-separated) whose `X-Forwarded-For` names the client; from
    /// anyone else the header is ignored and the peer address is the client.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// The platform's metrics (`GET /metrics`, `GET /metrics/history`).
    #[command(flatten)]
    pub metrics: MetricsSettings,
    /// TLS of the process's listeners and clients.
    #[command(flatten)]
    pub tls: TlsSettings,
}

/// What the process measures.
#[derive(Debug, Clone, Args)]
pub struct MetricsSettings {
    /// `on`: every metric family of docs/operations.md; `off`: only the per-route HTTP
    /// metrics (for measuring what the others cost).
    #[arg(long = "metrics", env = "TROUPE_METRICS", value_enum, default_value = "on")]
    pub mode: crate::metrics::MetricsMode,
    /// How often the broker samples every service's metrics for `GET /metrics/history` (the
    /// console's charts keep 15 minutes of samples).
    #[arg(long, env = "METRICS_SAMPLE_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub metrics_sample_interval: Duration,
}

impl CommonSettings {
    /// The reconnect policy these settings describe.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy { min: self.backoff_min, max: self.backoff_max.max(self.backoff_min) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_command_lines() {
        let common = CommonSettings::default();
        assert_eq!(common.bind_address, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(common.shutdown_timeout, Duration::from_secs(10));
        assert_eq!(BrokerSettings::default().cors_allowed_origins.len(), 2);
        assert_eq!(ListenerSettings::default().listener_port, 8085);
        assert_eq!(MailerSettings::default().mail_host, None);
        assert_eq!(UpstreamSettings::default().logger.logger_grpc_url.as_str(), "http://localhost:50001/");
    }

    #[test]
    fn every_settings_struct_has_defaults_that_parse() {
        let _ = (AuthSettings::default(), FrontendSettings::default(), EventSettings::default());
        let _ = (LoggerSettings::default(), LoggerUpstream::default(), CatcherSettings::default());
    }
}
