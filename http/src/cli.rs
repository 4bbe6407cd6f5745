//! The `troupe` command line: `troupe up` and `troupe serve <service>`.
//!
//! Every setting is an environment variable (also accepted as a `--flag`); `--help` on each
//! command lists them with their defaults.

use clap::{Args, Parser, Subcommand};
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, CommonSettings, EventSettings, FrontendSettings,
    ListenerSettings, LoggerSettings, MailerSettings, UpstreamSettings,
};
use url::Url;

const VARIABLES: &str = "\
Configuration comes from environment variables (each also accepted as a --flag).
Run `troupe up --help` or `troupe serve <service> --help` for the variables of a command.

  TROUPE_DATA_DIR   embedded stores (SQLite users and logs)        [./data]
  DSN               PostgreSQL for users (libpq key=value or URL)  [unset: SQLite]
  MONGO_URL         MongoDB for logs (+ MONGO_USERNAME/PASSWORD)   [unset: SQLite logs.db]
  JWT_SECRET        token signing key, >= 32 bytes (or JWT_SECRET_FILE)
  BROKER_PORT 8080, FRONTEND_PORT 8081, AUTH_PORT 8082, LOGGER_PORT 8083, MAILER_PORT 8084
  BIND_ADDRESS 0.0.0.0
  LOGGER_GRPC_PORT 50001, LOGGER_RPC_PORT 5001, LOG_STORE_TIMEOUT 3s, LOG_BATCH_MAX 500
  MONGO_URL         MongoDB for logs (MONGO_USERNAME, MONGO_PASSWORD) [unset: SQLite]
  MAIL_HOST         SMTP server (MAIL_PORT, MAIL_ENCRYPTION tls|ssl|none, MAIL_USERNAME,
                    MAIL_PASSWORD, FROM_NAME, FROM_ADDRESS, MAIL_DOMAIN)
                    [unset under `up`: built-in catcher, SMTP 127.0.0.1:1025, API :8025]
  MAIL_TEMPLATES_DIR, MAIL_TLS_CA_FILE, MAIL_TLS_INSECURE, MAIL_TIMEOUT
  CATCHER_SMTP_PORT 1025, CATCHER_HTTP_PORT 8025, CATCHER_CORS_ALLOWED_ORIGINS
  AUTH_URL          where `serve broker` finds auth                [http://localhost:8082]
  RABBIT_URL        RabbitMQ (amqp://...) for events               [unset: in-process bus]
  EVENTS_EXCHANGE logs_topic, LISTENER_QUEUE troupe.logs, LISTENER_PORT 8084, LISTENER_PREFETCH 64
  LOGGER_URL        where `serve broker|auth` find the logger      [http://localhost:8083]
  LOGGER_GRPC_URL   the logger's gRPC endpoint for /log-grpc       [http://localhost:50001]
  MAILER_URL        where `serve broker` finds the mailer          [http://localhost:8084]
  BROKER_URL        where the console's page sends requests        [http://localhost:8080]
  CORS_ALLOWED_ORIGINS, REQUEST_TIMEOUT, DB_TIMEOUT, BACKOFF_MIN, BACKOFF_MAX, SHUTDOWN_TIMEOUT
  RUST_LOG          log filter, as env_logger                      [info]
  LOG_FORMAT        text | json                                    [text]";

/// Troupe: an API gateway and services (auth, ...) on a supervised actor runtime.
#[derive(Debug, Parser)]
#[command(
    name = "troupe",
    version,
    about = "Troupe: an API gateway and its services on a supervised actor runtime.",
    after_help = VARIABLES
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
// Parsed once at start-up; boxing the settings would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every service in one process. With no configuration it needs no server at all:
    /// users in SQLite under TROUPE_DATA_DIR, a random per-process JWT key.
    Up(UpArgs),
    /// Run one service in this process (what compose and Kubernetes run).
    #[command(subcommand)]
    Serve(ServeCommand),
}

/// Settings of `troupe up`.
#[derive(Debug, Clone, Args)]
pub struct UpArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub common: CommonSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub broker: BrokerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub auth: AuthSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub logger: LoggerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub frontend: FrontendSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mailer: MailerSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub catcher: CatcherSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub events: EventSettings,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub listener: ListenerSettings,
}

/// The services `troupe serve` can run.
// Parsed once at start-up; boxing the settings would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum ServeCommand {
    /// The API gateway on BROKER_PORT, reaching the services at their URLs.
    Broker {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        broker: BrokerSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        upstream: UpstreamSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
    },
    /// The authentication service on AUTH_PORT (PostgreSQL from DSN, else SQLite).
    Auth {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        auth: AuthSettings,
        /// The logger that records login attempts (unset: not recorded).
        #[arg(long, env = "LOGGER_URL")]
        logger_url: Option<Url>,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
    },
    /// The logger on LOGGER_PORT (HTTP), LOGGER_GRPC_PORT and LOGGER_RPC_PORT (MongoDB from
    /// MONGO_URL, else SQLite).
    Logger {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        logger: LoggerSettings,
    },
    /// The event listener: consumes LISTENER_QUEUE on RABBIT_URL (required) and stores each
    /// event through its own logger actor (MongoDB from MONGO_URL, else SQLite); health and
    /// consumer status on LISTENER_PORT.
    Listener {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        events: EventSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        listener: ListenerSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        logger: LoggerSettings,
        /// The mailer that runs `mail` jobs (unset: `mail` events are stored, not mailed).
        #[arg(long, env = "MAILER_URL")]
        mailer_url: Option<Url>,
    },
    /// The web console on FRONTEND_PORT.
    Frontend {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        frontend: FrontendSettings,
    },
    /// The mailer on MAILER_PORT, sending over SMTP to MAIL_HOST.
    Mailer {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        mailer: MailerSettings,
    },
    /// The built-in mail catcher: SMTP on 127.0.0.1:CATCHER_SMTP_PORT, API on CATCHER_HTTP_PORT.
    Catcher {
        #[command(flatten)]
        #[allow(missing_docs)]
        common: CommonSettings,
        #[command(flatten)]
        #[allow(missing_docs)]
        catcher: CatcherSettings,
    },
}

impl Command {
    /// The settings shared by every command.
    pub fn common(&self) -> &CommonSettings {
        match self {
            Self::Up(a) => &a.common,
            Self::Serve(ServeCommand::Broker { common, .. })
            | Self::Serve(ServeCommand::Auth { common, .. })
            | Self::Serve(ServeCommand::Logger { common, .. })
            | Self::Serve(ServeCommand::Listener { common, .. })
            | Self::Serve(ServeCommand::Frontend { common, .. })
            | Self::Serve(ServeCommand::Mailer { common, .. })
            | Self::Serve(ServeCommand::Catcher { common, .. }) => common,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_named() {
        let err = Cli::try_parse_from(["troupe", "up", "--broker-port", "eighty"]).expect_err("rejected");
        assert!(err.to_string().contains("BROKER_PORT"), "{err}");
    }
}
