//! The in-process event bus: what `troupe up` uses when no `RABBIT_URL` is set.
//!
//! It answers [`PublishEvent`] like the RabbitMQ publisher, with the event's id, once the
//! event is on disk in the embedded [`queue`](super::queue) (TROUPE_DATA_DIR/events.db):
//! a 202 survives a crash. A dispatcher reads the queue in publish order and hands each
//! event to its [`Sink`] with the listener's semantics: at least once (the store keeps one
//! entry per event id), at most `in_flight` at a time, retried with backoff while the store
//! is unavailable, and moved to the dead letters when the store refuses it for good. An
//! event leaves the queue only once delivered. At start-up, what an earlier process left
//! pending is delivered first.
//!
//! On [`Drain`] (shutdown) it takes no more events (`Unavailable`) and finishes the
//! deliveries in flight within the grace period; whatever is still queued stays on disk for
//! the next start.

use std::sync::Arc;

use actix::fut::wrap_future;
use actix::{Addr, Arbiter, AsyncContext, Context, Handler, ResponseFuture, Supervisor};
use tokio::sync::{Semaphore, watch};
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::PublishEvent;
pub use troupe_core::messages::{ListDeadLetters, ReplayDeadLetters};
use troupe_core::metrics::EventMetrics;

use super::publisher::stamp;
use super::queue::{DeadLetter, EventQueue, QueueConfig, Queued};
use super::{Drain, ListenerStats, Sink, SinkError, wait_drained};
use crate::supervision::{Backend, Checking, Connecting, Link, supervised};

/// Waiting events read from the queue at once.
const READ_AHEAD: u32 = 256;

/// What the bus needs.
#[derive(Debug, Clone)]
pub struct BusConfig {
    /// Where the queue lives and how much it may hold.
    pub queue: QueueConfig,
    /// Retry policy for deliveries, and reconnect policy for the queue.
    pub backoff: BackoffPolicy,
    /// Most deliveries in flight at once.
    pub in_flight: usize,
}

/// The in-process bus actor. The queue is its backend, opened (and re-opened) through
/// [`supervision`](crate::supervision) like every other actor's.
pub struct EventBus {
    config: BusConfig,
    sink: Sink,
    stats: Arc<ListenerStats>,
    link: Link<EventQueue>,
    /// Set by [`Drain`]: take no more events, start no more deliveries.
    closed: watch::Sender<bool>,
    /// Published and confirmed (stored in the queue) events.
    metrics: Option<EventMetrics>,
}

impl EventBus {
    /// Start the bus under a supervisor on its own arbiter, delivering into `sink`; it
    /// reports the queue's state to `readiness` as `events.queue`.
    pub fn start(
        config: BusConfig,
        sink: Sink,
        stats: Arc<ListenerStats>,
        readiness: &Readiness,
    ) -> Addr<Self> {
        let link = Link::new("events", readiness.probe("events.queue"), config.backoff);
        let metrics = readiness.metrics().events();
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self {
            metrics,
            config,
            sink,
            stats,
            link,
            closed: watch::Sender::new(false),
        })
    }

    /// Fresh stats for the bus (`GET /status`).
    pub fn new_stats() -> Arc<ListenerStats> {
        ListenerStats::new("in-process", "events.db")
    }

    /// The queue, while it is open and the bus takes events.
    fn queue(&self) -> Result<EventQueue, ServiceError> {
        match *self.closed.borrow() {
            false => self.link.conn(),
            true => Err(ServiceError::unavailable("events")),
        }
    }
}

supervised!(EventBus, EventQueue);

impl Backend for EventBus {
    fn connect(&mut self) -> Connecting<EventQueue> {
        let config = self.config.queue.clone();
        Box::pin(async move { Ok(EventQueue::open(&config).await?) })
    }

    fn check(queue: EventQueue) -> Checking {
        Box::pin(async move { Ok(queue.ping().await?) })
    }

    /// Start delivering from the queue. The dispatcher lives on the actor's context, so a
    /// restart (the queue re-opened) replaces it; deliveries it started finish either way.
    fn on_connected(&mut self, queue: &EventQueue, ctx: &mut Context<Self>) {
        self.stats.show_depth(queue.depth_counter());
        let dispatcher = Dispatcher {
            queue: queue.clone(),
            sink: self.sink.clone(),
            stats: self.stats.clone(),
            backoff: self.config.backoff,
            permits: Arc::new(Semaphore::new(self.config.in_flight.max(1))),
            closed: self.closed.subscribe(),
        };
        ctx.spawn(wrap_future(dispatcher.run()));
    }

    fn on_start(&mut self, _: &mut Context<Self>) -> bool {
        self.stats.set_consumer(Some("in-process".into()));
        true
    }
}

impl Handler<PublishEvent> for EventBus {
    type Result = ResponseFuture<Result<String, ServiceError>>;

    fn handle(&mut self, msg: PublishEvent, _: &mut Context<Self>) -> Self::Result {
        let (queue, counts) = (self.queue(), self.metrics.clone());
        Box::pin(async move {
            let (id, event) = stamp(msg);
            counts.as_ref().inspect(|c| c.published.inc());
            let stored = queue?.append(event).await;
            if let Some(c) = &counts {
                match &stored {
                    Ok(_) => c.confirmed.inc(),
                    Err(_) => c.failed.inc(),
                }
            }
            stored?;
            Ok(id)
        })
    }
}

impl Handler<ListDeadLetters> for EventBus {
    type Result = ResponseFuture<Result<Vec<DeadLetter>, ServiceError>>;

    fn handle(&mut self, ListDeadLetters(limit): ListDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let queue = self.link.conn();
        Box::pin(async move { Ok(queue?.dead_letters(limit).await?) })
    }
}

impl Handler<ReplayDeadLetters> for EventBus {
    type Result = ResponseFuture<Result<u64, ServiceError>>;

    fn handle(&mut self, ReplayDeadLetters(seq): ReplayDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue();
        Box::pin(async move { Ok(queue?.replay(seq).await?) })
    }
}

impl Handler<Drain> for EventBus {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Drain(within): Drain, _: &mut Context<Self>) -> Self::Result {
        self.closed.send_replace(true);
        let (stats, queue) = (self.stats.clone(), self.link.conn().ok());
        let deadline = tokio::time::Instant::now() + within;
        Box::pin(async move {
            wait_drained(&stats, std::future::ready(()), deadline, "in-process event bus").await;
            if let Some(waiting) = queue.map(|q| q.depth()).filter(|n| *n > 0) {
                tracing::info!(waiting, "events stay queued on disk for the next start");
            }
        })
    }
}

/// Reads the queue in order and starts a delivery for each event, at most `permits` at once.
struct Dispatcher {
    queue: EventQueue,
    sink: Sink,
    stats: Arc<ListenerStats>,
    backoff: BackoffPolicy,
    permits: Arc<Semaphore>,
    closed: watch::Receiver<bool>,
}

impl Dispatcher {
    async fn run(mut self) {
        let mut after = 0;
        let mut read_failures = self.backoff.delays();
        loop {
            let waiting = tokio::select! {
                read = self.queue.after(after, READ_AHEAD) => read,
                _ = self.closed.wait_for(|c| *c) => return,
            };
            let waiting = match waiting {
                Ok(waiting) => waiting,
                Err(err) => {
                    let delay = read_failures.next().unwrap_or(self.backoff.max);
                    tracing::warn!(error = %err, retry_in = ?delay, "cannot read the event queue");
                    tokio::time::sleep(delay).await;
                    continue;
                }
            };
            read_failures = self.backoff.delays();
            if waiting.is_empty() {
                tokio::select! {
                    () = self.queue.appended() => continue,
                    _ = self.closed.wait_for(|c| *c) => return,
                }
            }
            for queued in waiting {
                let permit = tokio::select! {
                    permit = self.permits.clone().acquire_owned() => permit,
                    _ = self.closed.wait_for(|c| *c) => return,
                };
                let Ok(permit) = permit else { return };
                after = queued.0;
                let delivery = self.deliver(queued);
                actix::spawn(async move {
                    delivery.await;
                    drop(permit);
                });
            }
        }
    }

    /// Deliver one queued event, then remove it from the queue or dead-letter it. A delivery
    /// given up on at shutdown leaves the event queued.
    fn deliver(&self, (seq, event): Queued) -> impl Future<Output = ()> + 'static {
        let (queue, sink, stats) = (self.queue.clone(), self.sink.clone(), self.stats.clone());
        let (delays, closed) = (self.backoff.delays(), self.closed.clone());
        let in_flight = stats.start_delivery();
        async move {
            let _in_flight = in_flight;
            ListenerStats::bump(&stats.delivered);
            let delivered = match event {
                Ok(event) => sink.deliver_until_done(&event, delays, || !*closed.borrow(), &stats).await,
                Err(unreadable) => Err(SinkError::Permanent(unreadable)),
            };
            let recorded = match delivered {
                Ok(()) => queue.done(seq).await.map(|()| ListenerStats::bump(&stats.acked)),
                Err(SinkError::Permanent(why)) => {
                    tracing::warn!(seq, error = %why, "event refused for good; dead-lettered");
                    queue.dead(seq, why).await.map(|()| ListenerStats::bump(&stats.dead_lettered))
                }
                // Shutting down: it stays queued.
                Err(SinkError::Transient(_)) => Ok(()),
            };
            if let Err(err) = recorded {
                // It stays queued and is delivered again at the next start (stored once).
                tracing::warn!(seq, error = %err, "cannot record a delivery in the event queue");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use actix::{Actor, Context, Handler, ResponseFuture};
    use troupe_core::messages::WriteLog;

    use super::super::ListenerStatus;
    use super::*;

    /// A store that answers only once `open` says so, refuses entries named `refused`, and
    /// counts what it stored.
    struct GatedStore {
        open: watch::Receiver<bool>,
        stored: Arc<AtomicUsize>,
    }

    impl Actor for GatedStore {
        type Context = Context<Self>;
    }

    impl Handler<WriteLog> for GatedStore {
        type Result = ResponseFuture<Result<String, ServiceError>>;

        fn handle(&mut self, WriteLog(entry): WriteLog, _: &mut Context<Self>) -> Self::Result {
            let (mut open, stored) = (self.open.clone(), self.stored.clone());
            Box::pin(async move {
                if entry.name() == "refused" {
                    return Err(ServiceError::Invalid("not storable".into()));
                }
                let _ = open.wait_for(|o| *o).await;
                stored.fetch_add(1, Ordering::SeqCst);
                Ok("stored".into())
            })
        }
    }

    /// A bus on `dir` over a store gated by `open`; the counter of what it stored.
    fn bus(
        dir: &tempfile::TempDir,
        open: watch::Receiver<bool>,
    ) -> (Addr<EventBus>, Arc<ListenerStats>, Arc<AtomicUsize>) {
        let stored = Arc::new(AtomicUsize::new(0));
        let store = GatedStore { open, stored: stored.clone() }.start();
        let stats = EventBus::new_stats();
        let config = BusConfig {
            queue: QueueConfig {
                path: dir.path().join("events.db"),
                max_pending: 1_000,
                timeout: Duration::from_secs(5),
            },
            backoff: BackoffPolicy { min: Duration::from_millis(10), max: Duration::from_millis(50) },
            in_flight: 16,
        };
        let sink = Sink::new(store.recipient(), Duration::from_secs(10));
        (EventBus::start(config, sink, stats.clone(), &Readiness::default()), stats, stored)
    }

    /// Wait (at most 10 s) until `done` holds, re-checked whenever a delivery ends.
    async fn until(stats: &ListenerStats, what: &str, done: impl Fn(&ListenerStatus) -> bool) {
        let mut changes = stats.in_flight.subscribe();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            // Not inside `wait_for`: the snapshot reads the same watch.
            while !done(&stats.snapshot()) {
                changes.changed().await.expect("the stats live on");
            }
        });
        assert!(waited.await.is_ok(), "{what}: {:?}", stats.snapshot());
    }

    async fn publish(bus: &Addr<EventBus>, name: &str, data: String) -> Result<String, ServiceError> {
        // The queue opens right after start; until then publishers are told to retry.
        loop {
            match bus.send(PublishEvent::info(name, data.clone())).await.expect("bus") {
                Err(ServiceError::Unavailable(_)) => tokio::task::yield_now().await,
                other => return other,
            }
        }
    }

    #[actix_rt::test]
    async fn a_draining_bus_takes_no_more_events_and_finishes_the_deliveries_in_flight() {
        let dir = tempfile::tempdir().expect("dir");
        let (gate, open) = watch::channel(false);
        let (bus, stats, stored) = bus(&dir, open);
        for n in 0..3 {
            publish(&bus, "event", format!("pending {n}")).await.expect("taken");
        }
        until(&stats, "three deliveries in flight", |s| s.in_flight == 3).await;

        let drained = actix_rt::spawn(bus.send(Drain(Duration::from_secs(10))));
        let refused = bus.send(PublishEvent::info("event", "too late")).await.expect("bus");
        assert!(matches!(refused, Err(ServiceError::Unavailable(_))), "{refused:?}");
        gate.send_replace(true);
        drained.await.expect("drain task").expect("bus answers");
        assert_eq!((stats.in_flight(), stored.load(Ordering::SeqCst)), (0, 3));
    }

    #[actix_rt::test]
    async fn what_one_bus_acknowledged_the_next_one_on_the_same_directory_delivers() {
        let dir = tempfile::tempdir().expect("dir");
        // The first bus's store never answers: its events are acknowledged, not delivered.
        let (_never, closed) = watch::channel(false);
        let (first, _, not_stored) = bus(&dir, closed);
        for n in 0..40 {
            publish(&first, "event", format!("acknowledged {n}")).await.expect("on disk");
        }
        assert_eq!(not_stored.load(Ordering::SeqCst), 0);

        let (_open, open) = watch::channel(true);
        let (_second, stats, stored) = bus(&dir, open);
        until(&stats, "40 events delivered", |s| s.acked == 40).await;
        assert_eq!(stored.load(Ordering::SeqCst), 40);
        assert_eq!(stats.snapshot().queued, Some(0), "delivered events leave the queue");
    }

    #[actix_rt::test]
    async fn a_refused_event_is_kept_as_a_dead_letter_and_can_be_replayed() {
        let dir = tempfile::tempdir().expect("dir");
        let (_open, open) = watch::channel(true);
        let (bus, stats, _) = bus(&dir, open);
        let id = publish(&bus, "refused", "bad".into()).await.expect("taken");
        until(&stats, "the event dead-lettered", |s| s.dead_lettered == 1).await;
        let dead = bus.send(ListDeadLetters(10)).await.expect("bus").expect("listed");
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].event.id.as_deref(), Some(id.as_str()));
        assert!(dead[0].reason.contains("not storable"), "{}", dead[0].reason);

        assert_eq!(bus.send(ReplayDeadLetters(None)).await.expect("bus"), Ok(1));
        until(&stats, "the replayed event dead-lettered again", |s| s.dead_lettered == 2).await;
        assert_eq!(bus.send(ListDeadLetters(10)).await.expect("bus").expect("listed").len(), 1);
    }
}
