//! Settings of the broker, of its view of the other services, and of the web console.

use std::time::Duration;

use clap::{Args, ValueEnum};
use url::Url;

use super::{MailAuth, parse_duration, parse_http_url};

/// The broker (API gateway).
#[derive(Debug, Clone, Args)]
pub struct BrokerSettings {
    /// Port of the broker.
    #[arg(long, env = "BROKER_PORT", default_value_t = 8080)]
    pub broker_port: u16,
    /// Origins allowed to call the broker from a browser (comma-separated; `*` for any).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = super::CONSOLE_ORIGINS)]
    pub cors_allowed_origins: Vec<String>,
    /// Deadline for each call the broker makes to a service.
    #[arg(long, env = "REQUEST_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub request_timeout: Duration,
    /// Who may read the log (`GET /logs`, `GET /logs/{id}`) and `GET /status`: `auto` (a
    /// bearer token, except under `troupe up` bound to a loopback BIND_ADDRESS), `required`
    /// or `open`.
    #[arg(long, env = "READ_AUTH", value_enum, default_value = "auto", ignore_case = true)]
    pub read_auth: ReadAuth,
}

/// Who may read the log and `/status` (`READ_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReadAuth {
    /// A bearer token, except under `troupe up` bound to loopback (development).
    Auto,
    /// Always a bearer token (admin for other users' login audit entries).
    Required,
    /// Anyone (only on a trusted network).
    Open,
}

impl ReadAuth {
    /// Whether reads need a token, for `troupe up` (`all_in_one`) or `troupe serve broker`,
    /// bound to `bind`.
    pub fn needs_token(self, all_in_one: bool, bind: std::net::IpAddr) -> bool {
        match self {
            Self::Open => false,
            Self::Required => true,
            Self::Auto => !(all_in_one && bind.is_loopback()),
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
    /// Who may send mail through the broker's `mail` action and `mail` events: `auto` and
    /// `required` (the broker cannot see where the mailer sends) need a bearer token of an
    /// active user, `open` lets anyone.
    #[arg(long, env = "MAIL_AUTH", value_enum, default_value = "auto", ignore_case = true)]
    pub mail_auth: MailAuth,
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
