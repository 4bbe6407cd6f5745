//! The logger's HTTP API (`LOGGER_PORT`, 8083): `POST /log`, `GET /logs`,
//! `GET /logs/stream` (the live tail, [`crate::tail`]), `GET /logs/{id}`.
//!
//! The read routes are shared with the broker, which serves the same `GET /logs`,
//! `GET /logs/stream` and `GET /logs/{id}` (forwarding to the logger) so the console needs
//! only the broker's URL.

use std::time::Duration;

use actix::Recipient;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse, Responder};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use troupe_core::messages::{
    GetLog, LogCursor, LogEntry, LogFilter, LogLevel, LogPage, NewLogEntry, QueryLogs, WriteLog,
};
use troupe_core::{Envelope, RequestId, ServiceError};

use crate::api::{ApiError, CurrentRequestId, IdempotencyKey, JsonBody, ask, reply};
use crate::openapi::{BodyRefused, IdempotencyKeyHeader, LogReadRefused, Reply, Stored};
use crate::reads::Reader;
use crate::tail::{LogTail, TailSource};

/// Default page size of `GET /logs`.
pub const DEFAULT_PAGE: u32 = 50;

/// Where log requests go: the logger actor, or proxies to a remote logger.
#[derive(Clone)]
pub struct LogClients {
    /// Stores entries (`POST /log`, the broker's `log` action).
    pub write: Recipient<WriteLog>,
    /// Stores entries through gRPC in split mode (the broker's `POST /log-grpc`).
    pub write_grpc: Recipient<WriteLog>,
    /// Lists entries.
    pub query: Recipient<QueryLogs>,
    /// Reads one entry.
    pub get: Recipient<GetLog>,
    /// Follows new entries (`GET /logs/stream`).
    pub tail: LogTail,
    /// Deadline for each call.
    pub timeout: Duration,
}

/// The body of `POST /log`: the Go platform's `{name, data}` plus Troupe's optional fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct LogPayload {
    /// What happened.
    #[schema(max_length = 256)]
    pub name: String,
    /// Free text.
    pub data: String,
    /// `INFO` (default), `WARNING`, ...
    #[serde(default)]
    #[schema(schema_with = crate::openapi::level_or_default)]
    pub level: Option<String>,
    /// The writing service.
    #[serde(default)]
    #[schema(max_length = 256)]
    pub service: Option<String>,
    /// The causing request (defaults to this request's id).
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9_.:/+=@-]{0,128}$")]
    pub request_id: Option<String>,
    /// The source event's id (stored at most once).
    #[serde(default)]
    #[schema(max_length = 256)]
    pub event_id: Option<String>,
}

impl LogPayload {
    /// The payload with `key` (an Idempotency-Key) as its event id when it has none, so that
    /// a retried write is stored once.
    pub fn idempotent(mut self, key: Option<String>) -> Self {
        if self.event_id.as_deref().is_none_or(str::is_empty) {
            self.event_id = key.map(|k| format!("idempotency:{k}"));
        }
        self
    }

    /// The entry to store; `default_service` and `request_id` fill what the payload lacks.
    /// An unknown level, a malformed request id or an over-long field is `Invalid`.
    pub fn into_entry(
        self,
        default_service: &str,
        request_id: RequestId,
    ) -> Result<NewLogEntry, ServiceError> {
        let level = match self.level.as_deref() {
            None | Some("") => LogLevel::Info,
            Some(raw) => LogLevel::parse(raw)
                .ok_or_else(|| ServiceError::Invalid(format!("invalid \"level\": {raw:?}")))?,
        };
        let request_id = match self.request_id.as_deref() {
            None | Some("") => request_id,
            Some(raw) => RequestId::parse(raw).ok_or_else(|| {
                ServiceError::Invalid(
                    "invalid \"request_id\": 1 to 128 of A-Z a-z 0-9 -_.:/+=@ expected".into(),
                )
            })?,
        };
        let service = self.service.filter(|s| !s.is_empty()).unwrap_or_else(|| default_service.to_owned());
        NewLogEntry::new(self.name, self.data)?
            .with_level(level)
            .with_request_id(Some(request_id))
            .with_service(service)?
            .with_event_id(self.event_id.filter(|s| !s.is_empty()))
    }
}

/// The logger service's routes.
pub fn routes(clients: LogClients) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(clients.clone())).route("/log", web::post().to(write_log));
        read_routes(cfg);
    }
}

/// `GET /logs`, `GET /logs/stream` and `GET /logs/{id}`; needs `web::Data<LogClients>`.
pub fn read_routes(cfg: &mut ServiceConfig) {
    // `/logs/stream` before `/logs/{id}`, which would take it for an id.
    cfg.route("/logs", web::get().to(list_logs))
        .route("/logs/stream", web::get().to(stream_logs))
        .route("/logs/{id}", web::get().to(get_log));
}

/// Store one entry (the Go platform's `{name, data}`, plus Troupe's optional fields).
#[utoipa::path(post, path = "/log", tag = "logger", request_body = LogPayload,
    params(IdempotencyKeyHeader),
    responses(
        (status = 202, description = "Stored; its id in `data`", body = Reply<Stored>),
        (status = 400, description = "Malformed JSON or a missing field", body = Envelope),
        (status = 422, description = "A value is invalid (level, request id, field length)", body = Envelope),
        (status = 503, description = "The log store is unavailable", body = Envelope),
        BodyRefused))]
#[tracing::instrument(name = "logger.write", skip_all)]
async fn write_log(
    clients: web::Data<LogClients>,
    request_id: CurrentRequestId,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(payload): JsonBody<LogPayload>,
) -> Result<HttpResponse, ApiError> {
    let entry = payload.idempotent(key).into_entry("logger", request_id.into_inner())?;
    let id = ask(&clients.write, WriteLog(entry), clients.timeout, "logger").await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::with_data("logged", json!({"id": id}))))
}

/// Query parameters of `GET /logs`, as text so each bad one gets a clear 400.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Exact name.
    name: Option<String>,
    /// Exact level.
    #[param(schema_with = crate::openapi::level_or_empty)]
    level: Option<String>,
    /// Exact service.
    service: Option<String>,
    /// Exact request id.
    request_id: Option<String>,
    /// Exact trace id (32 lowercase hex digits).
    #[param(pattern = "^([0-9a-f]{32})?$")]
    trace_id: Option<String>,
    /// Stored at or after (RFC 3339).
    #[param(schema_with = crate::openapi::time_or_empty)]
    since: Option<String>,
    /// Stored before (RFC 3339).
    #[param(schema_with = crate::openapi::time_or_empty)]
    until: Option<String>,
    /// Page size, 1 to 500 (50 by default).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the previous page.
    #[param(pattern = "^([0-9]{1,18}-[0-9A-Fa-f]{24})?$")]
    cursor: Option<String>,
}

fn bad(msg: String) -> ApiError {
    ApiError(ServiceError::BadRequest(msg))
}

fn time(field: &str, raw: Option<String>) -> Result<Option<DateTime<Utc>>, ApiError> {
    raw.filter(|s| !s.is_empty())
        .map(|s| {
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| bad(format!("invalid \"{field}\": expected an RFC 3339 time")))
        })
        .transpose()
}

impl ListParams {
    fn into_query(self) -> Result<QueryLogs, ApiError> {
        let text = |v: Option<String>| v.filter(|s| !s.is_empty());
        let level = text(self.level)
            .map(|l| LogLevel::parse(&l).ok_or_else(|| bad(format!("invalid \"level\": {l:?}"))))
            .transpose()?;
        let limit = match text(self.limit) {
            None => DEFAULT_PAGE,
            Some(l) => l
                .parse::<u32>()
                .ok()
                .filter(|n| (1..=troupe_core::messages::MAX_LOG_PAGE).contains(n))
                .ok_or_else(|| {
                    bad(format!("invalid \"limit\": expected 1..={}", troupe_core::messages::MAX_LOG_PAGE))
                })?,
        };
        let cursor = text(self.cursor).map(|c| LogCursor::decode(&c)).transpose()?;
        let trace_id = text(self.trace_id)
            .map(|t| match troupe_core::telemetry::store::parse_trace_id(&t) {
                Some(_) => Ok(t),
                None => Err(bad("invalid \"trace_id\": expected 32 lowercase hex digits".into())),
            })
            .transpose()?;
        let filter = LogFilter {
            name: text(self.name),
            level,
            service: text(self.service),
            request_id: text(self.request_id),
            trace_id,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
        };
        Ok(QueryLogs { filter, limit, cursor })
    }
}

/// The query of `GET /logs` (and the filters of `GET /logs/stream`), checked.
fn list_query(query: web::Query<Vec<(String, String)>>) -> Result<QueryLogs, ApiError> {
    let mut params = ListParams::default();
    for (key, value) in query.into_inner() {
        let slot = match key.as_str() {
            "name" => &mut params.name,
            "level" => &mut params.level,
            "service" => &mut params.service,
            "request_id" => &mut params.request_id,
            "trace_id" => &mut params.trace_id,
            "since" => &mut params.since,
            "until" => &mut params.until,
            "limit" => &mut params.limit,
            "cursor" => &mut params.cursor,
            _ => continue,
        };
        *slot = Some(value);
    }
    params.into_query()
}

/// Entries, newest first, filtered; a page at a time (`next_cursor`).
#[utoipa::path(get, path = "/logs", tag = "logger", params(ListParams),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "A page of entries", body = Reply<LogPage>),
        (status = 400, description = "A bad query parameter", body = Envelope),
        LogReadRefused))]
#[tracing::instrument(name = "logger.list", skip_all)]
async fn list_logs(
    clients: web::Data<LogClients>,
    reader: Reader,
    query: web::Query<Vec<(String, String)>>,
) -> impl Responder {
    let msg = list_query(query)?;
    let mut page: LogPage = ask(&clients.query, msg, clients.timeout, "logger").await?;
    page.entries.retain(|e| reader.may_see(&e.name));
    Ok::<_, ApiError>(reply(StatusCode::OK, Envelope::with_data("logs", page)))
}

/// One entry by id.
#[utoipa::path(get, path = "/logs/{id}", tag = "logger",
    params(("id" = String, Path, description = "The entry's id (24 hex digits)")),
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "The entry", body = Reply<LogEntry>),
        (status = 403, description = "A login audit entry, and the reader is no admin", body = Envelope),
        (status = 404, description = "No such entry", body = Envelope),
        LogReadRefused))]
#[tracing::instrument(name = "logger.get", skip_all)]
async fn get_log(
    clients: web::Data<LogClients>,
    reader: Reader,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let entry: LogEntry = ask(&clients.get, GetLog(id.into_inner()), clients.timeout, "logger").await?;
    if !reader.may_see(&entry.name) {
        return Err(ApiError(ServiceError::Forbidden));
    }
    Ok(reply(StatusCode::OK, Envelope::with_data("log entry", entry)))
}

/// `GET /logs/stream`: new entries as server-sent events ([`crate::tail`]).
#[utoipa::path(get, path = "/logs/stream", tag = "logger", security((), ("bearer" = [])), params(ListParams,
        ("after" = Option<String>, Query, description = "Resume after this entry's cursor (as `Last-Event-ID`)"),
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this entry (sent by a reconnecting browser)")),
    responses(
        (status = 200, description = "Server-sent events: `id:` the entry's cursor, `data:` the entry", body = String, content_type = "text/event-stream"),
        (status = 400, description = "A bad query parameter", body = Envelope),
        (status = 401, description = "No valid bearer token where reads need one (`READ_AUTH`, on the broker)", body = Envelope),
        (status = 403, description = "The login audit could be in the stream, and the reader is no admin", body = Envelope),
        (status = 404, description = "No live tail here", body = Envelope),
        (status = 503, description = "The logger is unavailable", body = Envelope)))]
#[tracing::instrument(name = "logger.stream", skip_all)]
async fn stream_logs(
    clients: web::Data<LogClients>,
    (req, reader): (HttpRequest, Reader),
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    // `after` (a cursor) resumes like `Last-Event-ID`, for a client that closed its stream
    // on purpose (the console's Pause); the header, sent by a reconnecting browser, wins.
    let after = query.iter().find(|(k, _)| k == "after").map(|(_, v)| v.clone());
    let filter = list_query(query)?.filter;
    // A live tail is not filtered as it goes: a non-admin must name entries other than the audit.
    if !reader.may_see(filter.name.as_deref().unwrap_or(crate::reads::AUDIT)) {
        return Err(ApiError(ServiceError::Forbidden));
    }
    let header = req.headers().get("last-event-id").and_then(|v| v.to_str().ok()).map(str::trim);
    let last_id = header.or(after.as_deref()).filter(|id| !id.is_empty());
    let tail = &clients.tail;
    match &tail.source {
        TailSource::Local(subscribe) => {
            let live = subscribe
                .send(troupe_actors::logger::SubscribeLogs)
                .timeout(clients.timeout)
                .await
                .map_err(crate::api::unavailable("logger"))?;
            // Subscribed first, read back second: nothing stored in between is missed.
            let cursor = last_id.and_then(|id| LogCursor::decode(id).ok());
            let backlog = match cursor {
                Some(cursor) => backlog(&clients, &filter, &cursor).await?,
                None => Vec::new(),
            };
            let events = crate::tail::follow(live, backlog, filter, tail.closing.clone());
            Ok(crate::tail::response().streaming(events))
        }
        TailSource::Remote { url, http } => {
            let events = crate::tail::forward(
                http,
                url,
                req.query_string(),
                last_id,
                clients.timeout,
                tail.closing.clone(),
            )
            .await?;
            Ok(crate::tail::response().streaming(events))
        }
        TailSource::Off => Err(ApiError(ServiceError::NotFound("no live log tail here".into()))),
    }
}

/// What was stored after `cursor` and passes `filter`, oldest first (at most
/// [`crate::tail::BACKLOG`]).
async fn backlog(
    clients: &LogClients,
    filter: &LogFilter,
    cursor: &LogCursor,
) -> Result<Vec<troupe_core::messages::LogEntry>, ApiError> {
    let since = DateTime::from_timestamp_millis(cursor.created_ms);
    let filter = LogFilter { since: filter.since.max(since), ..filter.clone() };
    let msg = QueryLogs { filter, limit: crate::tail::BACKLOG, cursor: None };
    let page = ask(&clients.query, msg, clients.timeout, "logger").await?;
    let mut entries: Vec<_> = page.entries.into_iter().filter(|e| crate::tail::after(e, cursor)).collect();
    entries.reverse();
    Ok(entries)
}

/// The logger's own operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(write_log))]
pub(crate) struct Doc;

/// The read operations the logger and the broker both serve ([`read_routes`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(list_logs, stream_logs, get_log))]
pub(crate) struct ReadDoc;
