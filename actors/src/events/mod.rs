//! The event pipeline: publishing events and feeding them to the logger (and to jobs).
//!
//! - [`publisher`]: RabbitMQ publisher with confirms (many in flight), persistent, mandatory.
//! - [`listener`]: the supervised stream actor consuming the shared durable queue.
//! - [`jobs`]: background jobs run for events named for them (`mail`).
//! - [`dead`]: the listener's dead letters in RabbitMQ's `<queue>.dead`, listed and replayed.
//! - [`bus`]: the in-process bus used when no `RABBIT_URL` is set, with the same
//!   at-least-once semantics, its events kept on disk by [`queue`].
//!
//! Both consumers hand each decoded event to a [`Sink`], which stores it through the logger
//! (`WriteLog`, idempotent per event id) and runs the background job it is named for, if any.
//! A delivery is acknowledged only after the sink succeeded.

pub mod bus;
pub mod dead;
pub mod jobs;
pub mod listener;
pub mod publisher;
pub mod queue;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use actix::Recipient;
use serde::Serialize;
use serde_json::Value;
use tracing::Instrument as _;
use troupe_core::backoff::Delays;
use troupe_core::messages::{Event, LogLevel, NewLogEntry, RunJob, WriteLog};
use troupe_core::metrics::{Family, ReadOnScrape};
use troupe_core::{RequestId, ServiceError};

use crate::retry::retry;

/// Why a message could not be turned into an [`Event`] (it goes to the dead-letter queue).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event: {0}")]
pub struct Malformed(pub String);

/// Decode an event body. Its id is the body's `id`, else `message_id` (the AMQP property),
/// else a fresh one: an event that carries no id (such as the Go platform's) is never taken
/// for another that looks alike, at the price that a redelivery of it (after a lost ack) is
/// stored again.
///
/// `data` may be any JSON value (non-strings are stored as their JSON text); `name` must be
/// a non-empty string; `level` defaults to the routing key's, then `INFO`.
pub fn decode(body: &[u8], message_id: Option<&str>, routing_key: &str) -> Result<Event, Malformed> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| Malformed(format!("body is not JSON: {e}")))?;
    let obj = value.as_object().ok_or_else(|| Malformed("body is not a JSON object".into()))?;
    let name = match obj.get("name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(Malformed("\"name\" must be a non-empty string".into())),
    };
    let data = match obj.get("data") {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(other) => other.to_string(),
    };
    let level = obj
        .get("level")
        .and_then(Value::as_str)
        .and_then(LogLevel::parse)
        .or_else(|| routing_key.strip_prefix("log.").and_then(LogLevel::parse))
        .unwrap_or_default();
    let id = obj
        .get("id")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| message_id.filter(|s| !s.is_empty()).map(str::to_owned))
        .unwrap_or_else(|| format!("anonymous-{}", publisher::new_event_id()));
    // A malformed request id is dropped, not a reason to refuse the event.
    let request_id = obj.get("request_id").and_then(Value::as_str).and_then(RequestId::parse);
    // Trace context that is not text is ignored (it only links traces).
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
    let (traceparent, tracestate) = (text("traceparent"), text("tracestate"));
    Ok(Event { id: Some(id), name, data, level, request_id, traceparent, tracestate })
}

/// The log entry an event is stored as. `auth` events become audit entries named
/// `authentication` (the Go listener dropped them). An event whose name or id is too long
/// to store is `Invalid` (the sink dead-letters it).
pub fn log_entry(event: &Event) -> Result<NewLogEntry, ServiceError> {
    let (name, service) = match event.name.as_str() {
        "auth" | "authentication" => ("authentication", "auth"),
        other => (other, "listener"),
    };
    NewLogEntry::new(name, event.data.clone())?
        .with_level(event.level)
        .with_service(service)?
        .with_request_id(event.request_id.clone())
        .with_event_id(event.id.clone())
}

/// The span of consuming `event`: a child of the span that published it, when the event
/// carries its trace context (`traceparent`), else the root of a new trace.
pub fn consumer_span(event: &Event) -> tracing::Span {
    let span = tracing::info_span!("consume event", otel.kind = "consumer", service = "listener",
                                   event.name = %event.name, event.id = event.id.as_deref().unwrap_or(""));
    let mut carrier = troupe_core::telemetry::Carrier::default();
    carrier.0.extend(event.traceparent.clone().map(|v| ("traceparent".to_owned(), v)));
    carrier.0.extend(event.tracestate.clone().map(|v| ("tracestate".to_owned(), v)));
    troupe_core::telemetry::adopt(&span, &carrier);
    span
}

/// How handing an event to the sink went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Try again later (store or job runner unavailable, deadline passed).
    Transient(String),
    /// Will never succeed (the store or job refused the event): dead-letter it.
    Permanent(String),
}

fn classify(what: &str, err: ServiceError) -> SinkError {
    match err {
        ServiceError::BadRequest(_) | ServiceError::Invalid(_) | ServiceError::PayloadTooLarge(_) => {
            SinkError::Permanent(format!("{what}: {err}"))
        }
        other => SinkError::Transient(format!("{what}: {other}")),
    }
}

/// Where consumed events go: the logger, and the job runners by event name.
#[derive(Clone)]
pub struct Sink {
    /// The logger (stores each event once per id).
    pub logger: Recipient<WriteLog>,
    /// Background jobs by event name (e.g. `mail`); see `docs/events.md`.
    pub jobs: HashMap<String, Recipient<RunJob>>,
    /// Deadline for each store call.
    pub timeout: Duration,
    /// Deadline for each job call (a mail may take longer than a store).
    pub job_timeout: Duration,
}

impl Sink {
    /// A sink storing into `logger`, with no jobs.
    pub fn new(logger: Recipient<WriteLog>, timeout: Duration) -> Self {
        Self { logger, jobs: HashMap::new(), timeout, job_timeout: timeout }
    }

    /// Give each job call `deadline` instead of the store's.
    pub fn with_job_timeout(mut self, deadline: Duration) -> Self {
        self.job_timeout = deadline;
        self
    }

    /// Run `job` for events named `name`.
    pub fn with_job(mut self, name: impl Into<String>, job: Recipient<RunJob>) -> Self {
        self.jobs.insert(name.into(), job);
        self
    }

    /// [`Sink::deliver`], retrying transient failures after each of `delays` for as long as
    /// `keep_trying()` holds (a transient error is returned once it does not); each retry is
    /// counted in `stats`.
    async fn deliver_until_done(
        &self,
        event: &Event,
        delays: Delays,
        keep_trying: impl Fn() -> bool,
        stats: &ListenerStats,
    ) -> Result<(), SinkError> {
        let retry_on = |e: &SinkError| matches!(e, SinkError::Transient(_)) && keep_trying();
        let note = |e: &SinkError, delay| {
            ListenerStats::bump(&stats.retries);
            tracing::debug!(event_id = ?event.id, error = ?e, retry_in = ?delay, "store failed; retrying");
        };
        retry(|| self.deliver(event), delays, retry_on, note).await
    }

    /// Store the event, then run its job if it has one. Safe to repeat: the store is
    /// idempotent per event id (jobs should be too; see `docs/events.md`).
    pub async fn deliver(&self, event: &Event) -> Result<(), SinkError> {
        let span = consumer_span(event);
        self.deliver_in(event).instrument(span).await
    }

    async fn deliver_in(&self, event: &Event) -> Result<(), SinkError> {
        let entry = log_entry(event).map_err(|e| classify("store", e))?;
        let stored = self.logger.send(WriteLog(entry)).timeout(self.timeout).await;
        match stored {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(classify("store", e)),
            Err(e) => return Err(SinkError::Transient(format!("store: {e}"))),
        }
        if let Some(job) = self.jobs.get(&event.name) {
            match job.send(RunJob(event.clone())).timeout(self.job_timeout).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(classify("job", e)),
                Err(e) => return Err(SinkError::Transient(format!("job: {e}"))),
            }
        }
        Ok(())
    }
}

/// Counters and consumer state of a listener (or the bus), shown by `GET /status`.
#[derive(Debug)]
pub struct ListenerStats {
    delivered: AtomicU64,
    acked: AtomicU64,
    dead_lettered: AtomicU64,
    retries: AtomicU64,
    reconnects: AtomicU64,
    /// Deliveries in flight; a watch, so a drain waits for zero without polling.
    in_flight: watch::Sender<u64>,
    consumer: Mutex<ConsumerInfo>,
    /// Events waiting in the embedded queue (the bus only).
    /// Replaced when the bus re-opens its queue.
    queued: Mutex<Option<Arc<AtomicU64>>>,
}

impl Default for ListenerStats {
    fn default() -> Self {
        Self {
            delivered: AtomicU64::default(),
            acked: AtomicU64::default(),
            dead_lettered: AtomicU64::default(),
            retries: AtomicU64::default(),
            reconnects: AtomicU64::default(),
            in_flight: watch::Sender::new(0),
            consumer: Mutex::default(),
            queued: Mutex::default(),
        }
    }
}

#[derive(Debug, Default, Clone)]
struct ConsumerInfo {
    tag: Option<String>,
    queue: String,
    transport: &'static str,
}

/// One delivery in flight; dropping it (the delivery acked, rejected or abandoned) ends it.
struct InFlight(Arc<ListenerStats>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// Shut down a consumer of events (the RabbitMQ listener, the in-process bus): take nothing
/// more and finish what was taken, within the grace period; answered when nothing is in
/// flight or the period is over.
#[derive(Debug, Clone, Copy, actix::Message)]
#[rtype(result = "()")]
pub struct Drain(pub std::time::Duration);

/// Wait until `done` resolves and then `stats` shows nothing in flight, or `deadline`
/// passes; log the outcome. Woken by the deliveries' drop guards, never by polling.
pub(crate) async fn wait_drained(
    stats: &ListenerStats,
    done: impl std::future::Future<Output = ()>,
    deadline: tokio::time::Instant,
    what: &str,
) {
    let mut in_flight = stats.in_flight.subscribe();
    let drained = async move {
        done.await;
        // The sender lives in `stats`, borrowed for this whole call: it cannot close.
        let _ = in_flight.wait_for(|n| *n == 0).await;
    };
    let _ = tokio::time::timeout_at(deadline, drained).await;
    match stats.in_flight() {
        0 => tracing::info!("{what} drained"),
        n => tracing::warn!(in_flight = n, "{what} stopped with events in flight"),
    }
}

/// A snapshot of [`ListenerStats`].
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListenerStatus {
    /// `rabbitmq` or `in-process`.
    pub transport: &'static str,
    /// The queue consumed.
    pub queue: String,
    /// The current consumer tag (`None` while reconnecting).
    pub consumer_tag: Option<String>,
    /// Deliveries received (redeliveries included).
    pub delivered: u64,
    /// Deliveries acknowledged after the store succeeded.
    pub acked: u64,
    /// Deliveries sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Store/job attempts that failed transiently and were retried.
    pub retries: u64,
    /// Times the consumer was (re)started.
    pub reconnects: u64,
    /// Deliveries being stored or run now (not yet acked or dead-lettered).
    pub in_flight: u64,
    /// Events waiting on disk in the embedded queue (in flight included); `None` over
    /// RabbitMQ, whose queue depth RabbitMQ shows.
    pub queued: Option<u64>,
}

/// The consumer's metric families, in the order [`ListenerStats::collector`] reads them.
const CONSUMER_FAMILIES: [Family; 6] = [
    Family { name: "events_delivered_total", help: "Events handed to the sink", counter: true, labels: &[] },
    Family { name: "events_acked_total", help: "Events stored and acknowledged", counter: true, labels: &[] },
    Family {
        name: "events_retried_total",
        help: "Store or job attempts retried after a transient failure",
        counter: true,
        labels: &[],
    },
    Family {
        name: "events_dead_lettered_total",
        help: "Events dead-lettered (refused for good or malformed)",
        counter: true,
        labels: &[],
    },
    Family { name: "events_in_flight", help: "Deliveries being stored now", counter: false, labels: &[] },
    Family {
        name: "events_queue_depth",
        help: "Events waiting in the embedded queue (in flight included)",
        counter: false,
        labels: &[],
    },
];

impl ListenerStats {
    /// Fresh counters for a consumer of `queue` over `transport`.
    pub fn new(transport: &'static str, queue: &str) -> Arc<Self> {
        let stats = Self::default();
        {
            let mut c = stats.consumer.lock().unwrap_or_else(PoisonError::into_inner);
            c.queue = queue.to_owned();
            c.transport = transport;
        }
        Arc::new(stats)
    }

    /// A copy of the counters.
    pub fn snapshot(&self) -> ListenerStatus {
        let c = self.consumer.lock().unwrap_or_else(PoisonError::into_inner).clone();
        ListenerStatus {
            transport: c.transport,
            queue: c.queue,
            consumer_tag: c.tag,
            delivered: self.delivered.load(Ordering::Relaxed),
            acked: self.acked.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            in_flight: *self.in_flight.borrow(),
            queued: self
                .queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_ref()
                .map(|n| n.load(Ordering::Relaxed)),
        }
    }

    /// Show `queued` (the embedded queue's depth) in the snapshots.
    fn show_depth(&self, queued: Arc<AtomicU64>) {
        *self.queued.lock().unwrap_or_else(PoisonError::into_inner) = Some(queued);
    }

    /// Count one delivery as in flight until the returned guard is dropped.
    fn start_delivery(self: &Arc<Self>) -> InFlight {
        self.in_flight.send_modify(|n| *n += 1);
        InFlight(self.clone())
    }

    /// Deliveries in flight now.
    pub fn in_flight(&self) -> u64 {
        *self.in_flight.borrow()
    }

    fn set_consumer(&self, tag: Option<String>) {
        if tag.is_some() {
            self.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        self.consumer.lock().unwrap_or_else(PoisonError::into_inner).tag = tag;
    }

    fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The consumer's counters as metric families read at scrape time (nothing added to
    /// the delivery path): `troupe_events_{delivered,acked,retried,dead_lettered}_total`,
    /// `troupe_events_in_flight`, and `troupe_events_queue_depth` for the embedded queue.
    pub fn collector(self: &Arc<Self>) -> Option<ReadOnScrape> {
        let stats = Arc::downgrade(self);
        let read = move || {
            let Some(s) = stats.upgrade().map(|s| s.snapshot()) else { return Vec::new() };
            let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
            let mut out = vec![
                (0, Vec::new(), n(s.delivered)),
                (1, Vec::new(), n(s.acked)),
                (2, Vec::new(), n(s.retries)),
                (3, Vec::new(), n(s.dead_lettered)),
                (4, Vec::new(), n(s.in_flight)),
            ];
            out.extend(s.queued.map(|q| (5, Vec::new(), n(q))));
            out
        };
        ReadOnScrape::new(&CONSUMER_FAMILIES, read).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_look_alike_go_platform_events_are_two_events() {
        let body = br#"{"name":"event","data":"Some kind of data"}"#;
        let a = decode(body, None, "log.INFO").expect("decodes");
        let b = decode(body, None, "log.INFO").expect("decodes");
        assert_ne!(a.id, b.id, "two logins by one user are two audit entries");
        assert!(a.id.as_deref().is_some_and(|id| id.starts_with("anonymous-")));
        assert_eq!(
            (a.name.as_str(), a.data.as_str(), a.level),
            ("event", "Some kind of data", LogLevel::Info)
        );
    }

    #[test]
    fn ids_come_from_the_body_then_the_message_id() {
        let with_id = decode(br#"{"id":"e1","name":"n","data":"d"}"#, Some("m1"), "log.INFO");
        assert_eq!(with_id.map(|e| e.id), Ok(Some("e1".into())));
        let from_prop = decode(br#"{"name":"n","data":"d"}"#, Some("m1"), "log.ERROR");
        let ev = from_prop.expect("decodes");
        assert_eq!((ev.id.as_deref(), ev.level), (Some("m1"), LogLevel::Error));
    }

    #[test]
    fn malformed_bodies_are_rejected() {
        let cases: [&[u8]; 5] =
            [b"not json", b"[1,2]", br#"{"data":"x"}"#, br#"{"name":"","data":"x"}"#, br#"{"name":3}"#];
        for body in cases {
            assert!(decode(body, None, "log.INFO").is_err(), "{}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn auth_events_are_stored_as_audit_entries() {
        let ev = Event {
            id: Some("x".into()),
            name: "auth".into(),
            data: "login".into(),
            level: LogLevel::Info,
            request_id: RequestId::parse("req-1"),
            traceparent: None,
            tracestate: None,
        };
        let entry = log_entry(&ev).expect("storable");
        assert_eq!((entry.name(), entry.service()), ("authentication", "auth"));
        assert_eq!(entry.event_id(), Some("x"));
        assert_eq!(entry.request_id().map(RequestId::as_str), Some("req-1"));
    }

    #[test]
    fn a_well_formed_request_id_travels_in_the_body_and_a_bad_one_is_dropped() {
        let ok = decode(br#"{"name":"event","data":"x","request_id":"req-7"}"#, None, "log.INFO");
        assert_eq!(ok.expect("decodes").request_id, RequestId::parse("req-7"));
        let bad = decode(br#"{"name":"event","data":"x","request_id":"a\r\nb"}"#, None, "log.INFO");
        assert_eq!(bad.expect("still decodes").request_id, None);
    }
}
