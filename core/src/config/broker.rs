//! Settings of the broker, of its view of the other services, and of the web console.

use std::time::Duration;

use clap::Args;
use url::Url;

use super::{parse_duration, parse_http_url};

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

/// Where the broker reaches the other services when they run in their own processes
/// (`troupe serve broker`); unused by `troupe up`.
#[derive(Debug, Clone, Args)]
pub struct UpstreamSettings {
    /// Base URL of the authentication service.
    #[arg(long, env = "AUTH_URL", default_value = "http://localhost:8082", value_parser = parse_http_url)]
    pub auth_url: Url,
    /// Base URL of the mailer.
    #[arg(long, env = "MAILER_URL", default_value = "http://localhost:8084", value_parser = parse_http_url)]
    pub mailer_url: Url,
    /// Where the broker finds the logger (HTTP and gRPC).
    #[command(flatten)]
    pub logger: super::LoggerUpstream,
    /// Where the broker finds the listener's HTTP port, to show it in `GET /status`; unset:
    /// the listener is not shown (it has no API the broker calls).
    #[arg(long, env = "LISTENER_URL", value_parser = parse_http_url)]
    pub listener_url: Option<Url>,
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
    /// Where the console's mail inbox reads the built-in mail catcher (as the browser sees it).
    #[arg(long, env = "CATCHER_URL", default_value = "http://localhost:8025", value_parser = parse_http_url)]
    pub catcher_url: Url,
}

impl UpstreamSettings {
    /// The services `GET /status` asks, with their base URLs, in display order (the
    /// listener only when LISTENER_URL is set).
    pub fn services(&self) -> Vec<(String, Url)> {
        let mut all = vec![
            ("auth".to_owned(), self.auth_url.clone()),
            ("logger".to_owned(), self.logger.logger_url.clone()),
            ("mailer".to_owned(), self.mailer_url.clone()),
        ];
        all.extend(self.listener_url.clone().map(|url| ("listener".to_owned(), url)));
        all
    }
}
