//! The recent-trace store: the spans of the last traces in memory, bounded ([`MAX_TRACES`] traces, [`MAX_SPANS`] spans; the oldest trace goes first),
//! and the shapes `GET /traces` serves them in ([`SpanView`], [`TraceSummary`]).
//!
//! Ending a span costs one short lock and a move of its boxed [`SpanRecord`]; everything else (hex
//! ids, attribute text, the service of each span) is worked out when someone reads a trace.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::record::SpanRecord;

/// Most traces kept.
pub const MAX_TRACES: usize = 1_000;
/// Most spans kept, over all traces.
pub const MAX_SPANS: usize = 20_000;
/// Most spans kept of one trace (a runaway trace cannot push every other one out).
const MAX_SPANS_PER_TRACE: usize = 1_000;

/// The attribute naming the service a span belongs to when several share a process
/// (`troupe up`); a span without it belongs to its parent's service, else the process's.
pub const SERVICE_ATTRIBUTE: &str = "service";

/// The process's store (absent when tracing is off).
static STORE: OnceLock<TraceStore> = OnceLock::new();

/// The process's recent-trace store; `None` when tracing is off (`OTEL_SDK_DISABLED=true`).
pub fn get() -> Option<&'static TraceStore> {
    STORE.get()
}

/// Make the process's store (spans with no service of their own belong to `service`).
pub(crate) fn install(service: &'static str) -> &'static TraceStore {
    STORE.get_or_init(|| TraceStore::new(service, MAX_TRACES, MAX_SPANS))
}

/// The spans of the most recent traces, bounded.
#[derive(Debug)]
pub struct TraceStore {
    service: &'static str,
    max_traces: usize,
    max_spans: usize,
    inner: Mutex<Inner>,
}

/// Trace ids are random: their low 64 bits are a good enough hash, and SipHash on every span
/// that ends is a cost on the hot path for nothing.
#[derive(Debug, Default, Clone, Copy)]
struct TraceIdHasher(u64);

impl std::hash::Hasher for TraceIdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, n: u128) {
        // The low 64 bits (the truncation is the point).
        #[allow(clippy::cast_possible_truncation)]
        let low = n as u64;
        self.0 ^= low;
    }
}

type TraceMap<V> = HashMap<TraceId, V, std::hash::BuildHasherDefault<TraceIdHasher>>;

/// One trace's spans: a request's usual few inline, with no allocation of their own.
type Spans = SmallVec<[Box<SpanRecord>; 4]>;

#[derive(Debug, Default)]
struct Inner {
    traces: TraceMap<Spans>,
    /// Trace ids, oldest first (by their first span to end).
    order: VecDeque<TraceId>,
    spans: usize,
}

impl TraceStore {
    /// An empty store keeping at most `max_traces` traces and `max_spans` spans.
    pub fn new(service: &'static str, max_traces: usize, max_spans: usize) -> Self {
        Self { service, max_traces, max_spans, inner: Mutex::default() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Keep one ended span.
    pub fn push(&self, span: Box<SpanRecord>) {
        let id = span.trace_id;
        let mut inner = self.lock();
        let Inner { traces, order, spans } = &mut *inner;
        match traces.get_mut(&id) {
            Some(trace) if trace.len() >= MAX_SPANS_PER_TRACE => return,
            Some(trace) => trace.push(span),
            None => {
                traces.insert(id, smallvec::smallvec![span]);
                order.push_back(id);
            }
        }
        *spans += 1;
        while order.len() > self.max_traces || *spans > self.max_spans {
            let Some(oldest) = order.pop_front() else { break };
            *spans -= traces.remove(&oldest).map_or(0, |t| t.len());
        }
    }

    /// The spans of trace `id` (32 hex digits), sorted by start; `None` when none is known.
    pub fn trace(&self, id: TraceId) -> Option<Vec<SpanView>> {
        let spans = self.lock().traces.get(&id).cloned()?;
        Some(self.views(spans))
    }

    /// Summaries of the most recent traces, newest first: all of them, or those with a span
    /// whose `request_id` attribute is `request_id`; at most `limit`.
    pub fn recent(&self, request_id: Option<&str>, limit: usize) -> Vec<TraceSummary> {
        let picked: Vec<Spans> = {
            let inner = self.lock();
            let matches = |spans: &&Spans| {
                request_id.is_none_or(|want| spans.iter().any(|s| s.attribute("request_id") == Some(want)))
            };
            inner
                .order
                .iter()
                .rev()
                .filter_map(|id| inner.traces.get(id))
                .filter(matches)
                .take(limit)
                .cloned()
                .collect()
        };
        picked.into_iter().filter_map(|spans| TraceSummary::of(&self.views(spans))).collect()
    }

    /// The spans as served, sorted by start, each with the service it belongs to.
    fn views(&self, mut spans: Spans) -> Vec<SpanView> {
        spans.sort_by_key(|s| s.start);
        let own: HashMap<SpanId, (SpanId, Option<&str>)> =
            spans.iter().map(|s| (s.span_id, (s.parent_span_id, s.attribute(SERVICE_ATTRIBUTE)))).collect();
        // The nearest span up the tree that names its service, else this process's.
        let service_of = |mut id: SpanId| {
            for _ in 0..64 {
                match own.get(&id) {
                    Some((_, Some(service))) => return (*service).to_owned(),
                    Some((parent, None)) => id = *parent,
                    None => break,
                }
            }
            self.service.to_owned()
        };
        spans.iter().map(|s| SpanView::of(s, service_of(s.span_id))).collect()
    }
}

fn unix_ms(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// One span as `GET /traces/{id}` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpanView {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits.
    pub span_id: String,
    /// The parent's span id; `null` for a root.
    pub parent_span_id: Option<String>,
    /// The service it belongs to (`broker`, `auth`, ...).
    pub service: String,
    /// What it is (`POST /handle`, `action auth`, `Authenticate`, ...).
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: String,
    /// When it started, in milliseconds since the epoch.
    pub start_unix_ms: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// `ok` or `error`.
    pub status: String,
    /// What went wrong, for an error.
    pub error: Option<String>,
    /// Its attributes, as text.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

impl SpanView {
    fn of(s: &SpanRecord, service: String) -> Self {
        let kind = match s.kind {
            SpanKind::Server => "server",
            SpanKind::Client => "client",
            SpanKind::Producer => "producer",
            SpanKind::Consumer => "consumer",
            SpanKind::Internal => "internal",
        };
        let error = s.failure();
        let duration = s.end.duration_since(s.start).unwrap_or_default();
        let attributes = s
            .attributes()
            .filter(|(key, _)| *key != SERVICE_ATTRIBUTE)
            .map(|(key, value)| (key.to_owned(), serde_json::Value::String(value.into_owned())))
            .collect();
        Self {
            trace_id: s.trace_id.to_string(),
            span_id: s.span_id.to_string(),
            parent_span_id: (s.parent_span_id != SpanId::INVALID).then(|| s.parent_span_id.to_string()),
            service,
            name: s.name().to_owned(),
            kind: kind.to_owned(),
            start_unix_ms: unix_ms(s.start),
            duration_ms: duration.as_secs_f64() * 1000.0,
            status: if error.is_some() { "error" } else { "ok" }.to_owned(),
            error: error.map(str::to_owned),
            attributes,
        }
    }
}

/// One trace in a list (`GET /traces`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TraceSummary {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// The root span's name.
    pub name: String,
    /// The root span's service.
    pub service: String,
    /// The request id it served, when one is known.
    pub request_id: Option<String>,
    /// When it started, in milliseconds since the epoch.
    pub start_unix_ms: f64,
    /// From the first start to the last end, in milliseconds.
    pub duration_ms: f64,
    /// How many spans it has.
    pub spans: usize,
    /// Whether any span failed.
    pub error: bool,
}

impl TraceSummary {
    /// The summary of a trace's spans (sorted by start); `None` for no span. The root is the
    /// span without a parent among them (else the first to start).
    pub fn of(spans: &[SpanView]) -> Option<Self> {
        let first = spans.first()?;
        let known: std::collections::HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let root = spans
            .iter()
            .find(|s| s.parent_span_id.as_deref().is_none_or(|p| !known.contains(p)))
            .unwrap_or(first);
        let start = spans.iter().map(|s| s.start_unix_ms).fold(f64::INFINITY, f64::min);
        let end = spans.iter().map(|s| s.start_unix_ms + s.duration_ms).fold(f64::NEG_INFINITY, f64::max);
        let request_id = std::iter::once(root)
            .chain(spans)
            .find_map(|s| s.attributes.get("request_id").and_then(|v| v.as_str()).filter(|v| !v.is_empty()))
            .map(str::to_owned);
        Some(Self {
            trace_id: first.trace_id.clone(),
            name: root.name.clone(),
            service: root.service.clone(),
            request_id,
            start_unix_ms: start,
            duration_ms: end - start,
            spans: spans.len(),
            error: spans.iter().any(|s| s.status == "error"),
        })
    }
}

/// Parse a trace id from a path: exactly 32 lowercase hex digits, not all zero.
pub fn parse_trace_id(raw: &str) -> Option<TraceId> {
    let ok = raw.len() == 32 && raw.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let id = ok.then(|| TraceId::from_hex(raw).ok()).flatten()?;
    (id != TraceId::INVALID).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::record as span;
    use super::*;

    #[test]
    fn the_oldest_traces_go_first_when_full() {
        let store = TraceStore::new("troupe", 2, 3);
        for trace in 1..=3 {
            store.push(Box::new(span(trace, 1, 0, &[])));
        }
        assert!(store.trace(TraceId::from(1)).is_none());
        assert!(store.trace(TraceId::from(3)).is_some());
        store.push(Box::new(span(3, 2, 1, &[])));
        store.push(Box::new(span(3, 3, 1, &[])));
        // Four spans over a limit of three: trace 2 goes.
        assert!(store.trace(TraceId::from(2)).is_none());
        assert_eq!(store.trace(TraceId::from(3)).map(|s| s.len()), Some(3));
    }

    #[test]
    fn spans_inherit_their_service_and_summaries_find_the_request() {
        let store = TraceStore::new("troupe", 10, 100);
        store.push(Box::new(span(7, 2, 1, &[("service", "auth")])));
        store.push(Box::new(span(7, 3, 2, &[])));
        store.push(Box::new(span(7, 1, 0, &[("service", "broker"), ("request_id", "r-1")])));
        store.push(Box::new(span(8, 1, 0, &[])));
        let spans = store.trace(TraceId::from(7)).unwrap_or_default();
        let services: Vec<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(services, ["broker", "auth", "auth"]);
        assert_eq!(spans[0].parent_span_id, None);
        let found = store.recent(Some("r-1"), 10);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].service.as_str(), found[0].spans), ("broker", 3));
        assert_eq!(found[0].request_id.as_deref(), Some("r-1"));
        assert_eq!(store.recent(None, 10).len(), 2);
        assert_eq!(store.recent(None, 10)[0].service, "troupe", "newest first, process service");
    }

    #[test]
    fn trace_ids_are_32_lowercase_hex_digits() {
        assert!(parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
        for bad in [
            "",
            "xyz",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "00000000000000000000000000000000",
            "4bf92f3577b34da6",
        ] {
            assert!(parse_trace_id(bad).is_none(), "{bad}");
        }
    }
}
