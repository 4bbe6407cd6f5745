//! The in-process event bus: what `troupe up` uses when no `RABBIT_URL` is set.
//!
//! It answers [`PublishEvent`] like the RabbitMQ publisher (with the event's id, once the
//! bus has taken it) and delivers each event to its [`Sink`] with the listener's
//! semantics: at least once, retried with backoff while the store is unavailable, never
//! dropped except to the dead-letter count when the store refuses it for good. Events live
//! in memory: a process that dies loses those not yet stored (use RabbitMQ for durability).
//! At most `capacity` events are pending; beyond that publishers get `Unavailable`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::fut::wrap_future;
use actix::{Actor, Addr, Arbiter, AsyncContext, Context, Handler};
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::messages::{Event, PublishEvent};

use super::publisher::new_event_id;
use super::{ListenerStats, Sink, SinkError};

/// The in-process bus actor.
pub struct EventBus {
    sink: Sink,
    stats: Arc<ListenerStats>,
    backoff: BackoffPolicy,
    capacity: usize,
    pending: Arc<AtomicUsize>,
}

impl EventBus {
    /// Start the bus on its own arbiter, delivering into `sink`.
    pub fn start(
        sink: Sink,
        stats: Arc<ListenerStats>,
        backoff: BackoffPolicy,
        capacity: usize,
    ) -> Addr<Self> {
        let pending = Arc::default();
        Self::start_in_arbiter(&Arbiter::new().handle(), move |_| Self {
            sink,
            stats,
            backoff,
            capacity,
            pending,
        })
    }

    /// Fresh stats for the bus (`GET /status`).
    pub fn new_stats() -> Arc<ListenerStats> {
        ListenerStats::new("in-process", "in-process")
    }
}

impl Actor for EventBus {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Context<Self>) {
        self.stats.set_consumer(Some("in-process".into()));
    }
}

impl Handler<PublishEvent> for EventBus {
    type Result = Result<String, ServiceError>;

    fn handle(&mut self, msg: PublishEvent, ctx: &mut Context<Self>) -> Self::Result {
        if self.pending.load(Ordering::Relaxed) >= self.capacity {
            return Err(ServiceError::unavailable("events"));
        }
        let id = msg.id.unwrap_or_else(new_event_id);
        let request_id = msg.request_id.map(String::from);
        let event =
            Event { id: Some(id.clone()), name: msg.name, data: msg.data, level: msg.level, request_id };
        self.pending.fetch_add(1, Ordering::Relaxed);
        let (sink, stats, pending) = (self.sink.clone(), self.stats.clone(), self.pending.clone());
        let mut delays = self.backoff.delays();
        ctx.spawn(wrap_future(async move {
            ListenerStats::bump(&stats.delivered);
            loop {
                match sink.deliver(&event).await {
                    Ok(()) => {
                        ListenerStats::bump(&stats.acked);
                        break;
                    }
                    Err(SinkError::Permanent(why)) => {
                        tracing::warn!(event_id = ?event.id, error = %why, "event refused for good");
                        ListenerStats::bump(&stats.dead_lettered);
                        break;
                    }
                    Err(SinkError::Transient(_)) => {
                        ListenerStats::bump(&stats.retries);
                        tokio::time::sleep(delays.next_delay()).await;
                    }
                }
            }
            pending.fetch_sub(1, Ordering::Relaxed);
        }));
        Ok(id)
    }
}
