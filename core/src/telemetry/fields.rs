//! The text log lines' field formatter: `tracing-subscriber`'s default one ([`DefaultFields`]),
//! byte for byte, with a fast path for the usual field, plain text. The default writes every
//! text field through `Debug`, which looks at each character for one to escape: on the log
//! path that was ~14k instructions a request, most of them formatting span fields that are
//! printable ASCII (docs/benchmarks.md). Those are written at once here; anything else (a
//! quote, a backslash, a control or non-ASCII character, a number, an error, colours) goes
//! to the default visitor, so the lines stay the same.
//!
//! [`DefaultFields`]: tracing_subscriber::fmt::format::DefaultFields

use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

/// The field formatter; see the module's documentation.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct PlainFields;

impl<'a> MakeVisitor<Writer<'a>> for PlainFields {
    type Visitor = PlainVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> Self::Visitor {
        PlainVisitor { writer, is_empty: true, result: Ok(()) }
    }
}

/// Writes one span's or event's fields as the default visitor does.
pub(crate) struct PlainVisitor<'a> {
    writer: Writer<'a>,
    /// Nothing written yet (no space before the next field).
    is_empty: bool,
    result: fmt::Result,
}

/// Text that `Debug` writes as it is, between quotes: printable ASCII but `"` and `\`.
fn plain(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl PlainVisitor<'_> {
    /// Let the default visitor write `field`, where this one stands.
    fn fallback(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut default = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut default);
        self.result = default.finish();
        // It skips `log.` fields (a `log` record's metadata, which the line shows already).
        if !field.name().starts_with("log.") {
            self.is_empty = false;
        }
    }
}

impl Visit for PlainVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let name = field.name();
        let special = name.starts_with("r#") || name.starts_with("log.");
        if self.result.is_err() || special || self.writer.has_ansi_escapes() || !plain(value) {
            return self.fallback(field, |v| v.record_str(field, value));
        }
        if !std::mem::take(&mut self.is_empty) {
            self.result = self.writer.write_char(' ');
        }
        // The default writes a message bare, any other field as `name="value"`.
        self.result = self.result.and_then(|()| match name {
            "message" => self.writer.write_str(value),
            name => write!(self.writer, "{name}=\"{value}\""),
        });
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fallback(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.fallback(field, |v| v.record_debug(field, value));
    }
}

impl VisitOutput<fmt::Result> for PlainVisitor<'_> {
    fn finish(self) -> fmt::Result {
        self.result
    }
}

impl VisitFmt for PlainVisitor<'_> {
    fn writer(&mut self) -> &mut dyn fmt::Write {
        &mut self.writer
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex, PoisonError};

    use tracing_subscriber::fmt::MakeWriter;
    use tracing_subscriber::fmt::format::DefaultFields;
    use tracing_subscriber::layer::SubscriberExt as _;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Lines {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Lines {
        type Writer = Self;

        fn make_writer(&'a self) -> Self {
            self.clone()
        }
    }

    /// What the text log lines say of a few spans and events, with `fields` formatting them.
    fn lines<F>(fields: F, ansi: bool) -> String
    where
        F: for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Lines::default();
        let layer = tracing_subscriber::fmt::layer()
            .fmt_fields(fields)
            .with_writer(out.clone())
            .with_ansi(ansi)
            .without_time();
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), || {
            let span = tracing::info_span!(
                "HTTP request",
                method = "POST",
                route = "/handle",
                request_id = "0192f3a4-5b6c-7d8e-9f00-112233445566",
                status = tracing::field::Empty
            );
            let _in = span.enter();
            let inner = tracing::info_span!(
                "WriteLog",
                name = "say \"hi\"",
                path = "C:\\x",
                unicode = "héllo",
                tab = "a\tb",
                r#type = "raw",
                bytes = 12_u64,
                ok = true
            );
            let _inner = inner.enter();
            span.record("status", 202_u16);
            tracing::info!(name = "plain", count = -3_i64, "stored {} entries", 2);
            tracing::warn!(message = "bare message", empty = "");
            let err = std::io::Error::other("disk full");
            tracing::error!(error = &err as &(dyn std::error::Error + 'static), "failed");
        });
        let bytes = out.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
        String::from_utf8(bytes).expect("UTF-8 lines")
    }

    #[test]
    fn lines_are_byte_for_byte_the_default_ones() {
        for ansi in [false, true] {
            let (default, plain) = (lines(DefaultFields::new(), ansi), lines(PlainFields, ansi));
            assert_eq!(plain, default, "ansi {ansi}");
            assert_eq!(default.lines().count(), 3, "{default}");
            let id = r#"request_id="0192f3a4-5b6c-7d8e-9f00-112233445566""#;
            assert!(ansi || default.contains(id), "{default}");
        }
    }
}
