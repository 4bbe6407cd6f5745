//! Who may read the log (`GET /logs`, `GET /logs/stream`, `GET /logs/{id}`) and `GET /status`
//! on the broker (`READ_AUTH`): with a [`ReadGate`] that needs a token, a reader shows a bearer
//! token that auth accepts (401 otherwise), and only admins (and Troupe's services) see the
//! login audit (`authentication` entries: every attempt's e-mail and outcome; 403 for one by
//! id, left out of pages). Without a gate (the logger's own routes, `READ_AUTH=open`, or
//! `troupe up` bound to loopback under `auto`) reads are open.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix::Recipient;
use actix_web::{FromRequest, HttpRequest, web};
use secrecy::SecretString;
use troupe_core::ServiceError;
use troupe_core::domain::Caller;
use troupe_core::messages::VerifyToken;

use crate::api::{ApiError, ask, bearer_token};

/// The name of the login audit's entries.
pub const AUDIT: &str = "authentication";

/// Whether reads need a token, and who checks it.
#[derive(Clone, Default)]
pub struct ReadGate(Option<(Recipient<VerifyToken>, Duration)>);

impl ReadGate {
    /// Anyone may read.
    pub fn open() -> Self {
        Self(None)
    }

    /// Readers need a token that `auth` accepts within `timeout`.
    pub fn token_required(auth: Recipient<VerifyToken>, timeout: Duration) -> Self {
        Self(Some((auth, timeout)))
    }
}

/// Who reads: `None` where reads are open.
pub struct Reader(pub Option<Caller>);

impl Reader {
    /// Whether this reader may see an entry named `name` (the audit: admins only).
    pub fn may_see(&self, name: &str) -> bool {
        match &self.0 {
            Some(caller) if !caller.is_admin() => name != AUDIT,
            _ => true,
        }
    }
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let gate = req.app_data::<web::Data<ReadGate>>().and_then(|g| g.0.clone());
        let token = bearer_token(req).or_else(|| stream_token(req)).map(|t| SecretString::from(t.to_owned()));
        Box::pin(async move {
            let Some((auth, timeout)) = gate else { return Ok(Self(None)) };
            let token = token.ok_or_else(|| {
                ApiError(ServiceError::Unauthorized(
                    "reading the log and /status needs a bearer token (READ_AUTH): sign in first".into(),
                ))
            })?;
            ask(&auth, VerifyToken(token), timeout, "auth").await.map(|caller| Self(Some(caller)))
        })
    }
}

/// The `access_token` query parameter of `GET /logs/stream` (RFC 6750 2.3): a browser's
/// `EventSource` cannot send an `Authorization` header. Other reads take the header only.
fn stream_token(req: &HttpRequest) -> Option<&str> {
    if !req.path().ends_with("/logs/stream") {
        return None;
    }
    req.query_string()
        .split('&')
        .find_map(|pair| pair.strip_prefix("access_token="))
        .filter(|t| !t.is_empty())
}
