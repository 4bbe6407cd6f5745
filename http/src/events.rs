//! The listener service's routes (`troupe serve listener`, and `troupe up`): `GET /status`
//! shows the consumer's state (transport, queue, consumer tag, counters) beside the shared
//! `/healthz` and `/readyz`.

use std::sync::Arc;

use actix::Recipient;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use troupe_actors::events::{Drain, ListenerStats};
use troupe_core::Envelope;

use crate::api::reply;

/// What the listener's routes read.
#[derive(Clone)]
pub struct ListenerState {
    /// The consumer's counters.
    pub stats: Arc<ListenerStats>,
    /// The consumer (the RabbitMQ listener or the in-process bus), drained at shutdown. It
    /// also keeps the listener's address alive, so its supervisor keeps restarting it.
    pub drain: Recipient<Drain>,
}

/// The listener's routes.
pub fn routes(state: ListenerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone())).route("/status", web::get().to(status));
    }
}

async fn status(state: web::Data<ListenerState>) -> HttpResponse {
    reply(StatusCode::OK, Envelope::with_data("listener", state.stats.snapshot()))
}
