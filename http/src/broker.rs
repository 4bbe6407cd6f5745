//! The broker (API gateway, :8080): `POST /`, `POST /handle`, `POST /log-grpc`,
//! `GET /logs`, `GET /logs/{id}`, plus health.
//!
//! `POST /handle` reads `{"action": ..., <action>: {...}}` and sends one message to the
//! recipient for that action — the service actor itself in `troupe up`, a proxy actor that
//! forwards over HTTP (or gRPC for `/log-grpc`) in split mode. Every send has a deadline
//! (`REQUEST_TIMEOUT`). Entries written through the broker carry service `broker` and the
//! request id. The log reads are the logger's own routes, so the console needs only this URL.

use std::time::{Duration, Instant};

use actix::Recipient;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, ResponseError as _};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::Value;
use troupe_core::messages::{Authenticate, LogLevel, MailRequest, PublishEvent, SendMail, WriteLog};
use troupe_core::metrics::{ActionMetrics, Metrics};
use troupe_core::{Envelope, RequestId, ServiceError};

use crate::api::{
    ApiError, CurrentRequestId, IdempotencyKey, JsonBody, ask, bearer_token, checked_key, member, reply,
};
use crate::limits::ClientLimits;
use crate::logger::{LogClients, LogPayload, read_routes};
use crate::mailer::MailGate;
use crate::openapi::{BodyRefused, IdempotencyKeyHeader, Throttled};

/// Where the broker sends each action.
#[derive(Clone)]
pub struct BrokerState {
    /// The authentication service.
    pub auth: Recipient<Authenticate>,
    /// The mailer.
    pub mail: Recipient<SendMail>,
    /// Who may send mail (the `mail` action and `mail` events).
    pub mail_gate: MailGate,
    /// The event publisher (RabbitMQ or the in-process bus); `None`: `event` answers 503.
    pub events: Option<Recipient<PublishEvent>>,
    /// The logger service (writes and reads).
    pub logs: LogClients,
    /// Deadline for each call.
    pub timeout: Duration,
    /// Per-action counters and latency (`troupe_broker_action*`), resolved once.
    pub actions: ActionCounts,
}

/// The metric handles of each `/handle` action, resolved when the broker starts so that
/// counting one is a few atomic operations (`None` with TROUPE_METRICS=off).
#[derive(Clone)]
pub struct ActionCounts([Option<ActionMetrics>; 5]);

impl ActionCounts {
    const ACTIONS: [&'static str; 5] = ["auth", "mail", "event", "log", "unknown"];

    /// The handles in `metrics`.
    pub fn new(metrics: &Metrics) -> Self {
        Self(Self::ACTIONS.map(|a| metrics.broker_action(a)))
    }

    fn of(&self, action: Option<&str>) -> Option<&ActionMetrics> {
        let index = Self::ACTIONS[..4].iter().position(|a| Some(*a) == action).unwrap_or(4);
        self.0[index].as_ref()
    }
}

/// The broker's routes.
pub fn routes(state: BrokerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(state.logs.clone()))
            .route("/", web::post().to(hit))
            .route("/handle", web::post().to(handle))
            .route("/log-grpc", web::post().to(log_grpc));
        read_routes(cfg);
    }
}

/// The Go platform's "hit the broker" button.
#[utoipa::path(post, path = "/", tag = "broker",
    responses((status = 200, description = "`Hit the broker`", body = Envelope)))]
async fn hit() -> HttpResponse {
    reply(StatusCode::OK, Envelope::ok("Hit the broker"))
}

/// Credentials to check (the `auth` action).
#[derive(Deserialize, utoipa::ToSchema)]
struct AuthPayload {
    /// Login address.
    email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// One action for one service: `auth`, `mail`, `event` or `log` (the Go platform's contract).
///
/// A body without a JSON content type is read as JSON too (as in Go). Requests per client
/// and logins are rate limited (429 with `Retry-After`); `mail` (and an event named `mail`)
/// needs a bearer token where mail can leave the machine (`MAIL_AUTH`).
#[utoipa::path(post, path = "/handle", tag = "broker", request_body = HandleRequest,
    params(IdempotencyKeyHeader),
    security((), ("bearer" = [])),
    responses(
        (status = 202, description = "Done: `auth` gives the user in `data` and a `token`, `event` its id in `data`", body = Envelope),
        (status = 400, description = "Malformed JSON, unknown action or missing member", body = Envelope),
        (status = 401, description = "Wrong credentials, or mail without a valid token", body = Envelope),
        (status = 409, description = "A `mail` with this Idempotency-Key is being sent", body = Envelope),
        (status = 422, description = "A value is invalid (address, level, id, field length)", body = Envelope),
        Throttled,
        (status = 503, description = "The service behind the action is unavailable", body = Envelope),
        BodyRefused))]
async fn handle(
    state: web::Data<BrokerState>,
    (req, limits): (HttpRequest, web::Data<ClientLimits>),
    request_id: CurrentRequestId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(counts) = state.actions.of(body.get("action").and_then(Value::as_str)) else {
        return act(&state, &req, &limits, request_id, key, body).await;
    };
    let began = Instant::now();
    let in_flight = counts.in_flight();
    let res = act(&state, &req, &limits, request_id, key, body).await;
    drop(in_flight);
    let status = match &res {
        Ok(reply) => reply.status(),
        Err(err) => err.status_code(),
    };
    counts.answered(status.as_u16(), began.elapsed());
    res
}

/// One `/handle` action, sent to its service.
async fn act(
    state: &BrokerState,
    req: &HttpRequest,
    limits: &ClientLimits,
    request_id: CurrentRequestId,
    key: Option<String>,
    body: Value,
) -> Result<HttpResponse, ApiError> {
    limits.request(req)?;
    let request_id = request_id.into_inner();
    match body.get("action").and_then(Value::as_str) {
        Some("auth") => {
            limits.login(req)?;
            authenticate(state, member(&body, "auth")?, request_id).await
        }
        Some("mail") => {
            state.mail_gate.admit(req).await?;
            let bearer = bearer_token(req).map(|t| SecretString::from(t.to_owned()));
            mail(state, member(&body, "mail")?, (request_id, bearer, key)).await
        }
        Some("event") => {
            let payload: EventPayload = member(&body, "event")?;
            if payload.name.trim() == "mail" {
                state.mail_gate.admit(req).await?;
            }
            publish_event(state, payload, request_id, key).await
        }
        Some("log") => {
            let payload: LogPayload = member(&body, "log")?;
            let name = payload.name.clone();
            write_log(&state.logs.write, state, payload.idempotent(key), request_id).await?;
            Ok(reply(StatusCode::ACCEPTED, Envelope::ok(format!("Processed payload via RPC: {name}"))))
        }
        _ => Err(ApiError(ServiceError::BadRequest("unknown action".into()))),
    }
}

#[tracing::instrument(name = "action auth", skip_all, fields(action = "auth"))]
async fn authenticate(
    state: &BrokerState,
    payload: AuthPayload,
    request_id: RequestId,
) -> Result<HttpResponse, ApiError> {
    let msg = Authenticate {
        email: payload.email,
        password: payload.password,
        request_id: Some(request_id),
        span: tracing::Span::current(),
    };
    let done = ask(&state.auth, msg, state.timeout, "auth").await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::with_data("Authenticated!", done.user).with_token(done.token)))
}

#[tracing::instrument(name = "action mail", skip_all, fields(action = "mail"))]
async fn mail(
    state: &BrokerState,
    payload: MailRequest,
    by: (RequestId, Option<SecretString>, Option<String>),
) -> Result<HttpResponse, ApiError> {
    let to = crate::mailer::send_mail(&state.mail, payload, by, state.timeout).await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::ok(format!("Message sent to {to}"))))
}

/// An event to publish (the `event` action).
#[derive(Deserialize, utoipa::ToSchema)]
struct EventPayload {
    /// The caller's id for the event: publishing the same id again stores it once.
    #[serde(default)]
    #[schema(pattern = "^[!-~]{1,128}$")]
    id: Option<String>,
    /// The event's name (its routing key is `log.<LEVEL>`; `mail` runs a mail job).
    #[schema(pattern = "\\S")]
    name: String,
    /// Any JSON; stored as text.
    #[serde(default)]
    data: Value,
    /// Severity (`INFO` when absent).
    #[serde(default)]
    #[schema(value_type = Option<LogLevel>)]
    level: Option<String>,
}

/// `{"action":"event","event":{"id"?,"name","data","level"}}`: 202 once the event is
/// stored by RabbitMQ (its confirm) or the in-process bus's queue, with the event id in
/// `data`. The id is the caller's (`id`, else the Idempotency-Key header), else a fresh one.
#[tracing::instrument(name = "action event", skip_all, fields(action = "event"))]
async fn publish_event(
    state: &BrokerState,
    payload: EventPayload,
    request_id: RequestId,
    key: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let id = match payload.id.as_deref() {
        Some(id) => Some(checked_key("event id", id)?),
        None => key,
    };
    let name = payload.name.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError(ServiceError::Invalid("event name must not be empty".into())));
    }
    let level = match payload.level.as_deref() {
        None => LogLevel::Info,
        Some(raw) => LogLevel::parse(raw)
            .ok_or_else(|| ApiError(ServiceError::Invalid(format!("unknown level \"{raw}\""))))?,
    };
    let data = match payload.data {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let events = state.events.as_ref().ok_or_else(|| ApiError(ServiceError::unavailable("events")))?;
    let span = tracing::Span::current();
    let msg = PublishEvent { id, name: name.clone(), data, level, request_id: Some(request_id), span };
    let id = ask(events, msg, state.timeout, "events").await?;
    Ok(reply(
        StatusCode::ACCEPTED,
        Envelope::with_data(format!("Event published: {name}"), serde_json::json!({ "id": id })),
    ))
}

/// Store an entry written through the broker (service `broker`, this request's id). No span
/// of its own (the hot path): the request's span is its handler's, the logger's `WriteLog`
/// span its actor message's.
async fn write_log(
    to: &Recipient<WriteLog>,
    state: &BrokerState,
    payload: LogPayload,
    request_id: RequestId,
) -> Result<String, ApiError> {
    let entry = payload.into_entry("broker", request_id)?.with_service("broker")?;
    ask(to, WriteLog(entry), state.timeout, "logger").await
}

/// `POST /log-grpc`: the `log` payload, written through the logger's gRPC endpoint in split
/// mode (directly to the logger actor in `troupe up`).
#[utoipa::path(post, path = "/log-grpc", tag = "broker", request_body = LogRequest,
    params(IdempotencyKeyHeader),
    responses(
        (status = 202, description = "Stored", body = Envelope),
        (status = 400, description = "Malformed JSON or missing `log`", body = Envelope),
        (status = 422, description = "A value is invalid", body = Envelope),
        (status = 503, description = "The logger is unavailable", body = Envelope),
        BodyRefused))]
async fn log_grpc(
    state: web::Data<BrokerState>,
    request_id: CurrentRequestId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<Value>,
) -> Result<HttpResponse, ApiError> {
    let payload: LogPayload = member(&body, "log")?;
    write_log(&state.logs.write_grpc, &state, payload.idempotent(key), request_id.into_inner()).await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::ok("logged")))
}

/// The broker's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(hit, handle, log_grpc))]
pub(crate) struct Doc;

/// The body of `POST /handle`: `action` names the member that carries the payload.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
#[allow(dead_code, reason = "documents the body `handle` reads member by member")]
enum HandleRequest {
    /// Check credentials.
    Auth(AuthAction),
    /// Send a mail.
    Mail(MailAction),
    /// Publish an event.
    Event(EventAction),
    /// Store a log entry.
    Log(LogAction),
}

/// The `action` of each [`HandleRequest`].
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum AuthTag {
    Auth,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum MailTag {
    Mail,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum EventTag {
    Event,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
#[allow(dead_code, reason = "documentation only")]
enum LogTag {
    Log,
}

/// `{"action":"auth","auth":{"email","password"}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct AuthAction {
    action: AuthTag,
    auth: AuthPayload,
}

/// `{"action":"mail","mail":{"from","to","subject","message"}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct MailAction {
    action: MailTag,
    mail: MailRequest,
}

/// `{"action":"event","event":{"id"?,"name","data","level"?}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct EventAction {
    action: EventTag,
    event: EventPayload,
}

/// `{"action":"log","log":{"name","data",...}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct LogAction {
    action: LogTag,
    log: LogPayload,
}

/// The body of `POST /log-grpc`: `{"log":{"name","data",...}}`.
#[derive(Deserialize, utoipa::ToSchema)]
#[allow(dead_code, reason = "documentation only")]
struct LogRequest {
    log: LogPayload,
}
