//! Settings of the mailer and of the built-in mail catcher.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::parse_duration;
use super::secret::{MailPassword, Secret};

/// How the mailer secures its SMTP connection (`MAIL_ENCRYPTION`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailEncryption {
    /// STARTTLS, required.
    Tls,
    /// Implicit TLS from the first byte (usually port 465).
    Ssl,
    /// Plain SMTP (local catchers).
    None,
}

/// Who may send mail (`MAIL_AUTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MailAuth {
    /// A bearer token of an active user when mail can leave the machine (a MAIL_HOST is
    /// set); anyone when it goes to the built-in catcher.
    Auto,
    /// Always a bearer token of an active user.
    Required,
    /// Anyone (the Go platform's behaviour): only on a trusted network.
    Open,
}

/// The mailer: where to send and as whom.
#[derive(Debug, Clone, Args)]
pub struct MailerSettings {
    /// Port of the mailer's HTTP API.
    #[arg(long, env = "MAILER_PORT", default_value_t = 8084)]
    pub mailer_port: u16,
    /// SMTP server. Unset under `troupe up`: the built-in catcher is started and used.
    #[arg(long, env = "MAIL_HOST")]
    pub mail_host: Option<String>,
    /// SMTP port.
    #[arg(long, env = "MAIL_PORT", default_value_t = 1025)]
    pub mail_port: u16,
    /// Who may send mail through the broker's `mail` action, a `mail` event published by
    /// the broker, and `POST /send` under `troupe up`: `auto`, `required` or `open`.
    #[arg(long, env = "MAIL_AUTH", value_enum, default_value = "auto", ignore_case = true)]
    pub mail_auth: MailAuth,
    /// Mails per user where a token is needed (`MAIL_AUTH`): a burst, refilled evenly over the
    /// period (`N/DURATION`, or `off`); beyond it 429 with Retry-After, before anything is sent.
    #[arg(long, env = "MAIL_RATE_PER_USER", default_value = "30/1h", value_parser = crate::limits::RateSpec::parse)]
    pub mail_rate_per_user: crate::limits::RateSpec,
    /// `tls` (STARTTLS), `ssl` (implicit TLS) or `none`.
    #[arg(long, env = "MAIL_ENCRYPTION", value_enum, default_value = "none", ignore_case = true)]
    pub mail_encryption: MailEncryption,
    /// SMTP user name (no authentication when unset).
    #[arg(long, env = "MAIL_USERNAME")]
    pub mail_username: Option<String>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub mail_password: Secret<MailPassword>,
    /// Name in the From header.
    #[arg(long, env = "FROM_NAME", default_value = "Troupe")]
    pub from_name: String,
    /// Sender address used when a request gives no `from`.
    #[arg(long, env = "FROM_ADDRESS", default_value = "noreply@example.com")]
    pub from_address: String,
    /// Domain the mailer greets the SMTP server with (EHLO).
    #[arg(long, env = "MAIL_DOMAIN", default_value = "localhost")]
    pub mail_domain: String,
    /// Directory with `mail.html` and/or `mail.txt` tera templates replacing the built-in ones.
    #[arg(long, env = "MAIL_TEMPLATES_DIR")]
    pub mail_templates_dir: Option<PathBuf>,
    /// PEM file of a CA (or self-signed certificate) to trust for TLS, besides the system's.
    #[arg(long, env = "MAIL_TLS_CA_FILE")]
    pub mail_tls_ca_file: Option<PathBuf>,
    /// Accept any TLS certificate (development only).
    #[arg(long, env = "MAIL_TLS_INSECURE", default_value_t = false)]
    pub mail_tls_insecure: bool,
    /// Deadline for connecting; each attempt at sending a mail gets two.
    #[arg(long, env = "MAIL_TIMEOUT", default_value = "5s", value_parser = parse_duration)]
    pub mail_timeout: Duration,
    /// Most SMTP sessions open at once; finished ones are kept open for the next mail.
    #[arg(long, env = "MAIL_POOL_SIZE", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub mail_pool_size: u32,
    /// How long an unused pooled SMTP session stays open (at least 1s).
    #[arg(long, env = "MAIL_POOL_IDLE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub mail_pool_idle_timeout: Duration,
}

impl MailerSettings {
    /// Settings for a plain SMTP server on `127.0.0.1:port`, the HTTP API on port 0 and a
    /// short `MAIL_TIMEOUT`, else the defaults; for tests and examples.
    pub fn local(port: u16) -> Self {
        Self {
            mailer_port: 0,
            mail_host: Some("127.0.0.1".into()),
            mail_port: port,
            mail_timeout: Duration::from_secs(2),
            ..Self::default()
        }
    }

    /// MAIL_PASSWORD read from MAIL_PASSWORD_FILE when that is set.
    ///
    /// # Errors
    ///
    /// Both set, or an unreadable or empty file: a message naming the variable.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.mail_password.read_file()
    }

    /// Whether sending needs a bearer token of an active user (see [`MailAuth`]); read on the
    /// settings as configured (before the built-in catcher is substituted).
    pub fn needs_token(&self) -> bool {
        match self.mail_auth {
            MailAuth::Open => false,
            MailAuth::Required => true,
            MailAuth::Auto => self.mail_host.as_deref().is_some_and(|h| !h.trim().is_empty()),
        }
    }

    /// How long a caller waits for the mailer to answer one mail: a pooled session
    /// (one `MAIL_TIMEOUT`), then up to three attempts of two command deadlines each, plus
    /// the backoff between them.
    pub fn answer_within(&self) -> Duration {
        self.mail_timeout * 8
    }
}

/// The built-in mail catcher: an SMTP server and a JSON API over what it caught.
#[derive(Debug, Clone, Args)]
pub struct CatcherSettings {
    /// Port of the catcher's SMTP server.
    #[arg(long, env = "CATCHER_SMTP_PORT", default_value_t = 1025)]
    pub catcher_smtp_port: u16,
    /// Address the catcher's SMTP server listens on (0.0.0.0 in a container, so the
    /// mailer's container reaches it).
    #[arg(long, env = "CATCHER_SMTP_ADDRESS", default_value = "127.0.0.1")]
    pub catcher_smtp_address: IpAddr,
    /// Port of the catcher's JSON API.
    #[arg(long, env = "CATCHER_HTTP_PORT", default_value_t = 8025)]
    pub catcher_http_port: u16,
    /// Data directory; caught mail is kept in its `catcher/` folder.
    #[arg(long = "catcher-data-dir", env = "TROUPE_DATA_DIR", default_value = "./data")]
    pub catcher_data_dir: PathBuf,
    /// Origins allowed to call the catcher's API from a browser (the console).
    #[arg(long, env = "CATCHER_CORS_ALLOWED_ORIGINS", value_delimiter = ',', default_value = super::CONSOLE_ORIGINS)]
    pub catcher_cors_allowed_origins: Vec<String>,
}

impl CatcherSettings {
    /// Settings storing in `data_dir`, on ports chosen by the system; for tests.
    pub fn ephemeral(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            catcher_smtp_port: 0,
            catcher_smtp_address: [127, 0, 0, 1].into(),
            catcher_http_port: 0,
            catcher_data_dir: data_dir.into(),
            catcher_cors_allowed_origins: vec!["http://localhost:8081".into()],
        }
    }
}
