//! Proxy actors: in split mode the broker's recipients point here, and each forwards the
//! same message to the remote service over HTTP, mapping the reply back to the same
//! `Result<_, ServiceError>` the local actor would give.
//!
//! One `reqwest::Client` (a keep-alive connection pool) per proxy; every call has a
//! connect timeout and a total deadline, and carries the request id (`x-request-id`) on, and
//! the trace: each call is a client span (a child of the message's span) whose W3C trace
//! context (`traceparent`, `tracestate`) the next service adopts.

use std::time::Duration;

use actix::{Actor, Context, Handler, ResponseFuture};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use serde_json::json;
use tracing::{Instrument as _, Span};
use troupe_actors::auth::token::{Claims, TokenKeys};
use troupe_core::domain::{Authenticated, Caller, User};
use troupe_core::messages::{
    Authenticate, GetLog, LogEntry, LogPage, QueryLogs, SendMail, VerifyToken, WriteLog,
};
use troupe_core::{Envelope, RequestId, ServiceError, request_id};
use url::Url;

/// Forwards [`Authenticate`] (`POST /authenticate`) and [`VerifyToken`] (`GET /token`) to a
/// remote auth service (`AUTH_URL`).
pub struct AuthProxy {
    http: reqwest::Client,
    authenticate: Url,
    token: Url,
}

impl AuthProxy {
    /// A proxy to the auth service at `base`, with a per-call deadline.
    pub fn new(base: &Url, timeout: Duration) -> anyhow::Result<Self> {
        let http = client(timeout)?;
        let authenticate = base.join("authenticate")?;
        Ok(Self { http, authenticate, token: base.join("token")? })
    }
}

/// An HTTP client with a total deadline and a shorter connect timeout, trusting TLS_CA_FILE
/// for `https://` services ([`crate::tls::http_client`]).
pub fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    crate::tls::http_client(timeout)
}

impl Actor for AuthProxy {
    type Context = Context<Self>;
}

impl Handler<Authenticate> for AuthProxy {
    type Result = ResponseFuture<Result<Authenticated, ServiceError>>;

    fn handle(&mut self, msg: Authenticate, _: &mut Context<Self>) -> Self::Result {
        let body = json!({"email": msg.email, "password": msg.password.expose_secret()});
        let span = client_span(&msg.span, "POST /authenticate");
        let request = tagged(self.http.post(self.authenticate.clone()), msg.request_id.as_ref(), &span);
        let request = request.json(&body).send();
        Box::pin(
            async move {
                let res = request.await.map_err(|e| {
                    tracing::warn!(error = %e, "auth service unreachable");
                    ServiceError::unavailable("auth")
                })?;
                let status = res.status();
                let envelope: Option<Envelope> = res.json().await.ok();
                match (status, envelope) {
                    (StatusCode::ACCEPTED, Some(Envelope { data: Some(data), token: Some(token), .. })) => {
                        let user: User = serde_json::from_value(data).map_err(|e| {
                            tracing::error!(error = %e, "auth service sent an unexpected user");
                            ServiceError::Internal
                        })?;
                        Ok(Authenticated { user, token })
                    }
                    (status, envelope) => Err(remote_error(status, envelope, "auth")),
                }
            }
            .instrument(span),
        )
    }
}

impl Handler<VerifyToken> for AuthProxy {
    type Result = ResponseFuture<Result<Caller, ServiceError>>;

    fn handle(&mut self, VerifyToken(token): VerifyToken, _: &mut Context<Self>) -> Self::Result {
        let span = client_span(&Span::current(), "GET /token");
        let request =
            tagged(self.http.get(self.token.clone()), None, &span).bearer_auth(token.expose_secret());
        Box::pin(
            async move {
                let claims: Claims = envelope_data(request, StatusCode::OK, "auth").await?;
                claims.caller().map_err(|e| {
                    tracing::error!(error = %e, "auth service accepted a token without a caller");
                    ServiceError::Internal
                })
            }
            .instrument(span),
        )
    }
}

/// The client span of a call `name` (`POST /log`) made for a message sent in `parent`.
pub fn client_span(parent: &Span, name: &str) -> Span {
    tracing::info_span!(parent: parent, "HTTP client", otel.name = name, otel.kind = "client")
}

/// `request` carrying the id of the request it is made for and the trace context of `span`
/// (its client span), so the next service adopts both.
pub fn tagged(
    request: reqwest::RequestBuilder,
    id: Option<&RequestId>,
    span: &Span,
) -> reqwest::RequestBuilder {
    let mut request = match id {
        Some(id) => request.header(request_id::HEADER, id.as_str()),
        None => request,
    };
    for (key, value) in troupe_core::telemetry::carrier(span).0 {
        request = request.header(key, value);
    }
    request
}

/// The `ServiceError` a remote service's error reply stands for: the variant its `kind`
/// names, or (from a peer that sends none, or a kind unknown here) the one its status means.
pub fn remote_error(status: StatusCode, envelope: Option<Envelope>, service: &str) -> ServiceError {
    let (kind, message) = envelope.map(|e| (e.kind, e.message)).unwrap_or_default();
    let message = match kind.map(|kind| ServiceError::from_kind(&kind, message.clone(), service)) {
        Some(Some(err)) => return err,
        _ => message,
    };
    match status.as_u16() {
        401 => ServiceError::Unauthorized(message),
        400 => ServiceError::BadRequest(message),
        403 => ServiceError::Forbidden,
        404 => ServiceError::NotFound(message),
        409 => ServiceError::Conflict(message),
        413 => ServiceError::PayloadTooLarge(message),
        415 => ServiceError::UnsupportedMediaType(message),
        422 => ServiceError::Invalid(message),
        502..=504 => ServiceError::unavailable(service),
        _ => {
            tracing::error!(service, %status, "unexpected reply from service");
            ServiceError::Internal
        }
    }
}

/// Forwards [`SendMail`] to a remote mailer (`MAILER_URL`) as `POST /send`, with the
/// sender's bearer token, else (for a Troupe service's own mail jobs) a service token.
pub struct MailerProxy {
    http: reqwest::Client,
    send: Url,
    identity: Option<ServiceIdentity>,
}

/// A Troupe service's own identity towards the mailer: service tokens signed with the
/// shared key (`JWT_SECRET`), a fresh one per call.
#[derive(Clone)]
pub struct ServiceIdentity {
    /// The signing key.
    pub keys: TokenKeys,
    /// The service's name (`listener`).
    pub service: &'static str,
}

impl MailerProxy {
    /// A proxy to the mailer at `base`, with a per-call deadline, forwarding the sender's
    /// token, else (when given) signing as `identity`.
    pub fn new(base: &Url, timeout: Duration, identity: Option<ServiceIdentity>) -> anyhow::Result<Self> {
        Ok(Self { http: client(timeout)?, send: base.join("send")?, identity })
    }

    fn bearer(&self, msg: &SendMail) -> Result<Option<String>, ServiceError> {
        match (&msg.bearer, &self.identity) {
            (Some(token), _) => Ok(Some(token.expose_secret().to_owned())),
            (None, Some(id)) => id.keys.service_token(id.service).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl Actor for MailerProxy {
    type Context = Context<Self>;
}

impl Handler<SendMail> for MailerProxy {
    type Result = ResponseFuture<Result<(), ServiceError>>;

    fn handle(&mut self, msg: SendMail, _: &mut Context<Self>) -> Self::Result {
        let span = client_span(&msg.span, "POST /send");
        let mut request = tagged(self.http.post(self.send.clone()), msg.request_id.as_ref(), &span);
        match self.bearer(&msg) {
            Ok(Some(token)) => request = request.bearer_auth(token),
            Ok(None) => {}
            Err(e) => return Box::pin(std::future::ready(Err(e))),
        }
        if let Some(key) = &msg.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        let request = request.json(&msg.to_request()).send();
        Box::pin(
            async move {
                let res = request.await.map_err(|e| {
                    tracing::warn!(error = %e, "mailer unreachable");
                    ServiceError::unavailable("mailer")
                })?;
                match res.status() {
                    StatusCode::ACCEPTED => Ok(()),
                    status => Err(remote_error(status, res.json().await.ok(), "mailer")),
                }
            }
            .instrument(span),
        )
    }
}

/// Forwards the logger's messages to a remote logger over HTTP (`LOGGER_URL`): one pooled
/// keep-alive client for the life of the process, a deadline per call.
pub struct LoggerProxy {
    http: reqwest::Client,
    log: Url,
    logs: Url,
}

impl LoggerProxy {
    /// A proxy to the logger at `base`, with a per-call deadline.
    pub fn new(base: &Url, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self { http: client(timeout)?, log: base.join("log")?, logs: base.join("logs")? })
    }
}

impl Actor for LoggerProxy {
    type Context = Context<Self>;
}

/// Send `request` and read the envelope's `data` as `T` when the status is `ok`.
async fn envelope_data<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
    ok: StatusCode,
    service: &str,
) -> Result<T, ServiceError> {
    let res = request.send().await.map_err(|e| {
        tracing::warn!(service, error = %e, "service unreachable");
        ServiceError::unavailable(service)
    })?;
    let status = res.status();
    let envelope: Option<Envelope> = res.json().await.ok();
    match envelope {
        Some(Envelope { data: Some(data), error: false, .. }) if status == ok => serde_json::from_value(data)
            .map_err(|e| {
                tracing::error!(service, error = %e, "service sent an unexpected reply");
                ServiceError::Internal
            }),
        envelope => Err(remote_error(status, envelope, service)),
    }
}

impl Handler<WriteLog> for LoggerProxy {
    type Result = ResponseFuture<Result<String, ServiceError>>;

    fn handle(&mut self, WriteLog(entry): WriteLog, _: &mut Context<Self>) -> Self::Result {
        let span = client_span(entry.span(), "POST /log");
        let request = tagged(self.http.post(self.log.clone()), entry.request_id(), &span).json(&entry);
        Box::pin(
            async move {
                #[derive(serde::Deserialize)]
                struct Stored {
                    id: String,
                }
                let stored: Stored = envelope_data(request, StatusCode::ACCEPTED, "logger").await?;
                Ok(stored.id)
            }
            .instrument(span),
        )
    }
}

impl Handler<QueryLogs> for LoggerProxy {
    type Result = ResponseFuture<Result<LogPage, ServiceError>>;

    fn handle(&mut self, q: QueryLogs, _: &mut Context<Self>) -> Self::Result {
        let mut params: Vec<(&str, String)> = vec![("limit", q.limit.to_string())];
        let f = q.filter;
        for (key, value) in
            [("name", f.name), ("service", f.service), ("request_id", f.request_id), ("trace_id", f.trace_id)]
        {
            if let Some(v) = value {
                params.push((key, v));
            }
        }
        if let Some(level) = f.level {
            params.push(("level", level.as_str().to_owned()));
        }
        for (key, value) in [("since", f.since), ("until", f.until)] {
            if let Some(t) = value {
                params.push((key, t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)));
            }
        }
        if let Some(c) = q.cursor {
            params.push(("cursor", c.encode()));
        }
        let mut url = self.logs.clone();
        url.query_pairs_mut().extend_pairs(params);
        let request = self.http.get(url);
        Box::pin(envelope_data(request, StatusCode::OK, "logger"))
    }
}

impl Handler<GetLog> for LoggerProxy {
    type Result = ResponseFuture<Result<LogEntry, ServiceError>>;

    fn handle(&mut self, GetLog(id): GetLog, _: &mut Context<Self>) -> Self::Result {
        let mut url = self.logs.clone();
        let pushed = url.path_segments_mut().map(|mut segments| {
            segments.push(&id);
        });
        let request = pushed.map(|()| self.http.get(url)).map_err(|()| ServiceError::Internal);
        Box::pin(async move { envelope_data(request?, StatusCode::OK, "logger").await })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_without_a_kind_are_mapped_by_status() {
        let from = |status: u16| {
            let envelope = Envelope::failure("the message");
            remote_error(StatusCode::from_u16(status).unwrap_or_default(), Some(envelope), "auth")
        };
        assert_eq!(from(401), ServiceError::Unauthorized("the message".into()));
        assert_eq!(from(415), ServiceError::UnsupportedMediaType("the message".into()));
        assert_eq!(from(503), ServiceError::unavailable("auth"));
        assert_eq!(from(418), ServiceError::Internal);
    }

    #[test]
    fn a_kind_wins_over_the_status() {
        let envelope = Envelope::from_error(&ServiceError::InvalidCredentials);
        assert_eq!(
            remote_error(StatusCode::UNAUTHORIZED, Some(envelope), "auth"),
            ServiceError::InvalidCredentials
        );
    }
}
