//! Typed settings, read from environment variables (or the matching `--flags`).
//!
//! Variable names follow the Go platform where it had one (`DSN`, `AUTH_URL`, ...). Each
//! settings struct is a `clap::Args`, so `troupe --help` documents every variable and a bad
//! value stops start-up with an error naming it. Tests build the structs directly.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;
use url::Url;

use crate::backoff::BackoffPolicy;
use crate::telemetry::LogFormat;

/// Parse `5s`, `250ms`, `1h`...
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw).map_err(|e| e.to_string())
}

fn parse_secret(raw: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_http_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| e.to_string())?;
    match url.scheme() {
        "http" | "https" if url.host().is_some() => Ok(url),
        _ => Err("expected an http:// or https:// URL with a host".into()),
    }
}

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
}

impl CommonSettings {
    /// The reconnect policy these settings describe.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy { min: self.backoff_min, max: self.backoff_max.max(self.backoff_min) }
    }
}

impl Default for CommonSettings {
    fn default() -> Self {
        Self {
            bind_address: IpAddr::from([127, 0, 0, 1]),
            log_format: LogFormat::Text,
            shutdown_timeout: Duration::from_secs(10),
            backoff_min: Duration::from_millis(200),
            backoff_max: Duration::from_secs(10),
        }
    }
}

/// The broker (API gateway).
#[derive(Debug, Clone, Args)]
pub struct BrokerSettings {
    /// Port of the broker.
    #[arg(long, env = "BROKER_PORT", default_value_t = 8080)]
    pub broker_port: u16,
    /// Origins allowed to call the broker from a browser (comma-separated; `*` for any).
    #[arg(
        long,
        env = "CORS_ALLOWED_ORIGINS",
        value_delimiter = ',',
        default_value = "http://localhost:8081,http://127.0.0.1:8081"
    )]
    pub cors_allowed_origins: Vec<String>,
    /// Deadline for each call the broker makes to a service.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            broker_port: 8080,
            cors_allowed_origins: vec!["http://localhost:8081".into()],
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// Where the broker reaches the other services when they run in their own processes
/// (`troupe serve broker`); unused by `troupe up`.
#[derive(Debug, Clone, Args)]
pub struct UpstreamSettings {
    /// Base URL of the authentication service.
    #[arg(long, env = "AUTH_URL", default_value = "http://localhost:8082", value_parser = parse_http_url)]
    pub auth_url: Url,
}

/// The web console.
#[derive(Debug, Clone, Args)]
pub struct FrontendSettings {
    /// Port of the web console.
    #[arg(long, env = "FRONTEND_PORT", default_value_t = 8081)]
    pub frontend_port: u16,
    /// Where the console's page sends its requests (the broker, as the browser sees it).
    #[arg(long, env = "BROKER_URL", default_value = "http://localhost:8080", value_parser = parse_http_url)]
    pub broker_url: Url,
}

/// The authentication service.
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// Port of the authentication service.
    #[arg(long, env = "AUTH_PORT", default_value_t = 8082)]
    pub auth_port: u16,
    /// PostgreSQL to keep users in, as a libpq key=value string (as the Go platform used) or a
    /// postgres:// URL. Unset: SQLite in TROUPE_DATA_DIR.
    #[arg(long, env = "DSN", value_parser = parse_secret, hide_env_values = true)]
    pub dsn: Option<SecretString>,
    /// Directory for embedded stores (SQLite users database, ...). Created when missing.
    #[arg(long, env = "TROUPE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Deadline for each database operation.
    #[arg(long, env = "DB_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub db_timeout: Duration,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    /// HMAC key (HS256) signing access tokens; at least 32 bytes.
    #[arg(long, env = "JWT_SECRET", value_parser = parse_secret, hide_env_values = true)]
    pub jwt_secret: Option<SecretString>,
    /// File holding the signing key instead of JWT_SECRET (e.g. a mounted Kubernetes secret).
    #[arg(long, env = "JWT_SECRET_FILE")]
    pub jwt_secret_file: Option<PathBuf>,
    /// Lifetime of access tokens.
    #[arg(long, env = "JWT_TTL", default_value = "1h", value_parser = parse_duration)]
    pub jwt_ttl: Duration,
}

impl AuthSettings {
    /// Settings for a store in `data_dir` (SQLite) with a given key; for tests and examples.
    pub fn embedded(data_dir: impl Into<PathBuf>, jwt_secret: SecretString) -> Self {
        Self {
            auth_port: 0,
            dsn: None,
            data_dir: data_dir.into(),
            db_timeout: Duration::from_secs(3),
            db_max_connections: 5,
            jwt_secret: Some(jwt_secret),
            jwt_secret_file: None,
            jwt_ttl: Duration::from_secs(3600),
        }
    }
}
