//! Settings of the authentication service.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

use super::parse_duration;
use super::secret::{Dsn, JwtSecret, Secret};
use crate::limits::RateSpec;

/// The authentication service.
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// Port of the authentication service.
    #[arg(long, env = "AUTH_PORT", default_value_t = 8082)]
    pub auth_port: u16,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub dsn: Secret<Dsn>,
    /// Directory for embedded stores (SQLite users database, ...). Created when missing.
    #[arg(long, env = "TROUPE_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Deadline for each database operation.
    #[arg(long, env = "DB_TIMEOUT", default_value = "3s", value_parser = parse_duration)]
    pub db_timeout: Duration,
    /// Largest number of pooled database connections.
    #[arg(long, env = "DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub jwt_secret: Secret<JwtSecret>,
    /// Passwords checked (bcrypt) at once; 0: one core fewer than the machine has, at least one.
    #[arg(long, env = "AUTH_HASH_WORKERS", default_value_t = 0)]
    pub hash_workers: usize,
    /// Logins (and password changes) that may wait for a hashing worker; beyond, 503 at once.
    #[arg(long, env = "AUTH_HASH_QUEUE", default_value_t = 32)]
    pub hash_queue: usize,
    /// Login attempts per e-mail: a burst, refilled evenly over the period (`N/DURATION`,
    /// or `off`); beyond it 429 with Retry-After, before any password is checked.
    #[arg(long, env = "LOGIN_RATE_PER_EMAIL", default_value = "10/1m", value_parser = RateSpec::parse)]
    pub login_rate_per_email: RateSpec,
    /// Lifetime of access tokens.
    #[arg(long, env = "JWT_TTL", default_value = "1h", value_parser = parse_duration)]
    pub jwt_ttl: Duration,
}

impl AuthSettings {
    /// Settings for a store in `data_dir` (SQLite) with a given key, on port 0 and a small
    /// pool, else the defaults; for tests and examples.
    pub fn embedded(data_dir: impl Into<PathBuf>, jwt_secret: SecretString) -> Self {
        Self {
            auth_port: 0,
            data_dir: data_dir.into(),
            db_max_connections: 5,
            jwt_secret: jwt_secret.into(),
            ..Self::default()
        }
    }
}

impl AuthSettings {
    /// DSN read from DSN_FILE when that is set (see [`Secret::read_file`]).
    ///
    /// # Errors
    ///
    /// Both set, or an unreadable or empty file: a message naming the variable.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.dsn.read_file()
    }

    /// How long a caller waits for the auth actor: a login is a lookup, a bcrypt check on
    /// the blocking pool and a token, so three database deadlines.
    pub fn answer_within(&self) -> Duration {
        self.db_timeout * 3
    }
}

/// The shared signing key of a service other than auth that signs service tokens (the
/// listener, for the mail jobs it sends to a mailer that needs a token).
#[derive(Debug, Clone, Default, Args)]
pub struct ServiceKeySettings {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub jwt_secret: Secret<JwtSecret>,
}
