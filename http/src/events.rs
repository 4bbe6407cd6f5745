//! The listener service's routes (`troupe serve listener`, and `troupe up`): `GET /status`
//! shows the consumer's state (transport, queue, consumer tag, counters) beside the shared
//! `/healthz` and `/readyz`. With the in-process bus, `GET /dead-letters` lists the events
//! refused for good (newest first, `?limit=`, at most 500) and `POST /dead-letters/replay`
//! queues them again (`{"seq": N}` for one, an empty body for all).

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

#[derive(Deserialize)]
struct Limit {
    limit: Option<u32>,
}

async fn dead_letters(
    state: web::Data<ListenerState>,
    query: web::Query<Limit>,
) -> Result<HttpResponse, ApiError> {
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_DEAD_LETTERS);
    let letters = ask(&bus(&state)?.list, ListDeadLetters(limit), ANSWER_WITHIN, "events").await?;
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{} dead letters", letters.len()), letters)))
}

#[derive(Deserialize)]
struct Replay {
    seq: Option<i64>,
}

async fn replay(state: web::Data<ListenerState>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let seq = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => {
            serde_json::from_slice::<Replay>(&body)
                .map_err(|e| {
                    ApiError(ServiceError::BadRequest(format!("expected {{\"seq\": N}} or no body: {e}")))
                })?
                .seq
        }
    };
    let replayed = ask(&bus(&state)?.replay, ReplayDeadLetters(seq), ANSWER_WITHIN, "events").await?;
    let data = serde_json::json!({ "replayed": replayed });
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{replayed} events queued again"), data)))
}
