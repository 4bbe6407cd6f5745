//! `troupe serve <service>`: one service in this process, the others reached at their
//! URLs. Each function starts one service's `local` part and the `remote` parts it needs.

use anyhow::Context as _;
use troupe_actors::auth::AuditTo;
use troupe_actors::auth::token::TokenKeys;
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, CommonSettings, EventSettings, FrontendSettings,
    ListenerSettings, LoggerSettings, MailAuth, MailerSettings, ServiceKeySettings, UpstreamSettings,
};
use url::Url;

use super::Platform;
use super::services::{auth, broker, catcher, events, frontend, logger, mailer};
use crate::events::DeadLetters;
use crate::mailer::MailGate;
use crate::proxy::ServiceIdentity;
use crate::reads::ReadGate;
use crate::status::StatusSource;

/// The broker alone, reaching the services over HTTP (and gRPC for `/log-grpc`); with
/// RABBIT_URL it publishes events itself, without it the `event` action answers 503.
pub fn serve_broker(
    common: &CommonSettings,
    settings: &BrokerSettings,
    upstream: &UpstreamSettings,
    events: &EventSettings,
) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    let within = settings.request_timeout;
    let auth = auth::remote(&upstream.auth_url, within)?;
    // The broker cannot see where the mailer sends: `auto` gates as `required` here, and the
    // sender's token goes on to the mailer, which checks it too where mail leaves the machine.
    let mail_gate = match upstream.mail_auth {
        MailAuth::Open => MailGate::open(),
        MailAuth::Auto | MailAuth::Required => MailGate::token_required(auth.clone().recipient(), within),
    };
    let read_gate = match settings.read_auth.needs_token(false, common.bind_address) {
        true => ReadGate::token_required(auth.clone().recipient(), within),
        false => ReadGate::open(),
    };
    let to = broker::Recipients {
        read_gate,
        auth: auth.recipient(),
        mail: mailer::remote(&upstream.mailer_url, within, None)?,
        mail_gate,
        logs: logger::remote(&upstream.logger, within)?,
        events: events::publisher(common, events, p.readiness(), "broker").map(actix::Addr::recipient),
        dead_letters: match &upstream.listener_url {
            Some(url) => DeadLetters::remote(url, within).context("LISTENER_URL")?,
            None => DeadLetters::nowhere("LISTENER_URL is not set: the broker cannot reach the dead letters"),
        },
    };
    let status = StatusSource::remote(upstream.services())?;
    let service = broker::local(common, settings, &p.readiness().clone(), p.workers(true), to, status)?;
    p.add(service);
    Ok(p)
}

/// Authentication alone. Login attempts are published as `auth` events with RABBIT_URL,
/// else written to the logger at `logger_url` when given (the publisher's state does not
/// gate auth's readiness: events are a side channel).
pub fn serve_auth(
    common: &CommonSettings,
    settings: &AuthSettings,
    logger_url: Option<&Url>,
    events: &EventSettings,
) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    let audit = match (events::publisher(common, events, &p.readiness().ungated(), "auth"), logger_url) {
        (Some(publisher), _) => AuditTo::Events(publisher.recipient()),
        (None, Some(url)) => AuditTo::Log(logger::writer(url, troupe_actors::auth::AUDIT_TIMEOUT)?),
        (None, None) => AuditTo::Nowhere,
    };
    let r = p.readiness().clone();
    p.add(auth::local(common, settings, &r, p.workers(false), auth::Key::Configured, audit)?);
    Ok(p)
}

/// The logger alone (HTTP, gRPC, JSON-RPC).
pub fn serve_logger(common: &CommonSettings, settings: &LoggerSettings) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    let r = p.readiness().clone();
    p.add(logger::local(common, settings, &r, p.workers(false))?);
    Ok(p)
}

/// The web console alone.
pub fn serve_frontend(common: &CommonSettings, settings: &FrontendSettings) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    p.add(frontend::local(common, settings, p.workers(false))?);
    Ok(p)
}

/// The mailer alone, sending to MAIL_HOST (unset: to `troupe serve catcher` on 127.0.0.1).
/// Where mail can leave the machine, `POST /send` needs a token that auth at `auth_url`
/// (AUTH_URL) accepts: a user's (forwarded by the broker) or a service's (the listener's).
pub fn serve_mailer(
    common: &CommonSettings,
    settings: &MailerSettings,
    auth_url: Option<&Url>,
) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    let gate = mailer::remote_gate(settings, auth_url)?;
    if gate.is_open() && !mailer::wants_catcher(settings) {
        tracing::warn!(
            "MAIL_AUTH=open: POST /send of `troupe serve mailer` takes mail from anyone who reaches \
             MAILER_PORT: keep it on a private network behind the broker"
        );
    }
    let settings = match mailer::wants_catcher(settings) {
        true => mailer::towards_catcher(settings, settings.mail_port),
        false => settings.clone(),
    };
    let r = p.readiness().clone();
    let mail = mailer::actor(common, &settings, &r)?;
    p.add(mailer::server(common, &settings, mail, gate, &r, p.workers(false))?);
    Ok(p)
}

/// The built-in mail catcher alone.
pub fn serve_catcher(common: &CommonSettings, settings: &CatcherSettings) -> anyhow::Result<Platform> {
    let mut p = Platform::single().measured(&common.metrics);
    p.add(catcher::local(common, settings, p.workers(false))?);
    Ok(p)
}

/// The RabbitMQ listener alone (RABBIT_URL required), storing through its own logger actor
/// (MongoDB from MONGO_URL, else the embedded store). `mail` events are sent to the mailer
/// at `mailer_url` (MAILER_URL) with a service token signed with `keys` (JWT_SECRET); without
/// a MAILER_URL they are only stored.
pub fn serve_listener(
    common: &CommonSettings,
    events: &EventSettings,
    settings: &ListenerSettings,
    logger_settings: &LoggerSettings,
    (mailer_url, keys): (Option<&Url>, &ServiceKeySettings),
) -> anyhow::Result<Platform> {
    let url =
        events.rabbit_url.value().cloned().context("RABBIT_URL: required by `troupe serve listener`")?;
    let mut p = Platform::single().measured(&common.metrics);
    let r = p.readiness().clone();
    let store = logger::store(common, logger_settings, &r)?;
    let mut sink = events::sink(store.recipient(), settings, logger_settings);
    match mailer_url {
        Some(url) => {
            let within = mailer::REMOTE_ANSWER_WITHIN;
            let identity = service_identity(keys)?;
            sink = events::with_mail(sink, mailer::remote(url, within, identity)?, within);
        }
        None => tracing::warn!("MAILER_URL is not set: `mail` events are stored but not mailed"),
    }
    p.add(events::consumer(common, url, events, settings, sink, &r)?);
    Ok(p)
}

/// The listener's identity towards the mailer: service tokens signed with JWT_SECRET, or
/// none (then its mail jobs are refused by a mailer that needs a token).
fn service_identity(keys: &ServiceKeySettings) -> anyhow::Result<Option<ServiceIdentity>> {
    let ttl = troupe_actors::auth::token::SERVICE_TOKEN_TTL;
    let keys = TokenKeys::configured(&keys.jwt_secret, ttl).map_err(anyhow::Error::msg)?;
    if keys.is_none() {
        tracing::warn!(
            "JWT_SECRET is not set: `mail` jobs reach the mailer without a token, and a mailer that \
             needs one (MAIL_HOST set) refuses them"
        );
    }
    Ok(keys.map(|keys| ServiceIdentity { keys, service: "listener" }))
}
