//! The mailer's HTTP adapter (:8084): `POST /send` `{"from","to","subject","message"}` ->
//! 202 `sent to <to>` (Go contract). Addresses, subject and size are parsed here (422 when
//! bad); the mailer actor renders and sends.
//!
//! [`MailGate`]: where mail can leave the machine (`MAIL_AUTH`), a sender must show a bearer
//! token of an active user (401 otherwise), so the mailer is no open relay; the broker's
//! `mail` action and `mail` events go through the same gate.

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use secrecy::SecretString;
use troupe_core::domain::Caller;
use troupe_core::limits::{KeyedLimit, RateSpec, retry_after_secs};
use troupe_core::messages::{MailRequest, SendMail, VerifyToken};
use troupe_core::{Envelope, RequestId, ServiceError};

use crate::api::{ApiError, CurrentRequestId, IdempotencyKey, JsonBody, ask, bearer_token, reply};
use crate::openapi::{BodyRefused, IdempotencyKeyHeader, Throttled};

/// Who may send mail: anyone (`open`), or the holder of a bearer token of an active user,
/// checked by the auth service.
#[derive(Clone, Default)]
pub struct MailGate(Option<TokenGate>);

/// A gate that needs a token: who checks it, how long that may take, and the per-user rate
/// (where this service counts mails).
#[derive(Clone)]
struct TokenGate {
    auth: Recipient<VerifyToken>,
    timeout: Duration,
    per_user: Option<Arc<KeyedLimit<i32>>>,
}

impl MailGate {
    /// Anyone may send (the built-in catcher, or `MAIL_AUTH=open`).
    pub fn open() -> Self {
        Self(None)
    }

    /// Senders need a token that `auth` accepts within `timeout`.
    pub fn token_required(auth: Recipient<VerifyToken>, timeout: Duration) -> Self {
        Self(Some(TokenGate { auth, timeout, per_user: None }))
    }

    /// The same gate, holding each user to `rate` mails (`MAIL_RATE_PER_USER`; Troupe's own
    /// services, whose mail jobs were gated where they were queued, are not counted). An open
    /// gate stays open.
    pub fn per_user(self, rate: RateSpec) -> Self {
        Self(self.0.map(|gate| TokenGate { per_user: Some(Arc::new(KeyedLimit::new(rate))), ..gate }))
    }

    /// Whether senders need a token.
    pub fn is_open(&self) -> bool {
        self.0.is_none()
    }

    /// Let `req` through, or say why not (401; 429 over the user's rate; 503 when auth
    /// cannot answer).
    pub async fn admit(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let Some(gate) = &self.0 else { return Ok(()) };
        let token = bearer_token(req).map(|t| SecretString::from(t.to_owned())).ok_or_else(|| {
            ApiError(ServiceError::Unauthorized(
                "sending mail needs a bearer token of an active user (MAIL_AUTH)".into(),
            ))
        })?;
        let caller = ask(&gate.auth, VerifyToken(token), gate.timeout, "auth").await?;
        match (&gate.per_user, caller) {
            (Some(limit), Caller::User(user)) => limit
                .check(&user.user_id)
                .map_err(|wait| ApiError(ServiceError::RateLimited(retry_after_secs(wait)))),
            _ => Ok(()),
        }
    }
}

/// What the mailer routes need.
#[derive(Clone)]
pub struct MailerState {
    /// The mailer actor.
    pub mailer: Recipient<SendMail>,
    /// Deadline for each send.
    pub timeout: Duration,
    /// Who may send.
    pub gate: MailGate,
}

/// The mailer's routes.
pub fn routes(state: MailerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone())).route("/send", web::post().to(send));
    }
}

/// Send a parsed mail for request `request_id` (on behalf of the holder of `bearer`, which a
/// mailer in another process checks; once for its Idempotency-Key `key`) through `mailer`
/// within `timeout`; returns the recipient.
pub async fn send_mail(
    mailer: &Recipient<SendMail>,
    request: MailRequest,
    (request_id, bearer, key): (RequestId, Option<SecretString>, Option<String>),
    timeout: Duration,
) -> Result<String, ApiError> {
    let msg = request.parse()?.for_request(Some(request_id)).with_bearer(bearer).with_idempotency_key(key);
    let to = msg.to.to_string();
    ask(mailer, msg, timeout, "mailer").await?;
    Ok(to)
}

/// Send a mail (the Go contract's `sent to <to>`); where mail can leave the machine
/// (`MAIL_AUTH`), only with a bearer token of an active user.
#[utoipa::path(post, path = "/send", tag = "mailer", request_body = MailRequest,
    params(IdempotencyKeyHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Handed to the SMTP server", body = Envelope),
        (status = 409, description = "The mail with this Idempotency-Key is being sent", body = Envelope),
        (status = 400, description = "Malformed JSON", body = Envelope),
        (status = 401, description = "No valid bearer token where one is needed", body = Envelope),
        (status = 422, description = "A bad address, subject or size, or an Idempotency-Key used for another mail", body = Envelope),
        Throttled,
        (status = 503, description = "The SMTP server (or auth, to check the token) is unavailable", body = Envelope),
        BodyRefused))]
#[tracing::instrument(name = "mailer.send", skip_all)]
async fn send(
    state: web::Data<MailerState>,
    req: HttpRequest,
    request_id: CurrentRequestId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(request): JsonBody<MailRequest>,
) -> Result<HttpResponse, ApiError> {
    state.gate.admit(&req).await?;
    let to = send_mail(&state.mailer, request, (request_id.into_inner(), None, key), state.timeout).await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::ok(format!("sent to {to}"))))
}

/// The mailer's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(send))]
pub(crate) struct Doc;
