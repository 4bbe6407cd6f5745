//! The listener service's routes (`troupe serve listener`, and `troupe up`): `GET /status`
//! shows the consumer's state (transport, queue, consumer tag, counters) beside the shared
//! `/healthz` and `/readyz`. With the in-process bus, `GET /dead-letters` lists the events
//! refused for good (newest first, `?limit=`, at most 500) and `POST /dead-letters/replay`
//! queues them again (`{"seq": N}` for one, an empty body for all).
//!
//! The broker serves the same two routes for the console ([`broker_routes`]): from the bus
//! itself in `troupe up`, forwarded to `LISTENER_URL` in split mode (a deadline per call).

use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
use troupe_actors::events::bus::{ListDeadLetters, ReplayDeadLetters};
use troupe_actors::events::{Drain, ListenerStats};
use troupe_core::{Envelope, ServiceError};

use crate::api::{ApiError, ask, reply};

/// Where the broker finds the dead letters it shows the console.
#[derive(Clone)]
pub enum DeadLetterSource {
    /// The in-process bus (`troupe up` without RABBIT_URL).
    Local(DeadLetters),
    /// The listener at LISTENER_URL, asked over HTTP.
    Remote {
        /// LISTENER_URL.
        base: url::Url,
        /// A client with a total deadline per call.
        http: reqwest::Client,
    },
    /// None here (404), and why.
    Missing(String),
}

impl DeadLetterSource {
    /// The listener at `base` (LISTENER_URL), each call answered within `within`.
    pub fn remote(base: &url::Url, within: Duration) -> anyhow::Result<Self> {
        Ok(Self::Remote { base: base.clone(), http: crate::proxy::client(within)? })
    }

    /// Forward `request` to the listener; its envelope comes back as it is.
    async fn forward(request: reqwest::RequestBuilder) -> Result<HttpResponse, ApiError> {
        let res = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "listener unreachable");
            ApiError(ServiceError::unavailable("listener"))
        })?;
        let status = res.status();
        let envelope: Option<Envelope> = res.json().await.ok();
        match envelope {
            Some(envelope) if status == reqwest::StatusCode::OK && !envelope.error => {
                Ok(reply(StatusCode::OK, envelope))
            }
            envelope => Err(ApiError(crate::proxy::remote_error(status, envelope, "listener"))),
        }
    }
}

/// The broker's `GET /dead-letters` and `POST /dead-letters/replay`, from `source`.
pub fn broker_routes(source: DeadLetterSource) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(source.clone()))
            .route("/dead-letters", web::get().to(broker_dead_letters))
            .route("/dead-letters/replay", web::post().to(broker_replay));
    }
}

/// The events refused for good (the console's Dead letters view).
#[utoipa::path(get, path = "/dead-letters", tag = "events", params(Limit),
    responses(
        (status = 200, description = "Dead letters, newest first", body = Envelope),
        (status = 400, description = "A bad query parameter", body = Envelope),
        (status = 404, description = "No dead letters here (RabbitMQ keeps them in its `.dead` queue, or no listener is configured)", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn broker_dead_letters(
    source: web::Data<DeadLetterSource>,
    query: web::Query<Limit>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_DEAD_LETTERS);
    match source.get_ref() {
        DeadLetterSource::Local(bus) => list(bus, limit).await,
        DeadLetterSource::Remote { base, http } => {
            let mut url = base.join("dead-letters").map_err(|_| ApiError(ServiceError::Internal))?;
            url.query_pairs_mut().append_pair("limit", &limit.to_string());
            DeadLetterSource::forward(http.get(url)).await
        }
        DeadLetterSource::Missing(why) => Err(ApiError(ServiceError::NotFound(why.clone()))),
    }
}

/// Queue dead letters again.
#[utoipa::path(post, path = "/dead-letters/replay", tag = "events",
    request_body(content = Option<Replay>, description = "`{\"seq\": N}` for one dead letter, no body for all", content_type = "application/json"),
    responses(
        (status = 200, description = "How many were queued again, in `data.replayed`", body = Envelope),
        (status = 400, description = "Not `{\"seq\": N}` nor empty", body = Envelope),
        (status = 404, description = "No dead letters here", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn broker_replay(
    source: web::Data<DeadLetterSource>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let seq = replay_seq(&body)?;
    match source.get_ref() {
        DeadLetterSource::Local(bus) => replay_on(bus, seq).await,
        DeadLetterSource::Remote { base, http } => {
            let url = base.join("dead-letters/replay").map_err(|_| ApiError(ServiceError::Internal))?;
            let body = seq.map(|seq| serde_json::json!({ "seq": seq }).to_string()).unwrap_or_default();
            let request = http.post(url).header("content-type", "application/json").body(body);
            DeadLetterSource::forward(request).await
        }
        DeadLetterSource::Missing(why) => Err(ApiError(ServiceError::NotFound(why.clone()))),
    }
}

/// Most dead letters listed at once.
const MAX_DEAD_LETTERS: u32 = 500;
/// Deadline for the bus to answer a dead-letter request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// What the listener's routes read.
#[derive(Clone)]
pub struct ListenerState {
    /// The consumer's counters.
    pub stats: Arc<ListenerStats>,
    /// The consumer (the RabbitMQ listener or the in-process bus), drained at shutdown. It
    /// also keeps the listener's address alive, so its supervisor keeps restarting it.
    pub drain: Recipient<Drain>,
    /// The in-process bus's dead letters; `None` over RabbitMQ (they are in its `.dead`
    /// queue).
    pub dead_letters: Option<DeadLetters>,
}

/// Where the in-process bus's dead letters are listed and replayed.
#[derive(Clone)]
pub struct DeadLetters {
    /// Lists them.
    pub list: Recipient<ListDeadLetters>,
    /// Queues them again.
    pub replay: Recipient<ReplayDeadLetters>,
}

/// The listener's routes.
pub fn routes(state: ListenerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/status", web::get().to(status))
            .route("/dead-letters", web::get().to(dead_letters))
            .route("/dead-letters/replay", web::post().to(replay));
    }
}

/// The consumer's state: transport, queue, consumer tag, counters.
#[utoipa::path(get, path = "/status", tag = "events",
    responses((status = 200, description = "The listener's state in `data`", body = Envelope)))]
async fn status(state: web::Data<ListenerState>) -> HttpResponse {
    reply(StatusCode::OK, Envelope::with_data("listener", state.stats.snapshot()))
}

fn bus(state: &ListenerState) -> Result<&DeadLetters, ApiError> {
    state.dead_letters.as_ref().ok_or_else(|| {
        let queue = state.stats.snapshot().queue;
        ApiError(ServiceError::NotFound(format!(
            "dead letters are kept by RabbitMQ, in the queue {queue}.dead"
        )))
    })
}

/// How many dead letters to list.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Limit {
    /// 100 by default; 0 asks for 1, more than 500 for 500.
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// The events refused for good.
#[utoipa::path(get, path = "/dead-letters", tag = "events", params(Limit),
    responses(
        (status = 200, description = "Dead letters, newest first", body = Envelope),
        (status = 400, description = "A bad query parameter", body = Envelope),
        (status = 404, description = "No dead letters here (RabbitMQ keeps them in its `.dead` queue, or no listener is configured)", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn dead_letters(
    state: web::Data<ListenerState>,
    query: web::Query<Limit>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_DEAD_LETTERS);
    list(bus(&state)?, limit).await
}

async fn list(bus: &DeadLetters, limit: u32) -> Result<HttpResponse, ApiError> {
    let letters = ask(&bus.list, ListDeadLetters(limit), ANSWER_WITHIN, "events").await?;
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{} dead letters", letters.len()), letters)))
}

/// Which dead letter to replay.
#[derive(Deserialize, utoipa::ToSchema)]
struct Replay {
    /// Its `seq`; absent: every one.
    #[serde(default, deserialize_with = "integral")]
    seq: Option<i64>,
}

/// An integer, also when written with a zero fraction (`7.0`), as JSON Schema counts it.
fn integral<'de, D: serde::Deserializer<'de>>(from: D) -> Result<Option<i64>, D::Error> {
    let Some(n) = Option::<serde_json::Number>::deserialize(from)? else { return Ok(None) };
    let whole = n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15).map(|f| f as i64);
    n.as_i64()
        .or(whole)
        .map(Some)
        .ok_or_else(|| serde::de::Error::custom(format!("invalid seq {n}: an integer expected")))
}

/// The dead letter a replay names (`{"seq": N}`), or every one (no body, `null` or `{}`).
fn replay_seq(body: &[u8]) -> Result<Option<i64>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad =
        |e: String| ApiError(ServiceError::BadRequest(format!("expected {{\"seq\": N}} or no body: {e}")));
    // An object or `null`: serde would read the struct from an array too.
    match serde_json::from_slice::<serde_json::Value>(body).map_err(|e| bad(e.to_string()))? {
        serde_json::Value::Null => Ok(None),
        object @ serde_json::Value::Object(_) => {
            Replay::deserialize(object).map(|r| r.seq).map_err(|e| bad(e.to_string()))
        }
        _ => Err(bad("not an object".into())),
    }
}

/// Queue dead letters again.
#[utoipa::path(post, path = "/dead-letters/replay", tag = "events",
    request_body(content = Option<Replay>, description = "`{\"seq\": N}` for one dead letter, no body for all", content_type = "application/json"),
    responses(
        (status = 200, description = "How many were queued again, in `data.replayed`", body = Envelope),
        (status = 400, description = "Not `{\"seq\": N}` nor empty", body = Envelope),
        (status = 404, description = "No dead letters here", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn replay(state: web::Data<ListenerState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    replay_on(bus(&state)?, replay_seq(&body)?).await
}

async fn replay_on(bus: &DeadLetters, seq: Option<i64>) -> Result<HttpResponse, ApiError> {
    let replayed = ask(&bus.replay, ReplayDeadLetters(seq), ANSWER_WITHIN, "events").await?;
    let data = serde_json::json!({ "replayed": replayed });
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{replayed} events queued again"), data)))
}

/// The listener's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(status, dead_letters, replay))]
pub(crate) struct Doc;

/// The dead-letter operations the broker serves ([`broker_routes`]).
#[derive(utoipa::OpenApi)]
#[openapi(paths(broker_dead_letters, broker_replay))]
pub(crate) struct BrokerDoc;
