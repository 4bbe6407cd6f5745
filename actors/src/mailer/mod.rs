//! The mailer actor: renders [`SendMail`] with the templates and sends it over SMTP (lettre).
//!
//! It is a supervised [`Backend`]: `started()` checks that the SMTP server answers
//! (connect, EHLO, STARTTLS when asked, NOOP), with backoff while it does not; meanwhile
//! callers get `Unavailable` (503) at once.
//!
//! Sessions: lettre's connection pool keeps finished SMTP sessions open for the next mail
//! (`MAIL_POOL_SIZE` of them, closed after `MAIL_POOL_IDLE_TIMEOUT` unused). A pooled session
//! is checked with NOOP before it is reused, so one the server closed meanwhile is replaced,
//! not failed. At most `MAIL_POOL_SIZE` mails are in flight at once (a semaphore); a mail that
//! finds no free session within `MAIL_TIMEOUT` gets `Unavailable` and is not sent.
//!
//! Delivery: a 4xx reply or a dropped connection is retried a few times with backoff — the
//! server did not accept the mail, so a retry cannot send it twice; a 5xx reply is reported
//! (422) and never retried. lettre's async client times out only the connect, not the
//! commands, so each attempt has its own deadline (two `MAIL_TIMEOUT`s). An attempt that
//! outlives it is not retried (the server may yet accept the mail) and the actor reconnects
//! with a fresh pool, since the abandoned session may have been handed back to the old one
//! mid-command. When the last attempt fails on the connection the actor reconnects too, as
//! the supervision module describes.

pub mod ledger;
pub mod templates;

use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::{ActorFutureExt as _, Addr, Arbiter, Context, Handler, ResponseActFuture, Supervisor};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::{MailEncryption, MailerSettings};
use troupe_core::domain::Email;
use troupe_core::health::Readiness;
use troupe_core::messages::SendMail;
use troupe_core::metrics::MailMetrics;

use self::ledger::{Admit, Ledger};
use self::templates::Templates;
use crate::retry::retry;
use crate::supervision::{self, Backend, BackendError, Checking, Connecting, Link, supervised};

/// The SMTP transport the mailer uses.
pub type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// How many times one mail is tried on transient failures.
const ATTEMPTS: u32 = 3;

/// Everything the mailer needs, checked at start-up.
#[derive(Clone)]
pub struct MailerConfig {
    /// SMTP host.
    pub host: String,
    /// SMTP port.
    pub port: u16,
    /// Connection security.
    pub encryption: MailEncryption,
    /// User name and password, when the server wants them.
    pub credentials: Option<(String, SecretString)>,
    /// Name in the From header.
    pub from_name: String,
    /// Sender when the request has none.
    pub from_address: Email,
    /// EHLO name.
    pub hello: String,
    /// The templates.
    pub templates: Templates,
    /// Extra trusted certificate (PEM).
    pub tls_ca: Option<Vec<u8>>,
    /// Accept any certificate.
    pub tls_insecure: bool,
    /// Deadline for connecting; each attempt at a mail gets two.
    pub timeout: Duration,
    /// Most sessions open at once, and most kept open unused.
    pub pool_size: u32,
    /// How long an unused session stays open.
    pub pool_idle_timeout: Duration,
    /// Reconnect and retry policy.
    pub backoff: BackoffPolicy,
}

impl MailerConfig {
    /// Build from settings; errors name the variable. `MAIL_HOST` must be set.
    pub fn from_settings(s: &MailerSettings, backoff: BackoffPolicy) -> Result<Self, String> {
        let host = s.mail_host.clone().filter(|h| !h.trim().is_empty()).ok_or("MAIL_HOST is not set")?;
        let from_address = Email::parse(&s.from_address)
            .map_err(|_| format!("FROM_ADDRESS: invalid address {:?}", s.from_address))?;
        if s.from_name.chars().any(char::is_control) {
            return Err("FROM_NAME must not contain control characters".into());
        }
        let credentials = match (&s.mail_username, s.mail_password.value()) {
            (Some(u), Some(p)) if !u.is_empty() => Some((u.clone(), p.clone())),
            (Some(u), None) if !u.is_empty() => Some((u.clone(), SecretString::from(String::new()))),
            _ => None,
        };
        let tls_ca = match &s.mail_tls_ca_file {
            Some(path) => Some(read_file(path, "MAIL_TLS_CA_FILE")?),
            None => None,
        };
        if s.mail_pool_idle_timeout < Duration::from_secs(1) {
            return Err("MAIL_POOL_IDLE_TIMEOUT must be at least 1s".into());
        }
        let templates = Templates::load(s.mail_templates_dir.as_deref()).map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            host,
            port: s.mail_port,
            encryption: s.mail_encryption,
            credentials,
            from_name: s.from_name.clone(),
            from_address,
            hello: s.mail_domain.clone(),
            templates,
            tls_ca,
            tls_insecure: s.mail_tls_insecure,
            timeout: s.mail_timeout,
            pool_size: s.mail_pool_size.max(1),
            pool_idle_timeout: s.mail_pool_idle_timeout,
            backoff,
        })
    }

    /// The lettre transport these settings describe.
    pub fn transport(&self) -> anyhow::Result<Transport> {
        let mut builder = Transport::builder_dangerous(&self.host)
            .port(self.port)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(self.hello.clone()))
            .pool_config(PoolConfig::new().max_size(self.pool_size).idle_timeout(self.pool_idle_timeout));
        if let Some((user, password)) = &self.credentials {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose_secret().to_owned()));
        }
        let tls = || -> anyhow::Result<TlsParameters> {
            let mut params = TlsParameters::builder(self.host.clone());
            if let Some(pem) = &self.tls_ca {
                params = params.add_root_certificate(Certificate::from_pem(pem)?);
            }
            if self.tls_insecure {
                params = params.dangerous_accept_invalid_certs(true).dangerous_accept_invalid_hostnames(true);
            }
            Ok(params.build_native()?)
        };
        builder = match self.encryption {
            MailEncryption::None => builder.tls(Tls::None),
            MailEncryption::Tls => builder.tls(Tls::Required(tls()?)),
            MailEncryption::Ssl => builder.tls(Tls::Wrapper(tls()?)),
        };
        Ok(builder.build())
    }

    /// Render `msg` into a complete mail.
    pub fn compose(&self, msg: &SendMail) -> Result<Message, ServiceError> {
        let invalid = |what: &str| ServiceError::Invalid(format!("invalid {what} address"));
        let from = msg.from.as_ref().unwrap_or(&self.from_address);
        let from: Address = from.as_str().parse().map_err(|_| invalid("from"))?;
        let to: Address = msg.to.as_str().parse().map_err(|_| invalid("to"))?;
        let parts = self
            .templates
            .render(msg.message.as_str(), msg.subject.as_str(), &self.from_name)
            .map_err(|e| {
                tracing::error!(error = %format!("{e:#}"), "rendering a mail failed");
                ServiceError::Internal
            })?;
        Message::builder()
            .from(Mailbox::new(Some(self.from_name.clone()), from))
            .to(Mailbox::new(None, to))
            .subject(msg.subject.as_str())
            .multipart(MultiPart::alternative_plain_html(parts.text, parts.html))
            .map_err(|e| {
                tracing::warn!(error = %e, "composing a mail failed");
                ServiceError::Invalid("the mail could not be composed".into())
            })
    }
}

fn read_file(path: &Path, variable: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{variable}: cannot read {}: {e}", path.display()))
}

/// The mailer actor.
pub struct Mailer {
    config: MailerConfig,
    link: Link<Transport>,
    /// One permit per SMTP session allowed at once.
    sessions: Arc<Semaphore>,
    /// Mail sent, retried, refused (`None` with TROUPE_METRICS=off).
    metrics: Option<MailMetrics>,
    /// The idempotency keys of mails sent or being sent.
    ledger: Ledger,
}

impl Mailer {
    /// Start the actor under a supervisor, on its own arbiter.
    pub fn start(config: MailerConfig, readiness: &Readiness) -> Addr<Self> {
        let probe = readiness.probe("mailer.smtp");
        let link = Link::new("mailer", probe, config.backoff).with_check_every(Duration::from_secs(5));
        let sessions = Arc::new(Semaphore::new(config.pool_size as usize));
        let metrics = readiness.metrics().mail();
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self {
            config,
            link,
            sessions,
            metrics,
            ledger: Ledger::default(),
        })
    }
}

supervised!(Mailer, Transport);

impl Backend for Mailer {
    fn connect(&mut self) -> Connecting<Transport> {
        let transport = self.config.transport();
        let deadline = self.config.timeout * 2;
        Box::pin(async move {
            let transport = transport?;
            probe(&transport, deadline).await?;
            Ok(transport)
        })
    }

    fn check(transport: Transport) -> Checking {
        Box::pin(async move { probe(&transport, Duration::from_secs(10)).await })
    }
}

async fn probe(transport: &Transport, deadline: Duration) -> anyhow::Result<()> {
    match tokio::time::timeout(deadline, transport.test_connection()).await {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => anyhow::bail!("the SMTP server did not answer NOOP"),
        Ok(Err(e)) => Err(anyhow::Error::new(e).context("SMTP connection test failed")),
        Err(_) => anyhow::bail!("SMTP connection test timed out after {deadline:?}"),
    }
}

/// Why a delivery failed.
#[derive(Debug)]
pub enum DeliveryError {
    /// No session could be held with the server (refused, dropped, timed out, TLS).
    Connection(String),
    /// Every session was busy for longer than the deadline; nothing was sent.
    Busy,
    /// The server answered 4xx on every attempt.
    Transient(String),
    /// The server refused the mail for good (5xx).
    Permanent {
        /// The reply code.
        code: String,
        /// The reply.
        detail: String,
    },
}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connection(e) => write!(f, "SMTP connection failed: {e}"),
            Self::Busy => write!(f, "every SMTP session stayed busy"),
            Self::Transient(e) => write!(f, "SMTP server deferred the mail: {e}"),
            Self::Permanent { detail, .. } => write!(f, "SMTP server refused the mail: {detail}"),
        }
    }
}

impl BackendError for DeliveryError {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Connection(_))
    }

    fn into_service_error(self, service: &str) -> ServiceError {
        tracing::warn!(error = %self, "mail not delivered");
        match self {
            Self::Connection(_) | Self::Transient(_) | Self::Busy => ServiceError::unavailable(service),
            Self::Permanent { code, .. } if code.starts_with("53") => {
                tracing::error!("SMTP authentication failed: check MAIL_USERNAME and MAIL_PASSWORD");
                ServiceError::unavailable(service)
            }
            Self::Permanent { code, .. } => {
                ServiceError::Invalid(format!("the mail server refused the mail ({code})"))
            }
        }
    }
}

/// Send `mail`, retrying 4xx replies and connection failures (never 5xx, never an attempt
/// that outlived `deadline`) with backoff; each outcome counted in `counts`.
pub async fn deliver(
    transport: &Transport,
    mail: &Message,
    backoff: BackoffPolicy,
    deadline: Duration,
    counts: Option<&MailMetrics>,
) -> Result<(), DeliveryError> {
    /// One attempt's failure, and whether another attempt may follow it.
    struct Failed(DeliveryError, bool);
    let attempt = || async move {
        match tokio::time::timeout(deadline, transport.send(mail.clone())).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_permanent() => {
                let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                Err(Failed(DeliveryError::Permanent { code, detail: e.to_string() }, false))
            }
            Ok(Err(e)) if e.is_transient() => Err(Failed(DeliveryError::Transient(e.to_string()), true)),
            Ok(Err(e)) => Err(Failed(DeliveryError::Connection(e.to_string()), true)),
            // The server may still accept it, so it is not tried again; and the session,
            // abandoned mid-command, may have gone back to the pool: reconnecting (the caller
            // sees a connection error) drops that pool.
            Err(_) => Err(Failed(DeliveryError::Connection(format!("no reply within {deadline:?}")), false)),
        }
    };
    let mut attempts = 1;
    let note = |Failed(failure, _): &Failed, delay| {
        tracing::info!(attempt = attempts, retry_in = ?delay, error = %failure, "retrying mail");
        counts.inspect(|c| c.retried.inc());
        attempts += 1;
    };
    let delays = backoff.delays().take(ATTEMPTS as usize - 1);
    let done = retry(attempt, delays, |Failed(_, again)| *again, note).await.map_err(|Failed(e, _)| e);
    match (&done, counts) {
        (Ok(()), Some(c)) => c.sent.inc(),
        (Err(DeliveryError::Permanent { .. }), Some(c)) => c.refused.inc(),
        _ => {}
    }
    done
}

impl Handler<SendMail> for Mailer {
    type Result = ResponseActFuture<Self, Result<(), ServiceError>>;

    #[tracing::instrument(name = "SendMail", skip_all, parent = &msg.span,
                          fields(service = "mailer", to = %msg.to,
                                 request_id = msg.request_id.as_ref().map(tracing::field::display)))]
    fn handle(&mut self, msg: SendMail, _: &mut Context<Self>) -> Self::Result {
        let span = tracing::Span::current();
        let mail = match self.config.compose(&msg) {
            Ok(mail) => mail,
            Err(e) => return Box::pin(actix::fut::ready(Err(e))),
        };
        let key = msg.idempotency_key.clone();
        if let Some(key) = &key {
            let refused = match self.ledger.begin(key, ledger::fingerprint(&msg), Instant::now()) {
                Admit::Send => None,
                Admit::AlreadySent => Some(Ok(())),
                Admit::InFlight => Some(Err(ServiceError::Conflict(
                    "a mail with this Idempotency-Key is being sent; retry shortly".into(),
                ))),
                Admit::Mismatch => Some(Err(ServiceError::Invalid(
                    "this Idempotency-Key was used for a different mail".into(),
                ))),
            };
            if let Some(answer) = refused {
                return Box::pin(actix::fut::ready(answer));
            }
        }
        let sent = self.send(mail, span);
        Box::pin(sent.map(move |res, act, _| {
            if let Some(key) = key {
                act.ledger.finish(&key, res.is_ok(), Instant::now());
            }
            res
        }))
    }
}

impl Mailer {
    /// Send `mail` in `span`: a session permit, then delivery with retries.
    fn send(
        &mut self,
        mail: Message,
        span: tracing::Span,
    ) -> ResponseActFuture<Self, Result<(), ServiceError>> {
        let (backoff, timeout) = (self.config.backoff, self.config.timeout);
        let (sessions, counts) = (self.sessions.clone(), self.metrics.clone());
        supervision::call(self, move |transport: Transport| async move {
            let Ok(Ok(_session)) = tokio::time::timeout(timeout, sessions.acquire_owned()).await else {
                return Err(DeliveryError::Busy);
            };
            let smtp =
                tracing::info_span!(parent: &span, "smtp send", otel.kind = "client", service = "mailer");
            let delivered =
                deliver(&transport, &mail, backoff, timeout * 2, counts.as_ref()).instrument(smtp).await;
            // lettre hands the session back to its pool in a task of its own; let that run
            // before the permit goes to the next mail, which would otherwise open a session.
            tokio::task::yield_now().await;
            delivered
        })
    }
}
