//! The `tracing` layer that makes every span a trace span: W3C ids (a child takes its
//! parent's trace), the sampling decision (`OTEL_TRACES_SAMPLER`), the span's fields as
//! attributes; an ended span goes to the recent-trace store and, when one runs, the OTLP
//! batch exporter.
//!
//! It replaces `tracing-opentelemetry`, whose per-span cost (a `SpanBuilder` with owned
//! attributes, a locked `OtelData`, an SDK span and its `SpanData` for every span, exported
//! or not) was most of what tracing cost the log path (docs/benchmarks.md): here a span is
//! one boxed [`SpanRecord`] in the registry's extensions, moved into the store when it ends, and
//! an OpenTelemetry `SpanData` is built only for the exporter.

use std::time::SystemTime;

use opentelemetry::InstrumentationScope;
use opentelemetry::trace::{Event, SpanId, TraceId};
use opentelemetry_sdk::trace::{BatchSpanProcessor, SpanProcessor as _};
use tracing::span::{Attributes, Id, Record};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

use super::record::{EventFields, Fields, SpanRecord};
use super::store::TraceStore;

/// Which traces are kept: the OpenTelemetry SDK's samplers, by their `OTEL_TRACES_SAMPLER`
/// names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Sampler {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: traces whose id falls under the ratio (the SDK's rule, so that every
    /// service of a trace decides alike).
    Ratio(u64),
    /// `parentbased_*`: a child does what its parent did; a root follows the inner sampler.
    ParentBased(Root),
}

/// The root sampler of a parent-based one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Root {
    AlwaysOn,
    AlwaysOff,
    Ratio(u64),
}

/// A ratio as the threshold the low 63 bits of a trace id are compared with.
fn threshold(ratio: f64) -> u64 {
    // The SDK's formula: a ratio in [0, 1] of 2^63 (precision loss is harmless here).
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let bound = (ratio.clamp(0.0, 1.0) * (1_u64 << 63) as f64) as u64;
    bound
}

fn under(trace_id: TraceId, bound: u64) -> bool {
    let bytes = trace_id.to_bytes();
    let mut low = [0u8; 8];
    low.copy_from_slice(&bytes[8..]);
    (u64::from_be_bytes(low) >> 1) < bound
}

impl Sampler {
    /// The sampler `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` name (default
    /// `parentbased_always_on`); an unknown name is said on stderr and the default used.
    pub(crate) fn from_env() -> Self {
        let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Self::named(name.trim(), arg.as_deref()).unwrap_or_else(|why| {
            eprintln!("troupe: {why}; sampling every trace (parentbased_always_on)");
            Self::ParentBased(Root::AlwaysOn)
        })
    }

    fn named(name: &str, arg: Option<&str>) -> Result<Self, String> {
        let ratio = || match arg.map(str::trim) {
            None | Some("") => Ok(threshold(1.0)),
            Some(raw) => match raw.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(threshold(r)),
                _ => Err(format!("OTEL_TRACES_SAMPLER_ARG={raw} is not a ratio between 0 and 1")),
            },
        };
        Ok(match name.to_ascii_lowercase().as_str() {
            "" | "parentbased_always_on" => Self::ParentBased(Root::AlwaysOn),
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::Ratio(ratio()?),
            "parentbased_always_off" => Self::ParentBased(Root::AlwaysOff),
            "parentbased_traceidratio" => Self::ParentBased(Root::Ratio(ratio()?)),
            other => return Err(format!("OTEL_TRACES_SAMPLER={other} is not a sampler Troupe knows")),
        })
    }

    /// Whether a span of `trace_id` is kept, its parent's decision being `parent` (`None`
    /// for a root).
    pub(crate) fn sampled(self, trace_id: TraceId, parent: Option<bool>) -> bool {
        match (self, parent) {
            (Self::AlwaysOn, _) | (Self::ParentBased(Root::AlwaysOn), None) => true,
            (Self::AlwaysOff, _) | (Self::ParentBased(Root::AlwaysOff), None) => false,
            (Self::Ratio(bound), _) | (Self::ParentBased(Root::Ratio(bound)), None) => under(trace_id, bound),
            (Self::ParentBased(_), Some(parent)) => parent,
        }
    }
}

/// A fresh trace id: 48 bits of milliseconds since the epoch, then 80 random bits (the
/// layout of a version 7 UUID; AWS X-Ray's ids also lead with the time). Log entries store
/// their trace id in an index (`GET /logs?trace_id=`): time-ordered ids land at its end, where
/// random ones would each dirty a page of their own in every batch. The low 64 bits, which
/// the ratio sampler reads, stay random: not `uuid::Uuid::now_v7`, whose variant bits sit
/// in them and would skew every ratio.
fn new_trace_id() -> TraceId {
    let ms = SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let random = fastrand::u128(..) & ((1_u128 << 80) - 1);
    TraceId::from(((ms & 0xffff_ffff_ffff) << 80) | random | 1)
}

/// Where ended spans go, and how roots are sampled.
#[derive(Debug)]
pub(crate) struct Tracing {
    pub(crate) sampler: Sampler,
    pub(crate) store: &'static TraceStore,
    pub(crate) export: Option<BatchSpanProcessor>,
    pub(crate) scope: InstrumentationScope,
}

/// The layer; see the module's documentation.
pub(crate) struct SpanLayer(pub(crate) &'static Tracing);

impl<S> tracing_subscriber::Layer<S> for SpanLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let parent = match attrs.parent() {
            Some(parent) => ctx.span(parent),
            None if attrs.is_contextual() => ctx.lookup_current(),
            None => None,
        };
        let inherited = parent.and_then(|p| {
            p.extensions()
                .get::<Box<SpanRecord>>()
                .map(|r| (r.trace_id, r.span_id, r.sampled, r.trace_state.clone()))
        });
        let mut record = match inherited {
            Some((trace_id, parent_id, sampled, state)) => {
                let sampled = self.0.sampler.sampled(trace_id, Some(sampled));
                let mut record = SpanRecord::new(span.name(), trace_id, parent_id, sampled);
                record.trace_state = state;
                record
            }
            None => {
                let trace_id = new_trace_id();
                let sampled = self.0.sampler.sampled(trace_id, None);
                SpanRecord::new(span.name(), trace_id, SpanId::INVALID, sampled)
            }
        };
        attrs.record(&mut Fields { record: &mut record, fresh: true });
        // Boxed: ending the span moves a pointer into the store, not the whole record.
        span.extensions_mut().insert(Box::new(record));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(record) = span.extensions_mut().get_mut::<Box<SpanRecord>>()
        {
            values.record(&mut Fields { record, fresh: false });
        }
    }

    /// An error event marks its span failed; with an exporter, every event becomes a span
    /// event. Other events cost nothing here.
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let error = *event.metadata().level() == Level::ERROR;
        if !error && self.0.export.is_none() {
            return;
        }
        let Some(span) = ctx.event_span(event) else { return };
        let mut fields = EventFields { message: String::new(), attributes: Vec::new() };
        event.record(&mut fields);
        let mut extensions = span.extensions_mut();
        let Some(record) = extensions.get_mut::<Box<SpanRecord>>() else { return };
        if self.0.export.is_some() {
            let name: std::borrow::Cow<'static, str> = if fields.message.is_empty() {
                event.metadata().name().into()
            } else {
                fields.message.clone().into()
            };
            fields.attributes.push(opentelemetry::KeyValue::new("level", event.metadata().level().as_str()));
            record.events.push(Event::new(name, SystemTime::now(), fields.attributes, 0));
        }
        if error {
            record.fail(fields.message);
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let Some(mut record) = span.extensions_mut().remove::<Box<SpanRecord>>() else { return };
        if !record.sampled {
            return;
        }
        record.end = SystemTime::now();
        if let Some(export) = &self.0.export {
            export.on_end(record.to_span_data(&self.0.scope));
        }
        record.events = Vec::new();
        self.0.store.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_trace_ids_lead_with_the_time_and_are_distinct() {
        let ms = || SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let before = ms();
        let (a, b) = (new_trace_id(), new_trace_id());
        let after = ms();
        assert_ne!(a, b);
        for id in [a, b] {
            let leading = u128::from_be_bytes(id.to_bytes()) >> 80;
            assert!((before..=after).contains(&leading), "{id} leads with {leading}, not {before}..={after}");
        }
    }

    #[test]
    fn samplers_are_read_by_their_otel_names() {
        assert_eq!(Sampler::named("", None), Ok(Sampler::ParentBased(Root::AlwaysOn)));
        assert_eq!(Sampler::named("ALWAYS_OFF", None), Ok(Sampler::AlwaysOff));
        assert_eq!(Sampler::named("traceidratio", Some("0.25")), Ok(Sampler::Ratio(threshold(0.25))));
        assert!(Sampler::named("traceidratio", Some("2")).is_err());
        assert!(Sampler::named("jaeger_remote", None).is_err());
    }

    #[test]
    fn a_ratio_keeps_about_its_share_and_a_child_follows_its_parent() {
        let sampler = Sampler::ParentBased(Root::Ratio(threshold(0.25)));
        let kept = (1..=4_000_u64)
            .filter(|n| {
                sampler.sampled(TraceId::from(u128::from(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))), None)
            })
            .count();
        assert!((800..1_200).contains(&kept), "{kept} of 4000 kept at 0.25");
        assert!(sampler.sampled(TraceId::from(u128::MAX), Some(true)));
        assert!(!Sampler::ParentBased(Root::AlwaysOn).sampled(TraceId::from(1), Some(false)));
        assert!(!Sampler::AlwaysOff.sampled(TraceId::from(1), Some(true)));
    }
}
