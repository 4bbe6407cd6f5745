//! `GET /metrics/history` on the broker: the last 15 minutes of every service's request
//! rate, p99 latency and error rate, and of the event pipeline's queue depth and dead
//! letters, for the console's charts.
//!
//! A sampler task ([`sampler`], a [`Part`](crate::platform::Part) stopped with the platform)
//! reads the metrics every `METRICS_SAMPLE_INTERVAL`: this process's registry (every service
//! in `troupe up`; the broker itself in split mode) and, in split mode, each other service's
//! `GET /metrics` (AUTH_URL, LOGGER_URL, MAILER_URL, LISTENER_URL) with the status probes'
//! deadline, parsed by `prometheus-parse`. A point is the difference between two samples:
//! requests per second, the 99th percentile from the histogram buckets' increase (as
//! Prometheus's `histogram_quantile` over `rate`), and the share of 5xx replies. Scrapes of
//! `/metrics` itself are not counted. A service that does not answer gets a point with no
//! values and `up: false` with the reason. Each series keeps at most 15 minutes of points.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use prometheus_parse::{Scrape, Value};
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use troupe_core::Envelope;
use troupe_core::metrics::Registry;
use url::Url;

use crate::api::reply;
use crate::status::StatusSource;

/// How far back the history goes.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);

/// The route metrics' names (actix-web-prom, namespace `troupe`).
const REQUESTS: &str = "troupe_http_requests_total";
const DURATION: &str = "troupe_http_requests_duration_seconds";
/// The broker's action metrics: in `troupe up` the broker reaches auth, the logger and the
/// mailer through their actors, not their HTTP routes, so their actions count as theirs.
const ACTIONS: &str = "troupe_broker_actions_total";
const ACTION_DURATION: &str = "troupe_broker_action_duration_seconds";
/// The services shown even before they served anything, when they run in this process.
const SHOWN: [&str; 4] = ["broker", "auth", "logger", "mailer"];

/// Where the sampler reads.
#[derive(Clone)]
pub struct Sources {
    /// This process's registry.
    pub local: Registry,
    /// Services of other processes (name, base URL), scraped at `/metrics`.
    pub remote: Vec<(String, Url)>,
    /// Client for the scrapes (with a deadline).
    pub client: Option<reqwest::Client>,
    /// The services of this process, when every service runs in it (`troupe up`).
    pub in_process: Option<crate::platform::ServiceNames>,
}

impl Sources {
    /// The sources the broker's status view already knows: the process's registry, and in
    /// split mode the services it probes.
    pub fn from_status(local: Registry, status: &StatusSource) -> Self {
        match status {
            StatusSource::Local { services, .. } => {
                Self { local, remote: Vec::new(), client: None, in_process: Some(services.clone()) }
            }
            StatusSource::Remote { services, client } => {
                Self { local, remote: services.clone(), client: Some(client.clone()), in_process: None }
            }
        }
    }
}

/// One point of a service's series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Point {
    /// When (Unix milliseconds).
    pub t: i64,
    /// Requests per second since the previous sample.
    pub rate: Option<f64>,
    /// 99th percentile latency in milliseconds (`None` without requests).
    pub p99_ms: Option<f64>,
    /// Share of 5xx replies, 0 to 1.
    pub error_rate: Option<f64>,
}

/// One point of the event pipeline's series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EventPoint {
    /// When (Unix milliseconds).
    pub t: i64,
    /// Events waiting in the embedded queue (`None` over RabbitMQ, whose queue it keeps).
    pub queue_depth: Option<f64>,
    /// Events dead-lettered since the consumer started.
    pub dead_letters: Option<f64>,
}

/// One service's series.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Series {
    /// Whether the last sample was read.
    pub up: bool,
    /// Why it was not, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Oldest first.
    pub points: VecDeque<Point>,
}

/// Cumulative request figures of one service at one sample.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: f64,
    errors: f64,
    /// (upper bound, cumulative count), ascending.
    buckets: Vec<(f64, f64)>,
}

/// The history the route serves; bounded to [`WINDOW`].
#[derive(Debug)]
pub struct History {
    interval: Duration,
    capacity: usize,
    services: BTreeMap<String, Series>,
    events: VecDeque<EventPoint>,
    last: HashMap<String, (Instant, Totals)>,
}

/// The history, shared by the sampler and the route.
pub type SharedHistory = Arc<Mutex<History>>;

impl History {
    /// An empty history sampled every `interval`.
    pub fn new(interval: Duration) -> Self {
        let interval = interval.max(Duration::from_millis(100));
        let capacity =
            usize::try_from(WINDOW.as_millis().div_ceil(interval.as_millis())).unwrap_or(usize::MAX);
        Self { interval, capacity, services: BTreeMap::new(), events: VecDeque::new(), last: HashMap::new() }
    }

    /// Points kept per series.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn push<T>(capacity: usize, points: &mut VecDeque<T>, point: T) {
        points.push_back(point);
        while points.len() > capacity {
            points.pop_front();
        }
    }

    /// Record a service's totals read at `now` (`t` in Unix ms).
    fn record(&mut self, service: &str, now: Instant, t: i64, totals: Totals) {
        let previous = self.last.insert(service.to_owned(), (now, totals.clone()));
        let series = self.services.entry(service.to_owned()).or_default();
        series.up = true;
        series.error = None;
        let Some((then, before)) = previous else { return };
        let point = point(t, now.saturating_duration_since(then), &before, &totals);
        Self::push(self.capacity, &mut series.points, point);
    }

    /// Record that a service could not be read.
    fn unreadable(&mut self, service: &str, t: i64, why: String) {
        let series = self.services.entry(service.to_owned()).or_default();
        series.up = false;
        series.error = Some(why);
        let point = Point { t, rate: None, p99_ms: None, error_rate: None };
        Self::push(self.capacity, &mut series.points, point);
    }

    fn record_events(&mut self, point: EventPoint) {
        Self::push(self.capacity, &mut self.events, point);
    }

    /// The JSON the route serves.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "interval_ms": u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX),
            "window_ms": u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX),
            "services": self.services,
            "events": { "points": self.events },
        })
    }
}

/// The point between two samples `elapsed` apart (a counter that went down was reset: the
/// newer totals count from zero).
fn point(t: i64, elapsed: Duration, before: &Totals, now: &Totals) -> Point {
    let reset = now.requests < before.requests;
    let zero = Totals::default();
    let before = if reset { &zero } else { before };
    let requests = now.requests - before.requests;
    let secs = elapsed.as_secs_f64();
    let rate = (secs > 0.0).then(|| requests / secs);
    let error_rate =
        Some(if requests > 0.0 { (now.errors - before.errors).max(0.0) / requests } else { 0.0 });
    let increase: Vec<(f64, f64)> = now
        .buckets
        .iter()
        .map(|&(le, count)| {
            let old = before.buckets.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
            (le, (count - old).max(0.0))
        })
        .collect();
    Point { t, rate, p99_ms: quantile(0.99, &increase).map(|s| s * 1000.0), error_rate }
}

/// The `q` quantile of cumulative `buckets` (ascending upper bounds), interpolated linearly
/// inside its bucket as Prometheus's `histogram_quantile`; the highest finite bound when
/// it falls in the `+Inf` bucket; `None` when empty.
fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let width = count - lower.1;
            let into = if width > 0.0 { (rank - lower.1) / width } else { 1.0 };
            return Some(lower.0 + (le - lower.0) * into);
        }
        lower = (le, count);
    }
    Some(lower.0)
}

/// Each service's totals in `scrape` (those labelled `service`; `only` keeps one), with
/// the broker's actions counted for the services they reach when `actions`.
fn totals(scrape: &Scrape, only: Option<&str>, actions: bool) -> BTreeMap<String, Totals> {
    let mut out: BTreeMap<String, Totals> = BTreeMap::new();
    for sample in &scrape.samples {
        let (service, error) = match sample.metric.as_str() {
            REQUESTS | DURATION => {
                let Some(service) = sample.labels.get("service") else { continue };
                if sample.labels.get("endpoint") == Some("/metrics") {
                    continue;
                }
                (service, sample.labels.get("status").is_some_and(|s| s.starts_with('5')))
            }
            ACTIONS | ACTION_DURATION if actions => {
                let service = match sample.labels.get("action") {
                    Some("auth") => "auth",
                    Some("log") => "logger",
                    Some("mail") => "mailer",
                    _ => continue,
                };
                (service, sample.labels.get("outcome") == Some("server_error"))
            }
            _ => continue,
        };
        if only.is_some_and(|o| o != service) {
            continue;
        }
        let t = out.entry(service.to_owned()).or_default();
        match &sample.value {
            Value::Counter(n) | Value::Untyped(n) => {
                t.requests += n;
                if error {
                    t.errors += n;
                }
            }
            Value::Histogram(counts) => {
                for c in counts {
                    match t.buckets.iter_mut().find(|(le, _)| *le == c.less_than) {
                        Some(b) => b.1 += c.count,
                        None => t.buckets.push((c.less_than, c.count)),
                    }
                }
            }
            _ => {}
        }
    }
    for t in out.values_mut() {
        t.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    out
}

/// The sum of the samples named `name` across scrapes; `None` when none has it.
fn sum(scrapes: &[&Scrape], name: &str) -> Option<f64> {
    let values: Vec<f64> = scrapes
        .iter()
        .flat_map(|s| &s.samples)
        .filter(|s| s.metric == name)
        .filter_map(|s| match s.value {
            Value::Counter(n) | Value::Gauge(n) | Value::Untyped(n) => Some(n),
            _ => None,
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn parse(text: &str) -> std::io::Result<Scrape> {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
}

async fn scrape(client: &reqwest::Client, base: &Url) -> Result<Scrape, String> {
    let url = format!("{}/metrics", base.as_str().trim_end_matches('/'));
    let res = client.get(&url).send().await.map_err(|e| match e.is_timeout() {
        true => "no answer in time".to_owned(),
        false => "unreachable".to_owned(),
    })?;
    if !res.status().is_success() {
        return Err(format!("/metrics answered {}", res.status().as_u16()));
    }
    let text = res.text().await.map_err(|_| "unreadable /metrics reply".to_owned())?;
    parse(&text).map_err(|_| "unreadable /metrics reply".to_owned())
}

/// Read every source once and record a point for each service and for the events.
pub async fn sample(sources: &Sources, history: &SharedHistory) {
    let local = parse(&troupe_core::metrics::text(&sources.local))
        .unwrap_or(Scrape { docs: HashMap::new(), samples: Vec::new() });
    let remote = match &sources.client {
        Some(client) => {
            let scrapes =
                sources.remote.iter().map(|(name, base)| async move { (name, scrape(client, base).await) });
            futures_util::future::join_all(scrapes).await
        }
        None => Vec::new(),
    };
    let (now, t) = (Instant::now(), chrono::Utc::now().timestamp_millis());
    let mut h = history.lock().unwrap_or_else(PoisonError::into_inner);
    let mut here = totals(&local, None, sources.in_process.is_some());
    // The sampler runs in the broker: its series starts with the first sample.
    here.entry("broker".to_owned()).or_default();
    if let Some(names) = &sources.in_process {
        for name in names.list().into_iter().filter(|n| SHOWN.contains(&n.as_str())) {
            here.entry(name).or_default();
        }
    }
    for (service, totals) in here {
        h.record(&service, now, t, totals);
    }
    let mut read = vec![&local];
    for (name, scraped) in &remote {
        match scraped {
            Ok(scrape) => {
                let totals = totals(scrape, Some(name), false).remove(name.as_str()).unwrap_or_default();
                h.record(name, now, t, totals);
                read.push(scrape);
            }
            Err(why) => h.unreadable(name, t, why.clone()),
        }
    }
    let queue_depth = sum(&read, "troupe_events_queue_depth");
    let dead_letters = sum(&read, "troupe_events_dead_lettered_total");
    if queue_depth.is_some() || dead_letters.is_some() {
        h.record_events(EventPoint { t, queue_depth, dead_letters });
    }
}

/// The sampler: a sample every `interval` until `stop` is cancelled.
pub async fn sampler(sources: Sources, history: SharedHistory, interval: Duration, stop: CancellationToken) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(100)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = ticks.tick() => sample(&sources, &history).await,
        }
    }
}

/// `GET /metrics/history`.
pub fn routes(history: SharedHistory) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(history.clone())).route("/metrics/history", web::get().to(serve_history));
    }
}

/// The last 15 minutes of every service's request rates, latencies and backend states,
/// sampled (the console's charts).
#[utoipa::path(get, path = "/metrics/history", tag = "health",
    responses((status = 200, description = "The samples in `data`", body = Envelope)))]
async fn serve_history(history: web::Data<SharedHistory>) -> HttpResponse {
    let data = history.lock().unwrap_or_else(PoisonError::into_inner).to_json();
    reply(StatusCode::OK, Envelope::with_data("metrics history", data))
}

/// `GET /metrics/history`, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(serve_history))]
pub(crate) struct Doc;

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP troupe_http_requests_total Total number of HTTP requests
# TYPE troupe_http_requests_total counter
troupe_http_requests_total{endpoint="/handle",method="POST",service="broker",status="202"} 90
troupe_http_requests_total{endpoint="/handle",method="POST",service="broker",status="503"} 10
troupe_http_requests_total{endpoint="/metrics",method="GET",service="broker",status="200"} 7
troupe_http_requests_total{endpoint="/log",method="POST",service="logger",status="202"} 5
# HELP troupe_http_requests_duration_seconds HTTP request duration in seconds for all requests
# TYPE troupe_http_requests_duration_seconds histogram
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="202",le="0.01"} 80
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="202",le="0.1"} 90
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="202",le="+Inf"} 90
troupe_http_requests_duration_seconds_sum{endpoint="/handle",method="POST",service="broker",status="202"} 1
troupe_http_requests_duration_seconds_count{endpoint="/handle",method="POST",service="broker",status="202"} 90
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="503",le="0.01"} 0
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="503",le="0.1"} 10
troupe_http_requests_duration_seconds_bucket{endpoint="/handle",method="POST",service="broker",status="503",le="+Inf"} 10
troupe_http_requests_duration_seconds_sum{endpoint="/handle",method="POST",service="broker",status="503"} 1
troupe_http_requests_duration_seconds_count{endpoint="/handle",method="POST",service="broker",status="503"} 10
"#;

    #[test]
    fn totals_sum_a_service_across_routes_leaving_out_the_scrapes() {
        let all = totals(&parse(TEXT).expect("parses"), None, true);
        let broker = &all["broker"];
        assert_eq!((broker.requests, broker.errors), (100.0, 10.0));
        assert_eq!(broker.buckets, vec![(0.01, 80.0), (0.1, 100.0), (f64::INFINITY, 100.0)]);
        assert_eq!(all["logger"].requests, 5.0);
    }

    #[test]
    fn a_point_is_the_rate_p99_and_error_share_between_two_samples() {
        let before = Totals {
            requests: 100.0,
            errors: 10.0,
            buckets: vec![(0.01, 80.0), (0.1, 100.0), (f64::INFINITY, 100.0)],
        };
        let now = Totals {
            requests: 300.0,
            errors: 30.0,
            buckets: vec![(0.01, 278.0), (0.1, 300.0), (f64::INFINITY, 300.0)],
        };
        let p = point(0, Duration::from_secs(2), &before, &now);
        assert_eq!(p.rate, Some(100.0));
        assert_eq!(p.error_rate, Some(0.1));
        // 198 of the 200 new requests were under 10 ms: the 99th percentile is at its edge.
        let p99 = p.p99_ms.expect("requests were made");
        assert!((p99 - 10.0).abs() < 1e-9, "{p99}");
        let idle = point(0, Duration::from_secs(2), &now, &now);
        assert_eq!((idle.rate, idle.p99_ms, idle.error_rate), (Some(0.0), None, Some(0.0)));
    }

    #[test]
    fn a_counter_reset_counts_from_zero() {
        let before = Totals { requests: 500.0, ..Totals::default() };
        let now = Totals { requests: 4.0, ..Totals::default() };
        assert_eq!(point(0, Duration::from_secs(1), &before, &now).rate, Some(4.0));
    }

    #[test]
    fn the_history_keeps_fifteen_minutes_of_points() {
        let mut h = History::new(Duration::from_secs(5));
        assert_eq!(h.capacity(), 180);
        let start = Instant::now();
        for n in 0..400u32 {
            let totals = Totals { requests: f64::from(n), ..Totals::default() };
            h.record("broker", start + Duration::from_secs(5 * u64::from(n)), i64::from(n), totals);
        }
        h.unreadable("auth", 1, "unreachable".into());
        let json = h.to_json();
        assert_eq!(json["services"]["broker"]["points"].as_array().map(Vec::len), Some(180));
        assert_eq!(json["services"]["auth"]["up"], false);
        assert_eq!(json["services"]["auth"]["error"], "unreachable");
    }
}
