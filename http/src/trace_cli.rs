//! `troupe trace ID [--json] [--url BROKER]`: one request's trace in the terminal, from the
//! broker's `GET /traces/{id}` (which merges every service's spans).
//!
//! ID is a trace id (32 hex digits, as in a reply's `traceresponse` header) or a request id
//! (`x-request-id`), looked up with `GET /traces?request_id=`. The trace prints as a waterfall:
//! one line a span, as a tree by parent, with its offset from the trace's start and its
//! duration in milliseconds, a bar proportional to both, its service, and its error when it
//! failed. `--json` prints the trace as the broker serves it (`trace_id`, `spans`, `missing`).
//! An unknown id fails with "no trace <id>"; every request has a connect and a total timeout.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use reqwest::StatusCode;
use serde::Deserialize;
use url::Url;

/// Cells of the waterfall's bar.
const BAR: usize = 40;
/// Traces looked at for one request id.
const MATCHES: u32 = 20;

/// Options of `troupe trace`.
#[derive(Debug, Clone, Args)]
pub struct TraceArgs {
    /// A trace id (32 hex digits, from a reply's `traceresponse` header) or a request id.
    pub id: String,
    /// Print the trace as JSON (its spans, as the broker serves them) instead of a waterfall.
    #[arg(long)]
    pub json: bool,
    /// The broker (or any one service) to ask.
    #[arg(long, env = "BROKER_URL", default_value = "http://localhost:8080")]
    pub url: Url,
    /// PEM certificate(s) of the authority that signed an `https://` broker's certificate,
    /// trusted besides the system's roots.
    #[arg(long, env = "TLS_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

/// One span, as `GET /traces/{id}` serves it.
#[derive(Debug, Clone, Deserialize)]
pub struct Span {
    /// Its own id (16 hex digits).
    pub span_id: String,
    /// The span it ran inside (`None`: a root).
    pub parent_span_id: Option<String>,
    /// The service that recorded it (`broker`, `auth`, ...).
    pub service: String,
    /// What it did (`POST /handle`, `Authenticate`, ...).
    pub name: String,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    #[serde(default)]
    pub kind: String,
    /// When it started, in milliseconds since the epoch.
    pub start_unix_ms: f64,
    /// How long it took, in milliseconds.
    pub duration_ms: f64,
    /// `ok` or `error`.
    #[serde(default)]
    pub status: String,
    /// Why it failed.
    pub error: Option<String>,
    /// Its attributes (`http.route`, `request_id`, ...), text by the contract.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// One trace, as `GET /traces/{id}` serves it.
#[derive(Debug, Clone, Deserialize)]
pub struct Trace {
    /// Its id (32 hex digits).
    pub trace_id: String,
    /// Every span known, sorted by start.
    pub spans: Vec<Span>,
    /// The services that did not answer (their spans are missing).
    #[serde(default)]
    pub missing: Vec<String>,
}

#[derive(Deserialize)]
struct Summary {
    trace_id: String,
}

#[derive(Deserialize)]
struct Reply<T> {
    #[serde(default)]
    message: String,
    data: Option<T>,
}

/// Whether `id` is a W3C trace id: 32 lowercase hex digits, not all zero.
pub fn is_trace_id(id: &str) -> bool {
    id.len() == 32
        && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        && id.bytes().any(|b| b != b'0')
}

/// The trace id `id` names: a trace id in any case, or a whole `traceresponse` / `traceparent`
/// value (`00-<trace id>-<span id>-01`); `None` for anything else (a request id).
fn trace_id_in(id: &str) -> Option<String> {
    let id = id.to_ascii_lowercase();
    let parts: Vec<&str> = id.split('-').collect();
    match parts.as_slice() {
        [_, trace, span, _] if span.len() == 16 && is_trace_id(trace) => Some((*trace).to_owned()),
        _ => is_trace_id(&id).then_some(id),
    }
}

/// Print the trace `args.id` names to `out`.
pub async fn run(args: &TraceArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let http = crate::tls::http_builder(&crate::tls::current())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()?;
    let id = args.id.trim();
    let (trace_id, others) = if let Some(trace_id) = trace_id_in(id) {
        (trace_id, Vec::new())
    } else {
        let mut url = args.url.join("traces").context("--url")?;
        url.query_pairs_mut().append_pair("request_id", id).append_pair("limit", &MATCHES.to_string());
        let found: Vec<Summary> = get(&http, &url, id).await?;
        let mut ids = found.into_iter().map(|s| s.trace_id);
        let Some(newest) = ids.next() else { bail!("no trace {id}") };
        (newest, ids.collect())
    };
    let url = args.url.join(&format!("traces/{trace_id}")).context("--url")?;
    let trace: serde_json::Value = get(&http, &url, id).await?;
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&trace)?)?;
    } else {
        let trace: Trace =
            serde_json::from_value(trace).with_context(|| format!("{url} answered no trace"))?;
        write!(out, "{}", render(&trace))?;
        if !others.is_empty() {
            writeln!(out, "\n{} older traces carry request id {id}: {}", others.len(), others.join(" "))?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `data` of the broker's reply to `url`; a 404 is "no trace `id`".
async fn get<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: &Url,
    id: &str,
) -> anyhow::Result<T> {
    let res = http.get(url.clone()).send().await.with_context(|| format!("cannot reach {url}"))?;
    let status = res.status();
    if status == StatusCode::NOT_FOUND {
        bail!("no trace {id}");
    }
    let reply: Reply<T> = res.json().await.with_context(|| format!("{url} answered {status}"))?;
    match reply.data {
        Some(data) if status.is_success() => Ok(data),
        _ => bail!("{url} answered {status}: {}", reply.message),
    }
}

/// One line of the waterfall.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    /// The span drawn.
    pub span: &'a Span,
    /// How deep in the tree (0: a root).
    pub depth: usize,
    /// The tree's branches before its name (`├─ `, `│  └─ `, ...).
    pub branch: String,
    /// Milliseconds from the trace's start to the span's.
    pub offset_ms: f64,
    /// The span's share of the trace: where its bar starts and how long it is, in 0..=1.
    pub left: f64,
    /// See `left`.
    pub width: f64,
}

/// The waterfall's lines: spans depth-first by parent, siblings by start. A span whose parent
/// is not in the trace (not recorded, or from a service that did not answer) is a root.
pub fn layout(spans: &[Span]) -> (f64, Vec<Row<'_>>) {
    let mut sorted: Vec<&Span> = spans.iter().collect();
    sorted.sort_by(|a, b| a.start_unix_ms.total_cmp(&b.start_unix_ms));
    let Some(first) = sorted.first() else { return (0.0, Vec::new()) };
    let start = first.start_unix_ms;
    let end = sorted.iter().map(|s| s.start_unix_ms + s.duration_ms.max(0.0)).fold(start, f64::max);
    let total = end - start;
    let ids: HashSet<&str> = sorted.iter().map(|s| s.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Span>> = HashMap::new();
    let mut roots = Vec::new();
    for s in &sorted {
        match s.parent_span_id.as_deref() {
            Some(p) if ids.contains(p) && p != s.span_id => children.entry(p).or_default().push(s),
            _ => roots.push(*s),
        }
    }
    struct Walk<'a, 'b> {
        children: &'b HashMap<&'a str, Vec<&'a Span>>,
        seen: HashSet<&'a str>,
        rows: Vec<Row<'a>>,
        start: f64,
        total: f64,
    }
    impl<'a> Walk<'a, '_> {
        fn visit(&mut self, span: &'a Span, depth: usize, prefix: &str, last: bool) {
            if !self.seen.insert(&span.span_id) {
                return; // a cycle in bad data: each span once
            }
            let (branch, below) = match depth {
                0 => (String::new(), String::new()),
                _ if last => (format!("{prefix}└─ "), format!("{prefix}   ")),
                _ => (format!("{prefix}├─ "), format!("{prefix}│  ")),
            };
            let offset_ms = span.start_unix_ms - self.start;
            let share = |ms: f64| if self.total > 0.0 { (ms / self.total).clamp(0.0, 1.0) } else { 0.0 };
            let (left, width) = (share(offset_ms), share(span.duration_ms.max(0.0)));
            self.rows.push(Row { span, depth, branch, offset_ms, left, width });
            let kids = self.children.get(span.span_id.as_str()).cloned().unwrap_or_default();
            let count = kids.len();
            for (i, kid) in kids.into_iter().enumerate() {
                self.visit(kid, depth + 1, &below, i + 1 == count);
            }
        }
    }
    let mut walk = Walk { children: &children, seen: HashSet::new(), rows: Vec::new(), start, total };
    for root in roots.into_iter().chain(sorted.iter().copied()) {
        walk.visit(root, 0, "", true);
    }
    (total, walk.rows)
}

/// The bar of a span taking `width` of the trace from `left`: at least one cell.
fn bar(left: f64, width: f64) -> String {
    // Cells are few and shares are in 0..=1: the casts cannot truncate anything that matters.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_precision_loss)]
    let (from, to) = {
        let from = ((left * BAR as f64).floor() as usize).min(BAR - 1);
        let to = (((left + width) * BAR as f64).ceil() as usize).clamp(from + 1, BAR);
        (from, to)
    };
    (0..BAR).map(|i| if (from..to).contains(&i) { '█' } else { '·' }).collect()
}

/// The waterfall of `trace` as text.
pub fn render(trace: &Trace) -> String {
    let (total, rows) = layout(&trace.spans);
    let mut services: Vec<&str> = Vec::new();
    for r in &rows {
        if !services.contains(&r.span.service.as_str()) {
            services.push(&r.span.service);
        }
    }
    let mut text = heading(trace, &rows, total, &services);
    let service_width = services.iter().map(|s| s.chars().count()).max().unwrap_or(0).max("service".len());
    let _ = writeln!(
        text,
        "\n{:>9} {:>9}  {:<width$}  {:<service_width$}  span",
        "start ms",
        "took ms",
        "",
        "service",
        width = BAR + 2
    );
    for r in &rows {
        let s = r.span;
        let _ = write!(
            text,
            "{:>9.2} {:>9.2}  |{}|  {:<service_width$}  {}{}",
            r.offset_ms,
            s.duration_ms,
            bar(r.left, r.width),
            s.service,
            r.branch,
            s.name
        );
        if s.status == "error" {
            let _ = write!(text, "  ERROR: {}", s.error.as_deref().unwrap_or("failed"));
        }
        text.push('\n');
    }
    if !trace.missing.is_empty() {
        let _ = writeln!(text, "\nno answer from {}: their spans are missing", trace.missing.join(", "));
    }
    text
}

/// The lines above the waterfall: id, root span, duration, span count, services, errors, and
/// the request id.
fn heading(trace: &Trace, rows: &[Row<'_>], total: f64, services: &[&str]) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    let root = rows.first().map(|r| r.span);
    let mut text = format!(
        "trace {} · {} · {total:.2} ms · {} span{} · {}",
        trace.trace_id,
        root.map_or("(no spans)", |s| s.name.as_str()),
        rows.len(),
        plural(rows.len()),
        services.join(" → ")
    );
    let errors = rows.iter().filter(|r| r.span.status == "error").count();
    if errors > 0 {
        let _ = write!(text, " · {errors} error{}", plural(errors));
    }
    text.push('\n');
    if let Some(request) = root.and_then(|s| s.attributes.get("request_id")).and_then(|r| r.as_str()) {
        let _ = writeln!(text, "request {request}");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A login through the broker: broker → auth (with its store call failing once), and an
    /// audit span whose parent was recorded by a service that did not answer.
    fn login() -> Trace {
        let span = |id: &str, parent: Option<&str>, service: &str, name: &str, start: f64, took: f64| {
            serde_json::json!({
                "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": id, "parent_span_id": parent,
                "service": service, "name": name, "kind": "server", "start_unix_ms": 1_700_000_000_000.0 + start,
                "duration_ms": took, "status": "ok", "error": null, "attributes": {"request_id": "req-1"}
            })
        };
        let mut failed =
            span("00000000000000c2", Some("00000000000000b1"), "auth", "sqlite select", 3.0, 1.0);
        failed["status"] = "error".into();
        failed["error"] = "database is locked".into();
        let trace = serde_json::json!({
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            // Out of order, as merged answers may be.
            "spans": [
                span("00000000000000b1", Some("00000000000000a2"), "auth", "POST /authenticate", 2.0, 6.0),
                span("00000000000000a1", None, "broker", "POST /handle", 0.0, 10.0),
                span("00000000000000a2", Some("00000000000000a1"), "broker", "action auth", 1.0, 8.0),
                failed,
                span("00000000000000c3", Some("00000000000000b1"), "auth", "sqlite select", 4.5, 2.0),
                span("00000000000000d1", Some("ffffffffffffffff"), "logger", "POST /log", 9.0, 1.0),
            ],
            "missing": ["listener"],
        });
        serde_json::from_value(trace).expect("a trace")
    }

    #[test]
    fn the_waterfall_is_a_tree_by_parent_with_offsets_and_proportional_bars() {
        let trace = login();
        let (total, rows) = layout(&trace.spans);
        assert!((total - 10.0).abs() < 1e-6, "{total}");
        let order: Vec<_> = rows.iter().map(|r| (r.span.span_id.as_str(), r.depth)).collect();
        assert_eq!(
            order,
            [
                ("00000000000000a1", 0),
                ("00000000000000a2", 1),
                ("00000000000000b1", 2),
                ("00000000000000c2", 3),
                ("00000000000000c3", 3),
                ("00000000000000d1", 0),
            ]
        );
        let auth = &rows[2];
        assert!(
            (auth.offset_ms - 2.0).abs() < 1e-6
                && (auth.left - 0.2).abs() < 1e-6
                && (auth.width - 0.6).abs() < 1e-6
        );

        // 2 ms in, 6 ms long, of 10: cells 8..32 of 40; an error says why; an orphan is a root.
        let expected = "\
trace 4bf92f3577b34da6a3ce929d0e0e4736 · POST /handle · 10.00 ms · 6 spans · broker → auth → logger · 1 error
request req-1

 start ms   took ms                                              service  span
     0.00     10.00  |████████████████████████████████████████|  broker   POST /handle
     1.00      8.00  |····████████████████████████████████····|  broker   └─ action auth
     2.00      6.00  |········████████████████████████········|  auth        └─ POST /authenticate
     3.00      1.00  |············████························|  auth           ├─ sqlite select  ERROR: database is locked
     4.50      2.00  |··················████████··············|  auth           └─ sqlite select
     9.00      1.00  |····································████|  logger   POST /log

no answer from listener: their spans are missing
";
        assert_eq!(render(&trace), expected);
    }

    #[test]
    fn a_short_span_still_gets_a_cell_and_bad_data_does_not_loop() {
        assert_eq!(bar(1.0, 0.0).chars().filter(|c| *c == '█').count(), 1);
        assert_eq!(bar(0.0, 0.0001).chars().position(|c| c == '█'), Some(0));
        let mut trace = login();
        trace.spans[1].parent_span_id = Some("00000000000000b1".into()); // a cycle a1 → a2 → b1 → a1
        let (_, rows) = layout(&trace.spans);
        assert_eq!(rows.len(), trace.spans.len(), "each span once");
        assert!(
            render(&Trace { trace_id: "x".into(), spans: vec![], missing: vec![] }).contains("(no spans)")
        );
    }

    #[test]
    fn trace_ids_are_told_from_request_ids() {
        let id = Some("4bf92f3577b34da6a3ce929d0e0e4736".to_owned());
        assert_eq!(trace_id_in("4BF92F3577B34DA6A3CE929D0E0E4736"), id);
        assert_eq!(trace_id_in("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), id);
        assert_eq!(trace_id_in("5b1e0c2a-9f3d-4c55-8a7e-0d4c3b2a1f00"), None, "a UUID request id");
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        for id in [
            "00000000000000000000000000000000",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "req-1",
            "5b1e0c2a-9f3d-4c55-8a7e-0d4c3b2a1f00",
        ] {
            assert!(!is_trace_id(id), "{id}");
        }
    }
}
