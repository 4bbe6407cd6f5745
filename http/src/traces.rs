//! The recent traces, served by every HTTP service (mounted by [`crate::api::serve`]):
//!
//! - `GET /traces/{trace_id}`: the trace's spans, sorted by start (404 when no span of it is
//!   known, 400 for an id that is not 32 lowercase hex digits);
//! - `GET /traces?request_id=ID&limit=N`: summaries of the most recent traces, newest first.
//!
//! They come from this process's recent-trace store ([`troupe_core::telemetry::store`]); in
//! `troupe up` every service shares it. A split-mode broker ([`TraceRemotes`]) merges in what
//! each remote service holds (2 s each) and names those it could not reach in `missing`.

use std::collections::HashSet;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use futures_util::future::join_all;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use troupe_core::telemetry::store::{self, SpanView, TraceSummary};
use troupe_core::{Envelope, ServiceError};
use url::Url;

use crate::api::{ApiError, reply};

/// How long the broker waits for each remote service's traces.
pub const REMOTE_TIMEOUT: Duration = Duration::from_secs(2);

/// Default and largest `limit` of `GET /traces`.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = store::MAX_TRACES;

/// The services a split-mode broker asks for their spans (app data of the broker's server).
#[derive(Clone)]
pub struct TraceRemotes {
    services: Vec<(String, Url)>,
    client: reqwest::Client,
}

impl TraceRemotes {
    /// Ask `services` (name, base URL) for their part of each trace.
    pub fn new(services: Vec<(String, Url)>) -> anyhow::Result<Self> {
        Ok(Self { services, client: crate::proxy::client(REMOTE_TIMEOUT)? })
    }
}

/// What a broker adds to its server: where its `/traces` answers look for the remote
/// services' spans (split mode: the services `GET /status` asks; in one process, nowhere).
pub fn broker_config(
    status: &crate::status::StatusSource,
) -> anyhow::Result<impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static> {
    let remotes = match status {
        crate::status::StatusSource::Remote { services, .. } => Some(TraceRemotes::new(services.clone())?),
        crate::status::StatusSource::Local { .. } => None,
    };
    let remotes = remotes.map(web::Data::new);
    Ok(move |cfg: &mut web::ServiceConfig| {
        if let Some(remotes) = &remotes {
            cfg.app_data(remotes.clone());
        }
    })
}

/// `GET /traces` and `GET /traces/{trace_id}`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/traces", web::get().to(list)).route("/traces/{trace_id}", web::get().to(one));
}

/// One trace as served.
#[derive(Debug, Serialize, Deserialize)]
struct Trace {
    trace_id: String,
    spans: Vec<SpanView>,
    #[serde(default)]
    missing: Vec<String>,
}

/// One trace: every span recorded for it (by this process, and in split mode by the others).
#[utoipa::path(get, path = "/traces/{trace_id}", tag = "traces",
    params(("trace_id" = String, Path, pattern = "^(?!0{32})[0-9a-f]{32}$", description = "The W3C trace id (not all zeros)")),
    responses(
        (status = 200, description = "The trace's spans in `data`", body = Envelope),
        (status = 400, description = "Not 32 lowercase hex digits", body = Envelope),
        (status = 404, description = "No span of that trace is kept here", body = Envelope)))]
async fn one(
    path: web::Path<String>,
    remotes: Option<web::Data<TraceRemotes>>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let Some(id) = store::parse_trace_id(&raw) else {
        return Err(ApiError(ServiceError::BadRequest(
            "invalid trace id: 32 lowercase hex digits expected".into(),
        )));
    };
    let mut spans = store::get().and_then(|s| s.trace(id)).unwrap_or_default();
    let mut missing = Vec::new();
    if let Some(remotes) = remotes {
        let (client, path) = (&remotes.client, format!("traces/{raw}"));
        let path = path.as_str();
        let asked = remotes
            .services
            .iter()
            .map(|(name, base)| async move { (name, fetch::<Trace>(client, base, path, &[]).await) });
        for (name, got) in join_all(asked).await {
            match got {
                Ok(Some(trace)) => spans.extend(trace.spans),
                Ok(None) => {}
                Err(()) => missing.push(name.clone()),
            }
        }
        let mut seen = HashSet::new();
        spans.retain(|s| seen.insert(s.span_id.clone()));
        spans.sort_by(|a, b| a.start_unix_ms.total_cmp(&b.start_unix_ms));
    }
    if spans.is_empty() {
        let why = match store::get() {
            Some(_) => "trace not found".to_owned(),
            None => "trace not found (tracing is off: OTEL_SDK_DISABLED=true)".to_owned(),
        };
        return Err(ApiError(ServiceError::NotFound(why)));
    }
    let trace = Trace { trace_id: raw, spans, missing };
    Ok(reply(StatusCode::OK, Envelope::with_data("trace", trace)))
}

/// `GET /traces` query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only the traces of this request.
    request_id: Option<String>,
    /// How many, newest first.
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Summaries of the most recent traces, newest first.
#[utoipa::path(get, path = "/traces", tag = "traces", params(ListQuery),
    responses(
        (status = 200, description = "Trace summaries in `data`", body = Envelope),
        (status = 400, description = "A bad query parameter", body = Envelope)))]
async fn list(
    query: web::Query<ListQuery>,
    remotes: Option<web::Data<TraceRemotes>>,
) -> Result<HttpResponse, ApiError> {
    let ListQuery { request_id, limit } = query.into_inner();
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError(ServiceError::BadRequest(format!("limit must be 1 to {MAX_LIMIT}"))));
    }
    let request_id = request_id.filter(|r| !r.is_empty());
    let mut summaries = store::get().map(|s| s.recent(request_id.as_deref(), limit)).unwrap_or_default();
    if let Some(remotes) = remotes {
        let mut params = vec![("limit", limit.to_string())];
        params.extend(request_id.clone().map(|r| ("request_id", r)));
        let params = &params;
        let asked = remotes
            .services
            .iter()
            .map(|(_, base)| fetch::<Vec<TraceSummary>>(&remotes.client, base, "traces", params));
        for got in join_all(asked).await.into_iter().flatten().flatten() {
            summaries.extend(got);
        }
        summaries = merge(summaries);
        summaries.truncate(limit);
    }
    Ok(reply(StatusCode::OK, Envelope::with_data("traces", summaries)))
}

/// One summary per trace id (the earliest-starting part names the root, the span counts
/// add up), newest first.
fn merge(all: Vec<TraceSummary>) -> Vec<TraceSummary> {
    let mut merged: Vec<TraceSummary> = Vec::with_capacity(all.len());
    for s in all {
        match merged.iter_mut().find(|m| m.trace_id == s.trace_id) {
            Some(m) => {
                let end = (m.start_unix_ms + m.duration_ms).max(s.start_unix_ms + s.duration_ms);
                m.spans += s.spans;
                m.error |= s.error;
                if m.request_id.is_none() {
                    m.request_id.clone_from(&s.request_id);
                }
                if s.start_unix_ms < m.start_unix_ms {
                    (m.name, m.service, m.start_unix_ms) = (s.name, s.service, s.start_unix_ms);
                }
                m.duration_ms = end - m.start_unix_ms;
            }
            None => merged.push(s),
        }
    }
    merged.sort_by(|a, b| b.start_unix_ms.total_cmp(&a.start_unix_ms));
    merged
}

/// `GET base/path?params` of a remote service, its envelope's `data` as `T`: `Ok(None)` for
/// a 404 (it knows nothing of it), `Err` when it cannot be reached or answers otherwise.
async fn fetch<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    base: &Url,
    path: &str,
    params: &[(&str, String)],
) -> Result<Option<T>, ()> {
    let mut url = base.join(path).map_err(drop)?;
    if !params.is_empty() {
        url.query_pairs_mut().extend_pairs(params);
    }
    let res = client.get(url).send().await.map_err(|e| {
        tracing::debug!(error = %e, "a service's traces could not be read");
    })?;
    if res.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    if !res.status().is_success() {
        return Err(());
    }
    let body: Value = res.json().await.map_err(drop)?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    serde_json::from_value(data).map(Some).map_err(drop)
}

/// `GET /traces` and `GET /traces/{trace_id}`, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, one))]
pub(crate) struct Doc;
