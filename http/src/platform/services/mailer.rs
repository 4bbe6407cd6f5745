//! The mailer: its actor (SMTP through lettre, pooled sessions) and `POST /send`, or the
//! proxy that reaches a mailer running elsewhere. With no MAIL_HOST it sends to Troupe's
//! own mail catcher ([`towards_catcher`]).

use std::time::Duration;

use actix::Recipient;
use anyhow::Context as _;
use troupe_actors::catcher;
use troupe_actors::mailer::{Mailer, MailerConfig};
use troupe_core::config::{CommonSettings, MailEncryption, MailerSettings};
use troupe_core::health::Readiness;
use troupe_core::messages::{SendMail, VerifyToken};
use url::Url;

use super::{Service, bind, on_own_thread, options};
use crate::api::serve;
use crate::mailer::{MailGate, MailerState};
use crate::platform::Part;
use crate::proxy::{MailerProxy, ServiceIdentity};

/// How long a caller waits for a mailer in another process to take one mail.
pub const REMOTE_ANSWER_WITHIN: Duration = Duration::from_secs(60);

/// True when no MAIL_HOST is configured: mail goes to the built-in catcher.
pub fn wants_catcher(settings: &MailerSettings) -> bool {
    settings.mail_host.as_deref().is_none_or(|h| h.trim().is_empty())
}

/// `settings` sending to the built-in catcher's SMTP port on 127.0.0.1 (plain SMTP; at
/// most the sessions the catcher serves at once, halved, so its API stays responsive).
pub fn towards_catcher(settings: &MailerSettings, smtp_port: u16) -> MailerSettings {
    let most = catcher::SESSIONS / 2;
    if settings.mail_pool_size > most {
        tracing::warn!(
            MAIL_POOL_SIZE = settings.mail_pool_size,
            "the built-in catcher serves {} sessions at once: using a pool of {most}",
            catcher::SESSIONS,
        );
    }
    tracing::info!(port = smtp_port, "MAIL_HOST is not set: sending to the built-in catcher on 127.0.0.1");
    MailerSettings {
        mail_host: Some("127.0.0.1".into()),
        mail_port: smtp_port,
        mail_encryption: MailEncryption::None,
        mail_pool_size: settings.mail_pool_size.min(most),
        ..settings.clone()
    }
}

/// The mailer actor (`settings` name a MAIL_HOST); its HTTP server is [`server`].
pub fn actor(
    common: &CommonSettings,
    settings: &MailerSettings,
    readiness: &Readiness,
) -> anyhow::Result<Recipient<SendMail>> {
    let config = MailerConfig::from_settings(settings, common.backoff()).map_err(anyhow::Error::msg)?;
    Ok(Mailer::start(config, readiness).recipient())
}

/// `POST /send` on MAILER_PORT in front of `mailer`, letting through whom `gate` admits.
pub fn server(
    common: &CommonSettings,
    settings: &MailerSettings,
    mailer: Recipient<SendMail>,
    gate: MailGate,
    readiness: &Readiness,
    workers: usize,
) -> anyhow::Result<Service<Recipient<SendMail>>> {
    let listener = bind(common.bind_address, settings.mailer_port, "MAILER_PORT")?;
    let state = MailerState { mailer: mailer.clone(), timeout: settings.answer_within(), gate };
    let opts = options(common, readiness, &[], workers);
    let server = serve("mailer", listener, opts, crate::mailer::routes(state))?;
    Ok(Service::new("mailer", mailer, vec![Part::Http(server)]))
}

/// The gate for senders under `settings` as configured: a token checked by `auth` when
/// mail can leave the machine ([`MailerSettings::needs_token`]), else open.
pub fn gate(settings: &MailerSettings, auth: Recipient<VerifyToken>, within: Duration) -> MailGate {
    match settings.needs_token() {
        true => MailGate::token_required(auth, within).per_user(settings.mail_rate_per_user),
        false => MailGate::open(),
    }
}

/// How long the mailer of `troupe serve mailer` waits for auth to check a sender's token.
pub const VERIFY_WITHIN: Duration = Duration::from_secs(5);

/// The gate of `troupe serve mailer`: where [`MailerSettings::needs_token`], senders' tokens
/// are checked by the auth service at `auth_url` (AUTH_URL, required then).
pub fn remote_gate(settings: &MailerSettings, auth_url: Option<&Url>) -> anyhow::Result<MailGate> {
    if !settings.needs_token() {
        return Ok(MailGate::open());
    }
    let url = auth_url.context(
        "AUTH_URL: required by `troupe serve mailer` where mail can leave the machine (MAIL_HOST set, \
         MAIL_AUTH auto or required), to check senders' tokens; MAIL_AUTH=open lets anyone send",
    )?;
    let auth = super::auth::remote(url, VERIFY_WITHIN)?;
    Ok(MailGate::token_required(auth.recipient(), VERIFY_WITHIN).per_user(settings.mail_rate_per_user))
}

/// The mailer at `url` (MAILER_URL), each call answered within `timeout`; mail without a
/// sender's token goes with a service token of `identity` when given.
pub fn remote(
    url: &Url,
    timeout: Duration,
    identity: Option<ServiceIdentity>,
) -> anyhow::Result<Recipient<SendMail>> {
    let proxy = MailerProxy::new(url, timeout, identity).context("MAILER_URL")?;
    Ok(on_own_thread(move || proxy).recipient())
}
