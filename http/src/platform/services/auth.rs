//! Authentication: its actor (users in PostgreSQL or SQLite, bcrypt, tokens) and its HTTP
//! server, or the proxy that reaches auth running elsewhere.

use std::time::Duration;

use actix::Addr;
use anyhow::Context as _;
use troupe_actors::auth::{AuditTo, AuthActor, AuthConfig};
use troupe_core::config::{AuthSettings, CommonSettings};
use troupe_core::health::Readiness;
use url::Url;

use super::{Service, bind, on_own_thread, options};
use crate::api::serve;
use crate::auth::AuthState;
use crate::platform::Part;
use crate::proxy::AuthProxy;

/// Where the signing key may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// JWT_SECRET or JWT_SECRET_FILE must be set.
    Configured,
    /// Without one, a random key for this process (`troupe up`).
    EphemeralAllowed,
}

/// The auth actor and its HTTP server on AUTH_PORT; login attempts are recorded to `audit`.
pub fn local(
    common: &CommonSettings,
    settings: &AuthSettings,
    readiness: &Readiness,
    workers: usize,
    key: Key,
    audit: AuditTo,
) -> anyhow::Result<Service<Addr<AuthActor>>> {
    let config = AuthConfig::from_settings(settings, common.backoff(), key == Key::EphemeralAllowed)
        .map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.auth_port, "AUTH_PORT")?;
    let keys = config.keys.clone();
    let actor = AuthActor::start(AuthConfig { audit, ..config }, readiness);
    let state = AuthState { actor: actor.clone(), keys, timeout: settings.answer_within() };
    let server =
        serve("auth", listener, options(common, readiness, &[], workers), crate::auth::routes(state))?;
    Ok(Service::new("auth", actor, vec![Part::Http(server)]))
}

/// The auth service at `url` (AUTH_URL), each call answered within `timeout`: logins and
/// token checks ([`troupe_core::messages::VerifyToken`]).
pub fn remote(url: &Url, timeout: Duration) -> anyhow::Result<Addr<AuthProxy>> {
    let proxy = AuthProxy::new(url, timeout).context("AUTH_URL")?;
    Ok(on_own_thread(move || proxy))
}
