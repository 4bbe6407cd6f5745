//! Settings of the logger service, and where other processes find it.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use url::Url;

use super::secret::{MongoPassword, MongoUrl, Secret};
use super::{parse_duration, parse_http_url};

/// The logger service.
#[derive(Debug, Clone, Args)]
pub struct LoggerSettings {
    /// HTTP port of the logger (`POST /log`, `GET /logs`).
    #[arg(long, env = "LOGGER_PORT", default_value_t = 8083)]
    pub logger_port: u16,
    /// gRPC port (`logs.LogService/WriteLog`, gRPC health).
    #[arg(long, env = "LOGGER_GRPC_PORT", default_value_t = 50001)]
    pub logger_grpc_port: u16,
    /// JSON-RPC port (`RPCServer.LogInfo`, Go `net/rpc/jsonrpc` framing).
    #[arg(long, env = "LOGGER_RPC_PORT", default_value_t = 5001)]
    pub logger_rpc_port: u16,
    /// Most JSON-RPC connections served at once; one more is told the server is busy.
    #[arg(long, env = "LOGGER_RPC_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub logger_rpc_max_connections: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mongo_url: Secret<MongoUrl>,
    /// MongoDB user, when not in MONGO_URL.
    #[arg(long, env = "MONGO_USERNAME")]
    pub mongo_username: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mongo_password: Secret<MongoPassword>,
    /// MongoDB database holding the `logs` collection.
    #[arg(long, env = "MONGO_DATABASE", default_value = "logs")]
    pub mongo_database: String,
    /// Directory of the embedded log store (`logs.db`).
    #[arg(long = "logs-data-dir", env = "TROUPE_DATA_DIR", default_value = "./data")]
    pub logs_data_dir: PathBuf,
    /// Deadline for each log store operation.
    #[arg(long, env = "LOG_STORE_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub log_store_timeout: Duration,
    /// Largest number of entries written in one batch.
    #[arg(long, env = "LOG_BATCH_MAX", default_value_t = 500)]
    pub log_batch_max: usize,
}

impl LoggerSettings {
    /// Settings for an embedded store in `data_dir` on port 0 everywhere, else the defaults;
    /// for tests and examples.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            logger_port: 0,
            logger_grpc_port: 0,
            logger_rpc_port: 0,
            logs_data_dir: data_dir.into(),
            ..Self::default()
        }
    }
}

/// Where other processes reach the logger in split mode (`troupe serve broker|auth`).
#[derive(Debug, Clone, Args)]
pub struct LoggerUpstream {
    /// Base URL of the logger's HTTP API (entries written and read through the broker).
    #[arg(long, env = "LOGGER_URL", default_value = "http://localhost:8083", value_parser = parse_http_url)]
    pub logger_url: Url,
    /// The logger's gRPC endpoint (used by the broker's `POST /log-grpc`).
    #[arg(long, env = "LOGGER_GRPC_URL", default_value = "http://localhost:50001", value_parser = parse_http_url)]
    pub logger_grpc_url: Url,
}

impl LoggerSettings {
    /// MONGO_URL and MONGO_PASSWORD read from their `_FILE` variables when those are set.
    ///
    /// # Errors
    ///
    /// A value and its file both set, or an unreadable or empty file: a message naming it.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.mongo_url.read_file()?;
        self.mongo_password.read_file()
    }

    /// How long a caller waits for one write: a write waits for its batch, so a store
    /// deadline for the batch ahead and one for its own, and a little more.
    pub fn answer_within(&self) -> Duration {
        self.log_store_timeout * 2 + Duration::from_millis(500)
    }
}
