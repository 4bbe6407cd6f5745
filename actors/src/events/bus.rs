//! The in-process event bus: what `troupe up` uses when no `RABBIT_URL` is set.
//!
//! It answers [`PublishEvent`] like the RabbitMQ publisher (with the event's id, once the
//! bus has taken it) and delivers each event to its [`Sink`] with the listener's
//! semantics: at least once, retried with backoff while the store is unavailable, never
//! dropped except to the dead-letter count when the store refuses it for good. Events live
//! in memory: a process that dies loses those not yet stored (use RabbitMQ for durability).
//! At most `capacity` events are pending; beyond that publishers get `Unavailable`. On
//! [`Drain`] (shutdown) it takes no more events (`Unavailable`) and finishes storing the
//! pending ones within the grace period.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix::fut::wrap_future;
use actix::{Actor, Addr, Arbiter, AsyncContext, Context, Handler, ResponseFuture};
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::messages::PublishEvent;

use super::publisher::stamp;
use super::{Drain, ListenerStats, Sink, SinkError, wait_drained};

/// The in-process bus actor.
pub struct EventBus {
    sink: Sink,
    stats: Arc<ListenerStats>,
    backoff: BackoffPolicy,
    capacity: usize,
    pending: Arc<AtomicUsize>,
    /// Set by [`Drain`]: take no more events.
    closed: bool,
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
            closed: false,
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
        if self.closed || self.pending.load(Ordering::Relaxed) >= self.capacity {
            return Err(ServiceError::unavailable("events"));
        }
        let (id, event) = stamp(msg);
        self.pending.fetch_add(1, Ordering::Relaxed);
        let (sink, stats, pending) = (self.sink.clone(), self.stats.clone(), self.pending.clone());
        let delays = self.backoff.delays();
        let in_flight = stats.start_delivery();
        ctx.spawn(wrap_future(async move {
            let _in_flight = in_flight;
            ListenerStats::bump(&stats.delivered);
            match sink.deliver_until_done(&event, delays, || true, &stats).await {
                Ok(()) => ListenerStats::bump(&stats.acked),
                Err(SinkError::Permanent(why)) => {
                    tracing::warn!(event_id = ?event.id, error = %why, "event refused for good");
                    ListenerStats::bump(&stats.dead_lettered);
                }
                // Not given up on: the delays never run out.
                Err(SinkError::Transient(_)) => {}
            }
            pending.fetch_sub(1, Ordering::Relaxed);
        }));
        Ok(id)
    }
}

impl Handler<Drain> for EventBus {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Drain(within): Drain, _: &mut Context<Self>) -> Self::Result {
        self.closed = true;
        let stats = self.stats.clone();
        let deadline = tokio::time::Instant::now() + within;
        // Events still pending at the deadline are lost with the process (the bus is memory).
        Box::pin(async move {
            wait_drained(&stats, std::future::ready(()), deadline, "in-process event bus").await
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use actix::{Actor, Context, Handler, ResponseFuture};
    use tokio::sync::watch;
    use troupe_core::messages::WriteLog;

    use super::*;

    /// A store that answers only once `open` says so, and counts what it stored.
    struct GatedStore {
        open: watch::Receiver<bool>,
        stored: Arc<AtomicUsize>,
    }

    impl Actor for GatedStore {
        type Context = Context<Self>;
    }

    impl Handler<WriteLog> for GatedStore {
        type Result = ResponseFuture<Result<String, ServiceError>>;

        fn handle(&mut self, _: WriteLog, _: &mut Context<Self>) -> Self::Result {
            let (mut open, stored) = (self.open.clone(), self.stored.clone());
            Box::pin(async move {
                let _ = open.wait_for(|o| *o).await;
                stored.fetch_add(1, Ordering::SeqCst);
                Ok("stored".into())
            })
        }
    }

    #[actix_rt::test]
    async fn a_draining_bus_takes_no_more_events_and_stores_the_pending_ones() {
        let (gate, open) = watch::channel(false);
        let stored = Arc::new(AtomicUsize::new(0));
        let store = GatedStore { open, stored: stored.clone() }.start();
        let stats = EventBus::new_stats();
        let policy = BackoffPolicy { min: Duration::from_millis(10), max: Duration::from_millis(50) };
        let bus = EventBus::start(
            Sink::new(store.recipient(), Duration::from_secs(10)),
            stats.clone(),
            policy,
            100,
        );
        for n in 0..3 {
            bus.send(PublishEvent::info("event", format!("pending {n}"))).await.expect("bus").expect("taken");
        }

        let drained = actix_rt::spawn(bus.send(Drain(Duration::from_secs(10))));
        let refused = bus.send(PublishEvent::info("event", "too late")).await.expect("bus");
        assert!(matches!(refused, Err(ServiceError::Unavailable(_))), "{refused:?}");
        assert_eq!(stats.in_flight(), 3, "still pending while the store holds them");

        gate.send_replace(true);
        drained.await.expect("drain task").expect("bus answers");
        assert_eq!((stats.in_flight(), stored.load(Ordering::SeqCst)), (0, 3));
    }
}
