//! The platform's Prometheus metrics beyond the per-route HTTP ones: one [`Metrics`] (one
//! registry) per process, shared with every HTTP server's `actix-web-prom` middleware, so
//! `GET /metrics` shows everything the process counts.
//!
//! The families are registered once, when the [`Metrics`] is made; the code that counts
//! takes pre-resolved handles ([`IntCounter`], [`Histogram`], [`IntGauge`]: an atomic
//! operation each, nothing allocated or locked) when it starts. Values the platform already
//! keeps (readiness, the event consumer's counters) are read when scraped ([`ReadOnScrape`]),
//! costing nothing in between.
//!
//! `TROUPE_METRICS=off` ([`MetricsMode::Off`]) registers none of them: the handles are
//! `None`, and only the per-route HTTP metrics remain. The names and labels are listed in
//! `docs/operations.md`.

use std::sync::Arc;
use std::time::Duration;

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
pub use prometheus::{Histogram, IntCounter, IntGauge, Registry};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts};

/// Prefix of every metric name.
pub const NAMESPACE: &str = "troupe";

/// Whether the platform's own metric families are kept (`TROUPE_METRICS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum MetricsMode {
    /// Every family of `docs/operations.md`.
    #[default]
    On,
    /// Only the per-route HTTP metrics (`troupe_http_requests_*`).
    Off,
}

/// The process's metrics: the registry `/metrics` serves, and the families the platform
/// counts into (none when off). Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    families: Option<Arc<Families>>,
}

struct Families {
    broker_actions: IntCounterVec,
    broker_action_seconds: HistogramVec,
    broker_in_flight: IntGaugeVec,
    actor_in_flight: IntGaugeVec,
    log_batch_size: Histogram,
    log_commit_seconds: Histogram,
    events: IntCounterVec,
    mail: IntCounterVec,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(MetricsMode::On)
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").field("on", &self.families.is_some()).finish_non_exhaustive()
    }
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(NAMESPACE)
}

fn seconds(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help).namespace(NAMESPACE).buckets(buckets)
}

/// Request-time buckets: 0.5 ms to 10 s (the route metrics' too, so that the broker's
/// actions and the routes add up into one latency series).
pub const SECONDS: [f64; 14] =
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

impl Families {
    fn register(r: &Registry) -> prometheus::Result<Self> {
        let f = Self {
            broker_actions: IntCounterVec::new(
                opts("broker_actions_total", "Broker /handle actions answered, by action and outcome"),
                &["action", "outcome"],
            )?,
            broker_action_seconds: HistogramVec::new(
                seconds("broker_action_duration_seconds", "Time to answer a broker action", SECONDS.to_vec()),
                &["action"],
            )?,
            broker_in_flight: IntGaugeVec::new(
                opts("broker_actions_in_flight", "Broker actions sent to a service and not answered yet"),
                &["action"],
            )?,
            actor_in_flight: IntGaugeVec::new(
                opts("actor_in_flight", "Messages an actor has taken and not answered yet"),
                &["actor"],
            )?,
            log_batch_size: Histogram::with_opts(
                HistogramOpts::new("log_store_batch_size", "Entries written to the log store at once")
                    .namespace(NAMESPACE)
                    .buckets(vec![1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]),
            )?,
            log_commit_seconds: Histogram::with_opts(seconds(
                "log_store_commit_seconds",
                "Time to commit one batch to the log store",
                SECONDS.to_vec(),
            ))?,
            events: IntCounterVec::new(
                opts("events_total", "Events by what happened to them at the publisher"),
                &["stage"],
            )?,
            mail: IntCounterVec::new(opts("mail_total", "Mail by what the SMTP server did"), &["outcome"])?,
        };
        r.register(Box::new(f.broker_actions.clone()))?;
        r.register(Box::new(f.broker_action_seconds.clone()))?;
        r.register(Box::new(f.broker_in_flight.clone()))?;
        r.register(Box::new(f.actor_in_flight.clone()))?;
        r.register(Box::new(f.log_batch_size.clone()))?;
        r.register(Box::new(f.log_commit_seconds.clone()))?;
        r.register(Box::new(f.events.clone()))?;
        r.register(Box::new(f.mail.clone()))?;
        Ok(f)
    }
}

impl Metrics {
    /// A fresh registry, with the platform's families registered when `mode` is on.
    pub fn new(mode: MetricsMode) -> Self {
        let registry = Registry::new();
        let families = match mode {
            MetricsMode::Off => None,
            MetricsMode::On => match Families::register(&registry) {
                Ok(f) => Some(Arc::new(f)),
                Err(err) => {
                    say(&err);
                    None
                }
            },
        };
        Self { registry, families }
    }

    /// The registry `/metrics` serves (the HTTP servers register their route metrics here).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// True unless `TROUPE_METRICS=off`.
    pub fn is_on(&self) -> bool {
        self.families.is_some()
    }

    /// Register a collector read at scrape time; nothing when off. A second collector of the
    /// same families in this registry is refused (and said so in the log), never counted twice.
    pub fn register(&self, collector: impl Collector + 'static) {
        if self.is_on()
            && let Err(err) = self.registry.register(Box::new(collector))
        {
            say(&err);
        }
    }

    /// The handles of one broker action (`auth`, `mail`, `event`, `log`, `unknown`).
    pub fn broker_action(&self, action: &str) -> Option<ActionMetrics> {
        let f = self.families.as_ref()?;
        let outcome = |o: &str| f.broker_actions.with_label_values(&[action, o]);
        Some(ActionMetrics {
            ok: outcome("ok"),
            client_error: outcome("client_error"),
            server_error: outcome("server_error"),
            seconds: f.broker_action_seconds.with_label_values(&[action]),
            in_flight: f.broker_in_flight.with_label_values(&[action]),
        })
    }

    /// The in-flight gauge of `actor`.
    pub fn actor_in_flight(&self, actor: &str) -> Option<IntGauge> {
        Some(self.families.as_ref()?.actor_in_flight.with_label_values(&[actor]))
    }

    /// The log store's batch handles.
    pub fn log_store(&self) -> Option<LogStoreMetrics> {
        let f = self.families.as_ref()?;
        Some(LogStoreMetrics {
            batch_size: f.log_batch_size.clone(),
            commit_seconds: f.log_commit_seconds.clone(),
            in_flight: f.actor_in_flight.with_label_values(&["logger"]),
        })
    }

    /// The publisher's event counters (`troupe_events_total{stage}`).
    pub fn events(&self) -> Option<EventMetrics> {
        let f = self.families.as_ref()?;
        let stage = |s: &str| f.events.with_label_values(&[s]);
        Some(EventMetrics {
            published: stage("published"),
            confirmed: stage("confirmed"),
            returned: stage("returned"),
            failed: stage("failed"),
        })
    }

    /// The mailer's counters (`troupe_mail_total{outcome}`).
    pub fn mail(&self) -> Option<MailMetrics> {
        let f = self.families.as_ref()?;
        let outcome = |o: &str| f.mail.with_label_values(&[o]);
        Some(MailMetrics { sent: outcome("sent"), retried: outcome("retried"), refused: outcome("refused") })
    }
}

/// `registry` in the Prometheus text format (what `/metrics` serves).
pub fn text(registry: &Registry) -> String {
    use prometheus::Encoder as _;
    let mut out = Vec::new();
    match prometheus::TextEncoder::new().encode(&registry.gather(), &mut out) {
        Ok(()) => String::from_utf8(out).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn say(err: &prometheus::Error) {
    // A refused family is a programming error; said through `tracing` like every other log.
    tracing::error!(error = %err, "metric family not registered");
}

/// One broker action's handles.
#[derive(Clone)]
pub struct ActionMetrics {
    ok: IntCounter,
    client_error: IntCounter,
    server_error: IntCounter,
    seconds: Histogram,
    in_flight: IntGauge,
}

impl ActionMetrics {
    /// Count an action answered with `status` after `elapsed`.
    pub fn answered(&self, status: u16, elapsed: Duration) {
        match status {
            500.. => self.server_error.inc(),
            400..500 => self.client_error.inc(),
            _ => self.ok.inc(),
        }
        self.seconds.observe(elapsed.as_secs_f64());
    }

    /// Count the action in flight until the guard is dropped (answered or abandoned).
    pub fn in_flight(&self) -> InFlight<'_> {
        self.in_flight.inc();
        InFlight(&self.in_flight)
    }
}

/// One message in flight, counted down when dropped.
pub struct InFlight<'a>(&'a IntGauge);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The log store's handles.
#[derive(Clone)]
pub struct LogStoreMetrics {
    /// Entries per batch.
    pub batch_size: Histogram,
    /// Seconds per batch commit.
    pub commit_seconds: Histogram,
    /// Entries queued or being written (`troupe_actor_in_flight{actor="logger"}`).
    pub in_flight: IntGauge,
}

/// The publisher's handles.
#[derive(Clone)]
pub struct EventMetrics {
    /// Handed to the broker (RabbitMQ) or the embedded queue.
    pub published: IntCounter,
    /// Confirmed stored (RabbitMQ's ack, the queue's commit).
    pub confirmed: IntCounter,
    /// Returned as unroutable (`mandatory`).
    pub returned: IntCounter,
    /// Nacked, timed out or lost with the connection.
    pub failed: IntCounter,
}

/// The mailer's handles.
#[derive(Clone)]
pub struct MailMetrics {
    /// Accepted by the SMTP server.
    pub sent: IntCounter,
    /// Attempts retried after a transient failure.
    pub retried: IntCounter,
    /// Refused for good (5xx).
    pub refused: IntCounter,
}

/// A family read at scrape time.
pub struct Family {
    /// Name without the `troupe_` prefix (`events_delivered_total`).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Counter (else gauge).
    pub counter: bool,
    /// Label names.
    pub labels: &'static [&'static str],
}

/// One value read: the index of its [`Family`], its label values, the value.
pub type Reading = (usize, Vec<String>, i64);

enum Vec_ {
    Counter(IntCounterVec),
    Gauge(IntGaugeVec),
}

/// A collector whose values are read from their owner when `/metrics` is scraped: the
/// owner's atomics stay the only cost on its path.
pub struct ReadOnScrape {
    families: Vec<Vec_>,
    read: Box<dyn Fn() -> Vec<Reading> + Send + Sync>,
}

impl ReadOnScrape {
    /// Families `families`, filled by `read` (absolute values; a counter that went down was
    /// reset and starts again from the new value).
    pub fn new(
        families: &[Family],
        read: impl Fn() -> Vec<Reading> + Send + Sync + 'static,
    ) -> prometheus::Result<Self> {
        let families = families
            .iter()
            .map(|f| {
                let o = opts(f.name, f.help);
                Ok(match f.counter {
                    true => Vec_::Counter(IntCounterVec::new(o, f.labels)?),
                    false => Vec_::Gauge(IntGaugeVec::new(o, f.labels)?),
                })
            })
            .collect::<prometheus::Result<_>>()?;
        Ok(Self { families, read: Box::new(read) })
    }
}

impl Collector for ReadOnScrape {
    fn desc(&self) -> Vec<&Desc> {
        self.families
            .iter()
            .flat_map(|f| match f {
                Vec_::Counter(v) => v.desc(),
                Vec_::Gauge(v) => v.desc(),
            })
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        for (index, labels, value) in (self.read)() {
            let labels: Vec<&str> = labels.iter().map(String::as_str).collect();
            match self.families.get(index) {
                Some(Vec_::Counter(v)) => {
                    let Ok(c) = v.get_metric_with_label_values(&labels) else { continue };
                    let now = u64::try_from(value).unwrap_or(0);
                    if now < c.get() {
                        c.reset();
                    }
                    c.inc_by(now - c.get());
                }
                Some(Vec_::Gauge(v)) => {
                    if let Ok(g) = v.get_metric_with_label_values(&labels) {
                        g.set(value);
                    }
                }
                None => {}
            }
        }
        self.families
            .iter()
            .flat_map(|f| match f {
                Vec_::Counter(v) => v.collect(),
                Vec_::Gauge(v) => v.collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &Metrics) -> String {
        super::text(m.registry())
    }

    #[test]
    fn an_action_is_counted_once_under_its_outcome() {
        let m = Metrics::default();
        let log = m.broker_action("log").expect("on");
        log.answered(202, Duration::from_millis(2));
        log.answered(503, Duration::from_millis(2));
        let out = text(&m);
        assert!(out.contains(r#"troupe_broker_actions_total{action="log",outcome="ok"} 1"#), "{out}");
        assert!(out.contains(r#"troupe_broker_actions_total{action="log",outcome="server_error"} 1"#));
        assert!(out.contains(r#"troupe_broker_action_duration_seconds_count{action="log"} 2"#));
    }

    #[test]
    fn off_registers_nothing_and_hands_out_no_handles() {
        let m = Metrics::new(MetricsMode::Off);
        assert!(m.broker_action("log").is_none() && m.mail().is_none());
        assert!(m.registry().gather().is_empty());
    }

    #[test]
    fn values_read_on_scrape_follow_their_owner_and_a_reset_counter_starts_again() {
        let m = Metrics::default();
        let value = Arc::new(std::sync::atomic::AtomicI64::new(5));
        let read = value.clone();
        let families = [Family { name: "things_total", help: "things", counter: true, labels: &["kind"] }];
        let collector = ReadOnScrape::new(&families, move || {
            vec![(0, vec!["a".into()], read.load(std::sync::atomic::Ordering::Relaxed))]
        })
        .expect("valid");
        m.register(collector);
        assert!(text(&m).contains(r#"troupe_things_total{kind="a"} 5"#));
        value.store(2, std::sync::atomic::Ordering::Relaxed);
        assert!(text(&m).contains(r#"troupe_things_total{kind="a"} 2"#));
    }
}
