//! One span as Troupe keeps it: ids, name, kind, two timestamps, status and a compact
//! attribute list ([`SpanRecord`]), filled from `tracing`'s fields while the span lives
//! ([`Fields`]), kept by the recent-trace store when it ends, and turned into
//! OpenTelemetry's `SpanData` only for an OTLP export.
//!
//! A span's text (its attribute values and a dynamic name) shares one buffer, so recording a
//! span costs one allocation, not one per attribute; the OpenTelemetry conventions for
//! special fields hold (`otel.name`, `otel.kind`, `otel.status_code`,
//! `otel.status_description`), as `tracing-opentelemetry` reads them.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::time::SystemTime;

use opentelemetry::trace::{Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use smallvec::SmallVec;
use tracing::field::{Field, Visit};

/// An attribute's value: text lives in the record's buffer.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Value {
    Text(u32, u32),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
}

/// A span's name: the `tracing` one, or an `otel.name` kept in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Name {
    Static(&'static str),
    Text(u32, u32),
}

/// A span while it lives and after it ended.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub(crate) trace_id: TraceId,
    pub(crate) span_id: SpanId,
    /// [`SpanId::INVALID`] for a root.
    pub(crate) parent_span_id: SpanId,
    pub(crate) parent_is_remote: bool,
    /// Kept and exported only when sampled; its ids are propagated either way.
    pub(crate) sampled: bool,
    pub(crate) trace_state: TraceState,
    pub(crate) kind: SpanKind,
    pub(crate) start: SystemTime,
    pub(crate) end: SystemTime,
    name: Name,
    /// `otel.status_code`: `Some(true)` ok, `Some(false)` error.
    ok: Option<bool>,
    /// What went wrong: `otel.status_description`, or an error event's message.
    error: Option<String>,
    text: String,
    fields: SmallVec<[(&'static str, Value); 8]>,
    /// The span's events, kept only while an OTLP exporter runs.
    pub(crate) events: Vec<Event>,
}

impl SpanRecord {
    /// A span starting now, named `name`, with fresh ids.
    pub(crate) fn new(name: &'static str, trace_id: TraceId, parent_span_id: SpanId, sampled: bool) -> Self {
        let now = SystemTime::now();
        Self {
            trace_id,
            span_id: SpanId::from(fastrand::u64(1..)),
            parent_span_id,
            parent_is_remote: false,
            sampled,
            trace_state: TraceState::NONE,
            kind: SpanKind::Internal,
            start: now,
            end: now,
            name: Name::Static(name),
            ok: None,
            error: None,
            text: String::new(),
            fields: SmallVec::new(),
            events: Vec::new(),
        }
    }

    /// Its W3C span context (`traceparent`'s ids and flags, `tracestate`).
    pub(crate) fn span_context(&self) -> SpanContext {
        let flags = if self.sampled { TraceFlags::SAMPLED } else { TraceFlags::default() };
        SpanContext::new(self.trace_id, self.span_id, flags, false, self.trace_state.clone())
    }

    fn text_at(&self, start: u32, end: u32) -> &str {
        self.text.get(start as usize..end as usize).unwrap_or_default()
    }

    /// Its name (`otel.name` when it set one).
    pub fn name(&self) -> &str {
        match self.name {
            Name::Static(name) => name,
            Name::Text(start, end) => self.text_at(start, end),
        }
    }

    /// Whether it failed, and what went wrong (`""` when nothing says).
    pub fn failure(&self) -> Option<&str> {
        if self.ok == Some(false) || self.error.is_some() {
            Some(self.error.as_deref().or_else(|| self.attribute("exception.message")).unwrap_or_default())
        } else {
            None
        }
    }

    /// The text of attribute `key`, if it is text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| *k == key).and_then(|(_, v)| match *v {
            Value::Text(start, end) => Some(self.text_at(start, end)),
            _ => None,
        })
    }

    /// Its attributes as text, in the order last recorded.
    pub fn attributes(&self) -> impl Iterator<Item = (&'static str, Cow<'_, str>)> {
        self.fields.iter().map(|(key, value)| (*key, self.value_text(*value)))
    }

    fn value_text(&self, value: Value) -> Cow<'_, str> {
        match value {
            Value::Text(start, end) => Cow::Borrowed(self.text_at(start, end)),
            Value::I64(n) => Cow::Owned(n.to_string()),
            Value::U64(n) => Cow::Owned(n.to_string()),
            Value::F64(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
        }
    }

    fn push_text(&mut self, write: impl FnOnce(&mut String)) -> (u32, u32) {
        if self.text.capacity() == 0 {
            self.text.reserve(96);
        }
        let start = self.text.len();
        write(&mut self.text);
        // A span's text beyond 4 GiB is not a case to handle: it saturates.
        let at = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        (at(start), at(self.text.len()))
    }

    /// Set attribute `key`: a field recorded again moves to the end with its new value (its
    /// old text stays in the buffer, unreferenced), so the list never holds a key twice. For
    /// a span's first fields (`fresh`) the list is not searched: a callsite names each field
    /// once.
    fn put(&mut self, key: &'static str, value: Value, fresh: bool) {
        if !fresh && let Some(at) = self.fields.iter().position(|(k, _)| *k == key) {
            self.fields.remove(at);
        }
        self.fields.push((key, value));
    }

    /// Set attribute `key` to text, or the name, kind or status for the `otel.` fields.
    fn put_text(&mut self, key: &'static str, value: &str, fresh: bool) {
        match key {
            "otel.name" => {
                let (start, end) = self.push_text(|t| t.push_str(value));
                self.name = Name::Text(start, end);
            }
            "otel.kind" => {
                if let Some(kind) = kind_of(value) {
                    self.kind = kind;
                }
            }
            "otel.status_code" => {
                self.ok = match value {
                    v if v.eq_ignore_ascii_case("ok") => Some(true),
                    v if v.eq_ignore_ascii_case("error") => Some(false),
                    _ => None,
                }
            }
            "otel.status_description" | "otel.status_message" => self.error = Some(value.to_owned()),
            _ => {
                let (start, end) = self.push_text(|t| t.push_str(value));
                self.put(key, Value::Text(start, end), fresh);
            }
        }
    }

    /// Mark it failed with `why` (an error event inside it), unless it says what failed already.
    pub(crate) fn fail(&mut self, why: String) {
        if self.error.is_none() {
            self.error = Some(why);
        }
    }

    /// Its OpenTelemetry form, for the exporter.
    pub(crate) fn to_span_data(&self, scope: &InstrumentationScope) -> SpanData {
        let status = match (self.failure(), self.ok) {
            (Some(why), _) => Status::error(why.to_owned()),
            (None, Some(true)) => Status::Ok,
            (None, _) => Status::Unset,
        };
        let attributes = self
            .fields
            .iter()
            .map(|(key, value)| {
                let value = match *value {
                    Value::Text(start, end) => {
                        opentelemetry::Value::from(self.text_at(start, end).to_owned())
                    }
                    Value::I64(n) => opentelemetry::Value::I64(n),
                    // OpenTelemetry has no unsigned integers: a u64 beyond i64 goes as text.
                    Value::U64(n) => i64::try_from(n).map_or_else(
                        |_| opentelemetry::Value::from(n.to_string()),
                        opentelemetry::Value::I64,
                    ),
                    Value::F64(n) => opentelemetry::Value::F64(n),
                    Value::Bool(b) => opentelemetry::Value::Bool(b),
                };
                KeyValue::new(*key, value)
            })
            .collect();
        let mut events = SpanEvents::default();
        events.events.clone_from(&self.events);
        SpanData {
            span_context: self.span_context(),
            parent_span_id: self.parent_span_id,
            parent_span_is_remote: self.parent_is_remote,
            span_kind: self.kind.clone(),
            name: Cow::Owned(self.name().to_owned()),
            start_time: self.start,
            end_time: self.end,
            attributes,
            dropped_attributes_count: 0,
            events,
            links: SpanLinks::default(),
            status,
            instrumentation_scope: scope.clone(),
        }
    }
}

/// The `otel.kind` values (any case).
fn kind_of(value: &str) -> Option<SpanKind> {
    [
        ("server", SpanKind::Server),
        ("client", SpanKind::Client),
        ("producer", SpanKind::Producer),
        ("consumer", SpanKind::Consumer),
        ("internal", SpanKind::Internal),
    ]
    .into_iter()
    .find_map(|(name, kind)| value.eq_ignore_ascii_case(name).then_some(kind))
}

/// Records `tracing` fields into a [`SpanRecord`]: `fresh` for a span's first fields (at its
/// creation), which cannot repeat one another, `false` for fields recorded later.
pub(crate) struct Fields<'a> {
    pub(crate) record: &'a mut SpanRecord,
    pub(crate) fresh: bool,
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.record.put_text(field.name(), value, self.fresh);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let key = field.name();
        if key.starts_with("otel.") {
            self.record.put_text(key, &format!("{value:?}"), self.fresh);
        } else {
            let (start, end) = self.record.push_text(|t| {
                let _ = write!(t, "{value:?}");
            });
            self.record.put(key, Value::Text(start, end), self.fresh);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.record.put(field.name(), Value::I64(value), self.fresh);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.record.put(field.name(), Value::U64(value), self.fresh);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.record.put(field.name(), Value::F64(value), self.fresh);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.record.put(field.name(), Value::Bool(value), self.fresh);
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.record_debug(field, &format_args!("{value}"));
    }
}

/// An event's fields as an OpenTelemetry span event (`message` names it).
pub(crate) struct EventFields {
    pub(crate) message: String,
    pub(crate) attributes: Vec<KeyValue>,
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.attributes.push(KeyValue::new(field.name(), value.to_owned()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.attributes.push(KeyValue::new(field.name(), format!("{value:?}")));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attributes.push(KeyValue::new(field.name(), value));
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    /// A record for the store's tests: trace `trace`, span `id` under `parent`, text attributes.
    pub(crate) fn record(trace: u128, id: u64, parent: u64, attrs: &[(&'static str, &str)]) -> SpanRecord {
        let mut r = SpanRecord::new("work", TraceId::from(trace), SpanId::from(parent), true);
        r.span_id = SpanId::from(id);
        r.start = UNIX_EPOCH + Duration::from_millis(1_000 + id);
        r.end = r.start + Duration::from_millis(2);
        for (key, value) in attrs {
            r.put_text(key, value, false);
        }
        r
    }

    #[test]
    fn the_otel_fields_name_kind_and_status_and_the_rest_are_attributes() {
        let mut r =
            record(1, 2, 0, &[("otel.name", "POST /handle"), ("otel.kind", "Server"), ("service", "broker")]);
        r.put("http.status_code", Value::I64(500), false);
        r.put_text("otel.status_code", "ERROR", false);
        r.put_text("exception.message", "boom", false);
        r.put_text("service", "auth", false);
        assert_eq!((r.name(), r.kind.clone()), ("POST /handle", SpanKind::Server));
        assert_eq!(r.failure(), Some("boom"));
        let attrs: Vec<(&str, String)> = r.attributes().map(|(k, v)| (k, v.into_owned())).collect();
        let want = [("http.status_code", "500"), ("exception.message", "boom"), ("service", "auth")];
        assert_eq!(attrs, want.map(|(k, v)| (k, v.to_owned())));
        let data = r.to_span_data(&InstrumentationScope::builder("t").build());
        assert_eq!(data.name, "POST /handle");
        assert_eq!(data.status, Status::error("boom"));
        assert!(data.attributes.contains(&KeyValue::new("http.status_code", 500_i64)));
    }

    #[test]
    fn a_span_without_a_status_has_not_failed() {
        let mut r = record(1, 2, 0, &[("otel.status_code", "OK")]);
        assert_eq!(r.failure(), None);
        r.fail("log store failed".into());
        assert_eq!(r.failure(), Some("log store failed"));
    }
}
