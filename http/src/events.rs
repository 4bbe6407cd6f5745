//! The listener service's routes (`troupe serve listener`, and `troupe up`): `GET /status`
//! shows the consumer's state (transport, queue, consumer tag, counters) beside the shared
//! `/healthz` and `/readyz`. `GET /dead-letters` lists the events refused for good (newest
//! first, `?limit=`, at most 500) and `POST /dead-letters/replay` queues them again
//! (`{"seq": N}` for one, an empty body for all).
//!
//! The broker serves the same two routes for the console ([`broker_routes`]), with the same
//! handlers: they ask [`DeadLetters`], two recipients behind which is the in-process bus, the
//! reader of RabbitMQ's `<queue>.dead` ([`DeadLetterQueue`]), a [`DeadLetterProxy`] to the
//! listener at `LISTENER_URL` (split mode, a deadline per call), or nothing (404, and why).

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::{Actor, Addr, Context, Handler, Recipient, ResponseFuture};
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use serde::Deserialize;
#[cfg(doc)]
use troupe_actors::events::dead::DeadLetterQueue;
use troupe_actors::events::{Drain, ListenerStats};
use troupe_core::messages::{DeadLetter, ListDeadLetters, ReplayDeadLetters};
use troupe_core::{Envelope, ServiceError};

use crate::api::{ApiError, ask, reply};

/// The broker's `GET /dead-letters` and `POST /dead-letters/replay`, from `letters`.
pub fn broker_routes(letters: DeadLetters) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| dead_letter_routes(cfg, &letters)
}

fn dead_letter_routes(cfg: &mut ServiceConfig, letters: &DeadLetters) {
    cfg.app_data(web::Data::new(letters.clone()))
        .route("/dead-letters", web::get().to(dead_letters))
        .route("/dead-letters/replay", web::post().to(replay));
}

/// Most dead letters listed at once.
const MAX_DEAD_LETTERS: u32 = 500;
/// Deadline for the bus (or RabbitMQ's `.dead` reader) to answer a dead-letter request.
const ANSWER_WITHIN: Duration = Duration::from_secs(10);
/// Deadline of the `.dead` reader for one request (inside [`ANSWER_WITHIN`]).
pub const DEAD_QUEUE_WITHIN: Duration = Duration::from_secs(8);

/// What the listener's routes read.
#[derive(Clone)]
pub struct ListenerState {
    /// The consumer's counters.
    pub stats: Arc<ListenerStats>,
    /// The consumer (the RabbitMQ listener or the in-process bus), drained at shutdown. It
    /// also keeps the listener's address alive, so its supervisor keeps restarting it.
    pub drain: Recipient<Drain>,
    /// Its dead letters: the in-process bus's, or RabbitMQ's `.dead` queue's.
    pub dead_letters: DeadLetters,
}

/// Where dead letters are listed and replayed: any actor answering both messages (the
/// in-process bus, [`DeadLetterQueue`], [`DeadLetterProxy`], [`NoDeadLetters`]).
#[derive(Clone)]
pub struct DeadLetters {
    /// Lists them.
    pub list: Recipient<ListDeadLetters>,
    /// Queues them again.
    pub replay: Recipient<ReplayDeadLetters>,
}

impl DeadLetters {
    /// The dead letters `keeper` keeps.
    pub fn of<A>(keeper: &Addr<A>) -> Self
    where
        A: Actor + Handler<ListDeadLetters> + Handler<ReplayDeadLetters>,
        A::Context: ToEnvelope<A, ListDeadLetters> + ToEnvelope<A, ReplayDeadLetters>,
    {
        Self { list: keeper.clone().recipient(), replay: keeper.clone().recipient() }
    }

    /// The listener at `base` (LISTENER_URL), each call answered within `within`.
    pub fn remote(base: &url::Url, within: Duration) -> anyhow::Result<Self> {
        let proxy = DeadLetterProxy { base: base.clone(), http: crate::proxy::client(within)? };
        Ok(Self::of(&proxy.start()))
    }

    /// None here: every request is answered 404 with `why`.
    pub fn nowhere(why: impl Into<String>) -> Self {
        Self::of(&NoDeadLetters(why.into()).start())
    }
}

/// The dead letters of the listener at LISTENER_URL, asked over HTTP.
pub struct DeadLetterProxy {
    base: url::Url,
    /// A client with a total deadline per call.
    http: reqwest::Client,
}

impl Actor for DeadLetterProxy {
    type Context = Context<Self>;
}

/// The `data` of the listener's reply to `request`, or the error its envelope names.
async fn forward<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> Result<T, ServiceError> {
    let res = request.send().await.map_err(|e| {
        tracing::warn!(error = %e, "listener unreachable");
        ServiceError::unavailable("listener")
    })?;
    let status = res.status();
    let envelope: Option<Envelope> = res.json().await.ok();
    match envelope {
        Some(Envelope { error: false, data: Some(data), .. }) if status == reqwest::StatusCode::OK => {
            serde_json::from_value(data).map_err(|e| {
                tracing::warn!(error = %e, "the listener's dead letters do not read");
                ServiceError::unavailable("listener")
            })
        }
        envelope => Err(crate::proxy::remote_error(status, envelope, "listener")),
    }
}

impl Handler<ListDeadLetters> for DeadLetterProxy {
    type Result = ResponseFuture<Result<Vec<DeadLetter>, ServiceError>>;

    fn handle(&mut self, ListDeadLetters(limit): ListDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let mut url = self.base.join("dead-letters");
        if let Ok(url) = &mut url {
            url.query_pairs_mut().append_pair("limit", &limit.to_string());
        }
        let http = self.http.clone();
        Box::pin(async move { forward(http.get(url.map_err(|_| ServiceError::Internal)?)).await })
    }
}

impl Handler<ReplayDeadLetters> for DeadLetterProxy {
    type Result = ResponseFuture<Result<u64, ServiceError>>;

    fn handle(&mut self, ReplayDeadLetters(seq): ReplayDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let url = self.base.join("dead-letters/replay");
        let body = seq.map(|seq| serde_json::json!({ "seq": seq }).to_string()).unwrap_or_default();
        let http = self.http.clone();
        Box::pin(async move {
            let url = url.map_err(|_| ServiceError::Internal)?;
            let request = http.post(url).header("content-type", "application/json").body(body);
            let data: serde_json::Value = forward(request).await?;
            data["replayed"].as_u64().ok_or_else(|| {
                tracing::warn!(reply = %data, "the listener's replay reply has no count");
                ServiceError::unavailable("listener")
            })
        })
    }
}

/// No dead letters reachable from here (404), and why.
pub struct NoDeadLetters(String);

impl Actor for NoDeadLetters {
    type Context = Context<Self>;
}

impl Handler<ListDeadLetters> for NoDeadLetters {
    type Result = Result<Vec<DeadLetter>, ServiceError>;

    fn handle(&mut self, _: ListDeadLetters, _: &mut Context<Self>) -> Self::Result {
        Err(ServiceError::NotFound(self.0.clone()))
    }
}

impl Handler<ReplayDeadLetters> for NoDeadLetters {
    type Result = Result<u64, ServiceError>;

    fn handle(&mut self, _: ReplayDeadLetters, _: &mut Context<Self>) -> Self::Result {
        Err(ServiceError::NotFound(self.0.clone()))
    }
}

/// The listener's routes.
pub fn routes(state: ListenerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        dead_letter_routes(cfg, &state.dead_letters);
        cfg.app_data(web::Data::new(state.clone())).route("/status", web::get().to(status));
    }
}

/// The consumer's state: transport, queue, consumer tag, counters.
#[utoipa::path(get, path = "/status", tag = "events",
    responses((status = 200, description = "The listener's state in `data`", body = Envelope)))]
async fn status(state: web::Data<ListenerState>) -> HttpResponse {
    reply(StatusCode::OK, Envelope::with_data("listener", state.stats.snapshot()))
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
        (status = 404, description = "No dead letters reachable here (the broker without LISTENER_URL)", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn dead_letters(
    letters: web::Data<DeadLetters>,
    query: web::Query<Limit>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_DEAD_LETTERS);
    let letters = ask(&letters.list, ListDeadLetters(limit), ANSWER_WITHIN, "events").await?;
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
        (status = 404, description = "No dead letters reachable here (the broker without LISTENER_URL)", body = Envelope),
        (status = 503, description = "The event bus (or the listener) is unavailable", body = Envelope)))]
async fn replay(letters: web::Data<DeadLetters>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let seq = replay_seq(&body)?;
    let replayed = ask(&letters.replay, ReplayDeadLetters(seq), ANSWER_WITHIN, "events").await?;
    let data = serde_json::json!({ "replayed": replayed });
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{replayed} events queued again"), data)))
}

/// The listener's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(status, dead_letters, replay))]
pub(crate) struct Doc;

/// The dead-letter operations the broker serves ([`broker_routes`]): the listener's own.
#[derive(utoipa::OpenApi)]
#[openapi(paths(dead_letters, replay))]
pub(crate) struct BrokerDoc;
