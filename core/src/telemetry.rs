//! One `tracing` subscriber for the whole process, and the OpenTelemetry tracing behind it.
//!
//! `RUST_LOG` filters the log lines as `env_logger` users expect (default `info`);
//! `LOG_FORMAT=json` switches to one JSON object per line for log collectors. The text lines'
//! fields are written by [`fields`] (the default format, with a fast path for plain text).
//!
//! Every `tracing` span `RUST_LOG` lets through (all of Troupe's are at `INFO`, the default)
//! is also a trace span ([`layer`]: W3C ids, sampled by `OTEL_TRACES_SAMPLER`), and ended
//! spans go to:
//!
//! - the recent-trace store ([`store`]): the last traces in memory, always on, served by every
//!   service's `GET /traces`;
//! - an OTLP exporter (gRPC, batched), only when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set.
//!
//! The OpenTelemetry environment conventions apply: `OTEL_SERVICE_NAME` (default: the
//! service), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG`
//! (default `parentbased_always_on`), `OTEL_EXPORTER_OTLP_*` (timeout, headers, compression);
//! `OTEL_SDK_DISABLED=true` turns all of it off: no trace layer, no store, no export.
//!
//! The helpers below read or carry a span's W3C trace context (`traceparent`, `tracestate`):
//! [`adopt`] at an edge, [`inject`] into an outbound call, [`trace_id`] for log entries.

mod fields;
mod layer;
mod record;
pub mod store;

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanProcessor as _};
use tracing::Span;
use tracing_subscriber::filter::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan as _;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, fmt};

use self::fields::PlainFields;
use self::layer::{Sampler, SpanLayer, Tracing};
use self::record::SpanRecord;
pub use self::store::TraceStore;

/// Output format of the logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The process's tracing (absent when it is off): where spans go, how they are sampled.
static TRACING: OnceLock<Tracing> = OnceLock::new();

/// The runtime the OTLP exporter's gRPC channel runs on: the batch processor exports from a
/// thread of its own, outside any actix or test runtime, and tonic needs a Tokio one.
static EXPORT_RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();

/// True when `OTEL_SDK_DISABLED` is `true` (any case): no tracing at all.
pub fn disabled() -> bool {
    std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// Whether an OTLP endpoint is configured (the exporter runs only then).
fn otlp_configured() -> bool {
    ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|name| std::env::var(name).is_ok_and(|v| !v.trim().is_empty()))
}

/// Install the global subscriber for the process that runs `service` (`broker`, `auth`, ...;
/// `troupe` when it runs them all). Safe to call twice (the second call does nothing).
pub fn init(format: LogFormat, service: &'static str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only for a terminal: a file or a collector gets plain text, and nobody pays for
    // escape codes nobody sees.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let lines = match format {
        LogFormat::Text => fmt::layer().fmt_fields(PlainFields).with_target(true).with_ansi(ansi).boxed(),
        LogFormat::Json => fmt::layer().json().flatten_event(true).with_target(true).boxed(),
    };
    let spans = (!disabled()).then(|| SpanLayer(TRACING.get_or_init(|| setup(service))));
    // One filter for both layers: per-layer filters lost spans of an actor's messages now
    // and then (a span enabled for the log lines but not for the traces). So the traces
    // hold the spans RUST_LOG lets through: `info` (the default) has them all.
    let _ = tracing_subscriber::registry().with(filter).with(lines).with(spans).try_init();
}

/// The process's tracing: the recent-trace store, plus the OTLP exporter when configured.
fn setup(service: &'static str) -> Tracing {
    let export = otlp_configured()
        .then(|| match exporter() {
            Ok(exporter) => {
                let name = std::env::var("OTEL_SERVICE_NAME").ok().filter(|n| !n.trim().is_empty());
                let resource = opentelemetry_sdk::Resource::builder()
                    .with_service_name(name.unwrap_or_else(|| service.to_owned()))
                    .build();
                let mut processor = BatchSpanProcessor::builder(exporter).build();
                processor.set_resource(&resource);
                Some(processor)
            }
            // Logging is not up yet: say it on stderr, keep serving (and storing) traces.
            Err(err) => {
                eprintln!("troupe: OTLP export off: {err}");
                None
            }
        })
        .flatten();
    Tracing {
        sampler: Sampler::from_env(),
        store: store::install(service),
        export,
        scope: opentelemetry::InstrumentationScope::builder("troupe").build(),
    }
}

/// The OTLP span exporter (gRPC), its channel on [`EXPORT_RUNTIME`]. Endpoint, timeout
/// (`OTEL_EXPORTER_OTLP_TIMEOUT`, default 10 s), headers and compression come from the
/// standard variables.
fn exporter() -> Result<opentelemetry_otlp::SpanExporter, String> {
    use opentelemetry_otlp::WithExportConfig as _;
    let runtime = match EXPORT_RUNTIME.get() {
        Some(rt) => rt,
        None => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("otlp-export")
                .enable_all()
                .build()
                .map_err(|e| format!("no runtime for the exporter: {e}"))?;
            EXPORT_RUNTIME.get_or_init(|| rt)
        }
    };
    let _guard = runtime.enter();
    let timeout = std::env::var("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_TIMEOUT"))
        .ok()
        .and_then(|ms| ms.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis);
    opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// Export every span still buffered (blocking, within the exporter's timeout: call it off the
/// async workers), as the platform's last stop stage does. The exporter keeps running, so a
/// process that serves again (a test) keeps tracing. Nothing to do when tracing is off.
pub fn flush() {
    if let Some(export) = TRACING.get().and_then(|t| t.export.as_ref())
        && let Err(err) = export.force_flush()
    {
        tracing::warn!(error = %err, "traces not all exported");
    }
}

/// Run `f` on `span`'s record; `None` when tracing is off or the span is disabled.
fn with_record<R>(span: &Span, f: impl FnOnce(&mut SpanRecord) -> R) -> Option<R> {
    TRACING.get()?;
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        let mut extensions = data.extensions_mut();
        extensions.get_mut::<Box<SpanRecord>>().map(|r| f(r))
    })
    .flatten()
}

/// The trace id of `span` as 32 lowercase hex digits, if it is traced.
pub fn trace_id(span: &Span) -> Option<String> {
    with_record(span, |r| {
        let mut hex = String::with_capacity(32);
        push_hex(&mut hex, &r.trace_id.to_bytes());
        hex
    })
}

/// The W3C `traceparent` value naming `span` (`00-<trace>-<span>-<flags>`), if it is traced.
pub fn traceparent(span: &Span) -> Option<String> {
    with_record(span, traceparent_of)
}

fn traceparent_of(r: &mut SpanRecord) -> String {
    let mut value = String::with_capacity(55);
    value.push_str("00-");
    push_hex(&mut value, &r.trace_id.to_bytes());
    value.push('-');
    push_hex(&mut value, &r.span_id.to_bytes());
    value.push_str(if r.sampled { "-01" } else { "-00" });
    value
}

/// Append `bytes` as lowercase hex digits (what `{:032x}` writes, without a formatting pass:
/// this runs for every request and every log entry). The digits of up to 16 bytes go into a
/// stack buffer and are appended at once: a `push` per digit (a UTF-8 encoding and a
/// capacity check each) cost more than the ids themselves.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for chunk in bytes.chunks(16) {
        let mut digits = [0u8; 32];
        for (pair, b) in digits.chunks_exact_mut(2).zip(chunk) {
            pair[0] = DIGITS[usize::from(b >> 4)];
            pair[1] = DIGITS[usize::from(b & 0x0f)];
        }
        // Only ASCII digits were written.
        out.push_str(std::str::from_utf8(&digits[..chunk.len() * 2]).unwrap_or_default());
    }
}

/// Write `span`'s trace context (`traceparent`, `tracestate`) into an outbound call's headers.
pub fn inject(span: &Span, headers: &mut dyn Injector) {
    let Some((parent, state)) = with_record(span, |r| (traceparent_of(r), r.trace_state.header())) else {
        return;
    };
    headers.set("traceparent", parent);
    if !state.is_empty() {
        headers.set("tracestate", state);
    }
}

/// Make `span` (not yet entered) a child of the caller's trace when `headers` carry a
/// well-formed `traceparent`; otherwise it starts a new trace. A malformed header is ignored.
pub fn adopt(span: &Span, headers: &dyn Extractor) {
    let Some(tracing) = TRACING.get() else { return };
    if headers.get("traceparent").is_none() {
        return;
    }
    let cx = TraceContextPropagator::new().extract(headers);
    let remote = cx.span().span_context().clone();
    if !remote.is_valid() {
        return;
    }
    with_record(span, |r| {
        r.trace_id = remote.trace_id();
        r.parent_span_id = remote.span_id();
        r.parent_is_remote = true;
        r.sampled = tracing.sampler.sampled(r.trace_id, Some(remote.is_sampled()));
        r.trace_state = remote.trace_state().clone();
    });
}

/// Headers as a `(name, value)` list, for carriers with no map of their own (AMQP, a queue
/// file): what [`inject`] writes into.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Carrier(pub Vec<(String, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// The trace context of `span` as a [`Carrier`] (empty when it is not traced).
pub fn carrier(span: &Span) -> Carrier {
    let mut carrier = Carrier::default();
    inject(span, &mut carrier);
    carrier
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::{SpanId, TraceId};

    #[test]
    fn hex_is_what_the_ids_display_as() {
        let (trace, span) = (
            TraceId::from(0x0af7_6519_16cd_43dd_8448_eb21_1c80_319c_u128),
            SpanId::from(0xb7ad_6b71_6920_3331_u64),
        );
        let mut hex = String::new();
        super::push_hex(&mut hex, &trace.to_bytes());
        assert_eq!(hex, trace.to_string());
        hex.clear();
        super::push_hex(&mut hex, &span.to_bytes());
        assert_eq!(hex, span.to_string());
        assert_eq!(hex, "b7ad6b7169203331");
        // More than one stack buffer's worth, and nothing.
        hex.clear();
        super::push_hex(&mut hex, &[0xab; 20]);
        assert_eq!(hex, "ab".repeat(20));
        hex.clear();
        super::push_hex(&mut hex, &[]);
        assert_eq!(hex, "");
    }
}
