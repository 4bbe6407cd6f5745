//! The authentication actor: owns the user store (PostgreSQL or SQLite) and the token keys.
//!
//! It answers [`Authenticate`] and the user-management messages of `troupe_core::messages`.
//! Store calls go through [`supervision::call`], so a lost database makes the actor reconnect
//! with backoff while callers get `Unavailable`. bcrypt runs on a bounded pool
//! ([`password::HashPool`]) that refuses at once (503) when full, so logins never take every
//! core from the other routes; an unknown email is checked against a dummy hash so it costs
//! as much as a wrong password. Login attempts per e-mail are rate-limited
//! (`LOGIN_RATE_PER_EMAIL`): over the limit a login is refused (429) before any of that.
//! Authorisation (self or admin) is decided here from the database, not from the token alone,
//! so a deactivated user or a revoked admin loses access at once.
//!
//! Every login attempt is recorded (never the password) by one road, [`AuditTo`]: published
//! as an `auth` event (INFO on success, WARNING on failure), which the listener stores as an
//! audit entry named `authentication`, or written straight to the logger where no event
//! transport exists. The login is answered only once its record is stored (on the durable
//! event queue, confirmed by RabbitMQ, or written by the logger), so "logged in" and
//! "audited" cannot diverge: an attempt that cannot be recorded within [`AUDIT_TIMEOUT`] is
//! refused with 503 "login audit unavailable", and no token is handed out unrecorded. Each
//! attempt carries a fresh event id, so a redelivered event is stored once.

pub mod dsn;
pub mod password;
pub mod store;
pub mod token;

use std::fmt;
use std::time::Duration;

use actix::{Addr, Arbiter, Context, Handler, Recipient, ResponseActFuture, Supervisor};
use futures_util::FutureExt as _;
use secrecy::ExposeSecret;
use tracing::Instrument as _;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::AuthSettings;
use troupe_core::domain::{Authenticated, Caller, MAX_EMAIL_LEN, Principal, User};
use troupe_core::health::Readiness;
use troupe_core::limits::{self, KeyedLimit};
use troupe_core::messages::{
    Authenticate, ChangePassword, DeactivateUser, GetUser, ListUsers, LogLevel, NewLogEntry, PublishEvent,
    RegisterUser, UpdateUser, VerifyToken, WriteLog,
};
use troupe_core::{RequestId, ServiceError};

use self::dsn::DbTarget;
use self::password::{HashError, HashPool};
use self::store::{NewUserRow, StoreError, UserRecord, UserStore};
use self::token::TokenKeys;
use crate::supervision::{self, Backend, BackendError, Checking, Connecting, Link, supervised};

/// Everything the auth actor needs, checked at start-up.
#[derive(Clone)]
pub struct AuthConfig {
    /// Which database.
    pub target: DbTarget,
    /// Deadline per database operation.
    pub db_timeout: Duration,
    /// Pool size.
    pub max_connections: u32,
    /// Token signing keys.
    pub keys: TokenKeys,
    /// Reconnect policy.
    pub backoff: BackoffPolicy,
    /// Where login attempts are recorded.
    pub audit: AuditTo,
    /// The bounded pool bcrypt runs on.
    pub hashing: HashPool,
    /// Login attempts allowed per e-mail (checked before any password is).
    pub login_limit: KeyedLimit<String>,
}

/// The one road login attempts are recorded by.
#[derive(Clone, Default)]
pub enum AuditTo {
    /// Not recorded.
    #[default]
    Nowhere,
    /// Published as `auth` events; the listener stores each as an audit entry.
    Events(Recipient<PublishEvent>),
    /// Written straight to the logger (a process with no event transport).
    Log(Recipient<WriteLog>),
}

impl AuthConfig {
    /// Build from settings; `ephemeral_key` allows a random JWT key when none is configured
    /// (`troupe up` only). For SQLite the data directory is created. Errors name the variable.
    pub fn from_settings(
        s: &AuthSettings,
        backoff: BackoffPolicy,
        ephemeral_key: bool,
    ) -> Result<Self, String> {
        let dsn = s.dsn.value().map(|d| d.expose_secret().to_owned());
        let target = DbTarget::new(dsn.as_deref(), &s.data_dir)?;
        if matches!(target, DbTarget::Sqlite(_)) {
            ensure_data_dir(&s.data_dir)?;
        }
        Ok(Self {
            target,
            db_timeout: s.db_timeout,
            max_connections: s.db_max_connections.max(1),
            keys: TokenKeys::from_settings(s, ephemeral_key)?,
            backoff,
            audit: AuditTo::Nowhere,
            hashing: HashPool::new(s.hash_workers, s.hash_queue),
            login_limit: KeyedLimit::new(s.login_rate_per_email),
        })
    }
}

/// Create the data directory and check it is writable.
pub fn ensure_data_dir(dir: &std::path::Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("TROUPE_DATA_DIR: {} is not usable: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(fail)?;
    tempfile_probe(dir).map_err(fail)
}

fn tempfile_probe(dir: &std::path::Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".troupe-write-test-{}", std::process::id()));
    std::fs::write(&probe, b"ok")?;
    std::fs::remove_file(&probe)
}

/// The authentication service actor.
pub struct AuthActor {
    config: AuthConfig,
    link: Link<UserStore>,
}

impl AuthActor {
    /// Start the actor under a supervisor, on its own arbiter (thread).
    pub fn start(config: AuthConfig, readiness: &Readiness) -> Addr<Self> {
        let probe = readiness.probe("auth.database");
        let link = Link::new("auth", probe, config.backoff);
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self { config, link })
    }
}

supervised!(AuthActor, UserStore);

impl Backend for AuthActor {
    fn connect(&mut self) -> Connecting<UserStore> {
        let c = self.config.clone();
        Box::pin(async move { UserStore::connect(&c.target, c.max_connections, c.db_timeout).await })
    }

    fn check(store: UserStore) -> Checking {
        Box::pin(async move { Ok(store.ping().await?) })
    }
}

/// Why an auth request failed, before it is made client-safe.
#[derive(Debug)]
enum Failure {
    Store(StoreError),
    Denied(ServiceError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<ServiceError> for Failure {
    fn from(e: ServiceError) -> Self {
        Self::Denied(e)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(e) => e.fmt(f),
            Self::Denied(e) => e.fmt(f),
        }
    }
}

impl BackendError for Failure {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Store(StoreError::Unavailable(_)))
    }

    fn into_service_error(self, service: &str) -> ServiceError {
        match self {
            Self::Store(StoreError::Unavailable(_)) => ServiceError::unavailable(service),
            Self::Store(StoreError::Duplicate) => ServiceError::Conflict("email already registered".into()),
            Self::Store(StoreError::Other(e)) => {
                tracing::error!(error = %e, "user store failed");
                ServiceError::Internal
            }
            Self::Denied(e) => e,
        }
    }
}

type Reply<T> = ResponseActFuture<AuthActor, Result<T, ServiceError>>;

fn not_found() -> Failure {
    Failure::Denied(ServiceError::NotFound("user not found".into()))
}

impl From<HashError> for Failure {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Busy => Failure::Denied(ServiceError::unavailable("password checking")),
            HashError::Failed(e) => {
                tracing::error!(error = %e, "hashing a password failed");
                Failure::Denied(ServiceError::Internal)
            }
        }
    }
}

/// Load the caller and check they may act on `target` (themselves, or anyone as an admin;
/// `admin_only` requires an admin). Returns the caller's record.
async fn authorize(
    store: &UserStore,
    by: Principal,
    target: Option<i32>,
    admin_only: bool,
) -> Result<UserRecord, Failure> {
    let caller = store.get(by.user_id).await?;
    let Some(caller) = caller.filter(UserRecord::is_active) else {
        return Err(ServiceError::Unauthorized("account is not active".into()).into());
    };
    let is_admin = caller.user().admin;
    let is_self = target == Some(by.user_id);
    if is_admin || (!admin_only && is_self) { Ok(caller) } else { Err(ServiceError::Forbidden.into()) }
}

impl Handler<Authenticate> for AuthActor {
    type Result = Reply<Authenticated>;

    #[tracing::instrument(name = "Authenticate", skip_all, parent = &msg.span,
                          fields(service = "auth",
                                 request_id = msg.request_id.as_ref().map(tracing::field::display)))]
    fn handle(&mut self, msg: Authenticate, _: &mut Context<Self>) -> Self::Result {
        // The login itself (store, bcrypt, audit) runs later, as a future: in this span too.
        let span = tracing::Span::current();
        let (keys, hashing) = (self.config.keys.clone(), self.config.hashing.clone());
        let audit = Audit { to: self.config.audit.clone(), request_id: msg.request_id.clone() };
        let email = msg.email.trim().to_lowercase();
        // Refused before anything costs: no bcrypt, no store, no audit record.
        if let Err(wait) = self.config.login_limit.check(&email) {
            tracing::debug!(retry_in = ?wait, "login attempts for one e-mail over the limit");
            let limited = ServiceError::RateLimited(limits::retry_after_secs(wait));
            return Box::pin(actix::fut::ready(Err(limited)));
        }
        if !self.link.is_ready() {
            let (audit, email) = (audit.clone(), email.clone());
            actix::spawn(async move {
                let _ =
                    record_login(&audit, &email, "failed: user store unavailable", LogLevel::Warning).await;
            });
        }
        supervision::call(self, move |store: UserStore| {
            async move {
                let outcome = login(&store, &keys, &hashing, &email, msg.password).await;
                let (text, level) = match &outcome {
                    Ok(_) => ("succeeded", LogLevel::Info),
                    Err(Failure::Denied(ServiceError::InvalidCredentials)) => {
                        ("failed: invalid credentials", LogLevel::Warning)
                    }
                    Err(Failure::Denied(ServiceError::Unavailable(_))) => {
                        ("failed: too many logins waiting", LogLevel::Warning)
                    }
                    Err(_) => ("failed: user store error", LogLevel::Warning),
                };
                record_login(&audit, &email, text, level).await?;
                outcome
            }
            .instrument(span)
        })
    }
}

async fn login(
    store: &UserStore,
    keys: &TokenKeys,
    hashing: &HashPool,
    email: &str,
    password: secrecy::SecretString,
) -> Result<Authenticated, Failure> {
    let record = if email.is_empty() || email.len() > MAX_EMAIL_LEN {
        None
    } else {
        store.find_by_email(email).await?
    };
    let hash = record.as_ref().map_or_else(|| password::DUMMY_HASH.to_owned(), |r| r.password.clone());
    let matches = hashing.verify(password, hash).await?;
    match record {
        Some(r) if matches && r.is_active() => {
            let user = r.user();
            let token = keys.issue(&user)?;
            Ok(Authenticated { user, token })
        }
        _ => Err(Failure::Denied(ServiceError::InvalidCredentials)),
    }
}

/// How long recording a login attempt (a write or a publish) may take before it is given up.
pub const AUDIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a login attempt is recorded, and for which request.
#[derive(Clone)]
struct Audit {
    to: AuditTo,
    /// The login request's id, carried into the entry or event.
    request_id: Option<RequestId>,
}

/// Record a login attempt (never the password; the email is cut to its longest valid
/// length) with a fresh event id, within [`AUDIT_TIMEOUT`]; `Ok` once it is stored. A
/// failure is "login audit unavailable" (503), answered instead of the login's outcome.
async fn record_login(audit: &Audit, email: &str, outcome: &str, level: LogLevel) -> Result<(), Failure> {
    let shown: String = email.chars().take(MAX_EMAIL_LEN).collect();
    let data = format!("login {outcome} for {shown:?}");
    let id = uuid::Uuid::new_v4().to_string();
    let request_id = audit.request_id.clone();
    let sent = match audit.to.clone() {
        AuditTo::Nowhere => return Ok(()),
        AuditTo::Events(events) => {
            let span = tracing::Span::current();
            let event = PublishEvent { id: Some(id), name: "auth".into(), data, level, request_id, span };
            events.send(event).timeout(AUDIT_TIMEOUT).map(|r| r.map(|r| r.map(drop))).boxed_local()
        }
        AuditTo::Log(log) => {
            let entry = NewLogEntry::new("authentication", data)
                .and_then(|e| e.with_service("auth"))
                .and_then(|e| e.with_event_id(Some(id)))
                .map(|e| e.with_level(level).with_request_id(request_id));
            let entry = entry.map_err(|e| {
                tracing::error!(error = %e, "login attempt not recordable");
                Failure::Denied(ServiceError::unavailable("login audit"))
            })?;
            log.send(WriteLog(entry)).timeout(AUDIT_TIMEOUT).map(|r| r.map(|r| r.map(drop))).boxed_local()
        }
    };
    let why = match sent.await {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(err)) => err.to_string(),
        Err(err) => err.to_string(),
    };
    tracing::warn!(error = %why, "login attempt not recorded; answering 503");
    Err(Failure::Denied(ServiceError::unavailable("login audit")))
}

impl Handler<RegisterUser> for AuthActor {
    type Result = Reply<User>;

    fn handle(&mut self, msg: RegisterUser, _: &mut Context<Self>) -> Self::Result {
        let hashing = self.config.hashing.clone();
        supervision::call(self, move |store: UserStore| async move {
            authorize(&store, msg.by, None, true).await?;
            let hash = hashing.hash(msg.password.secret().clone()).await?;
            let row = NewUserRow {
                email: msg.email.as_str(),
                first_name: msg.first_name.as_str(),
                last_name: msg.last_name.as_str(),
                password_hash: &hash,
                admin: msg.admin,
            };
            Ok::<_, Failure>(store.insert(row).await?.user())
        })
    }
}

impl Handler<GetUser> for AuthActor {
    type Result = Reply<User>;

    fn handle(&mut self, msg: GetUser, _: &mut Context<Self>) -> Self::Result {
        supervision::call(self, move |store: UserStore| async move {
            authorize(&store, msg.by, Some(msg.id), false).await?;
            store.get(msg.id).await?.map(|r| r.user()).ok_or_else(not_found)
        })
    }
}

impl Handler<VerifyToken> for AuthActor {
    type Result = Reply<Caller>;

    fn handle(&mut self, VerifyToken(token): VerifyToken, _: &mut Context<Self>) -> Self::Result {
        let caller = self.config.keys.verify(token.expose_secret()).and_then(|c| c.caller());
        supervision::call(self, move |store: UserStore| async move {
            let by = match caller? {
                Caller::User(by) => by,
                service => return Ok::<_, Failure>(service),
            };
            // The same check as every authorised request: the user exists and is active.
            authorize(&store, by, Some(by.user_id), false).await?;
            Ok::<_, Failure>(Caller::User(by))
        })
    }
}

impl Handler<ListUsers> for AuthActor {
    type Result = Reply<Vec<User>>;

    fn handle(&mut self, msg: ListUsers, _: &mut Context<Self>) -> Self::Result {
        supervision::call(self, move |store: UserStore| async move {
            authorize(&store, msg.by, None, true).await?;
            let rows = store.list(msg.after.unwrap_or(0), msg.limit.clamp(1, 100)).await?;
            Ok::<_, Failure>(rows.iter().map(UserRecord::user).collect())
        })
    }
}

impl Handler<UpdateUser> for AuthActor {
    type Result = Reply<User>;

    fn handle(&mut self, msg: UpdateUser, _: &mut Context<Self>) -> Self::Result {
        supervision::call(self, move |store: UserStore| async move {
            authorize(&store, msg.by, Some(msg.id), false).await?;
            let updated = store
                .update_profile(
                    msg.id,
                    msg.email.as_ref().map(|e| e.as_str()),
                    msg.first_name.as_ref().map(|n| n.as_str()),
                    msg.last_name.as_ref().map(|n| n.as_str()),
                )
                .await?;
            updated.map(|r| r.user()).ok_or_else(not_found)
        })
    }
}

impl Handler<DeactivateUser> for AuthActor {
    type Result = Reply<User>;

    fn handle(&mut self, msg: DeactivateUser, _: &mut Context<Self>) -> Self::Result {
        supervision::call(self, move |store: UserStore| async move {
            authorize(&store, msg.by, Some(msg.id), false).await?;
            store.set_active(msg.id, false).await?.map(|r| r.user()).ok_or_else(not_found)
        })
    }
}

impl Handler<ChangePassword> for AuthActor {
    type Result = Reply<()>;

    fn handle(&mut self, msg: ChangePassword, _: &mut Context<Self>) -> Self::Result {
        let hashing = self.config.hashing.clone();
        supervision::call(self, move |store: UserStore| async move {
            let caller = authorize(&store, msg.by, Some(msg.id), false).await?;
            if msg.id == msg.by.user_id {
                let current = msg.current.ok_or_else(|| {
                    ServiceError::Invalid("current_password is required to change your own password".into())
                })?;
                if !hashing.verify(current, caller.password.clone()).await? {
                    return Err(ServiceError::InvalidCredentials.into());
                }
            }
            let hash = hashing.hash(msg.new.secret().clone()).await?;
            if store.set_password(msg.id, &hash).await? { Ok(()) } else { Err(not_found()) }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use troupe_core::config::AuthSettings;
    use troupe_core::health::Readiness;
    use troupe_core::limits::RateSpec;

    use super::*;

    #[actix_rt::test]
    async fn logins_over_the_per_email_limit_are_refused_before_any_password_is_checked() {
        let dir = tempfile::tempdir().expect("dir");
        let settings = AuthSettings {
            login_rate_per_email: RateSpec::parse("3/1m").expect("valid"),
            ..AuthSettings::embedded(dir.path(), "0123456789abcdef0123456789abcdef".into())
        };
        let backoff = BackoffPolicy { min: Duration::from_millis(10), max: Duration::from_millis(50) };
        let config = AuthConfig::from_settings(&settings, backoff, false).expect("config");
        let hashing = config.hashing.clone();
        let readiness = Readiness::default();
        let auth = AuthActor::start(config, &readiness);
        tokio::time::timeout(Duration::from_secs(10), readiness.wait_ready()).await.expect("ready");

        let attempt = |email: &str| Authenticate {
            email: email.into(),
            password: "wrong".into(),
            request_id: None,
            span: tracing::Span::none(),
        };
        let mut outcomes = Vec::new();
        for _ in 0..8 {
            outcomes.push(auth.send(attempt("Admin@Example.com ")).await.expect("answers").map(drop));
        }
        let limited = ServiceError::RateLimited(20);
        assert_eq!(
            outcomes[..3],
            [
                Err(ServiceError::InvalidCredentials),
                Err(ServiceError::InvalidCredentials),
                Err(ServiceError::InvalidCredentials)
            ]
        );
        assert!(
            outcomes[3..]
                .iter()
                .all(|o| matches!(o, Err(ServiceError::RateLimited(s)) if *s >= 1 && *s <= 20)),
            "{outcomes:?} vs {limited:?}"
        );
        assert_eq!(hashing.runs(), 3, "the refused attempts ran no bcrypt");
        // The right password is refused too until the allowance refills: no oracle for guessing.
        let right = Authenticate {
            email: "admin@example.com".into(),
            password: "verysecret".into(),
            request_id: None,
            span: tracing::Span::none(),
        };
        assert!(matches!(auth.send(right).await.expect("answers"), Err(ServiceError::RateLimited(_))));

        let other = auth.send(attempt("someone@example.com")).await.expect("answers").map(drop);
        assert_eq!(other, Err(ServiceError::InvalidCredentials), "another e-mail has its own allowance");
    }
}
