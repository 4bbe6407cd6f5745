//! The live log tail, `GET /logs/stream` (on the logger, and on the broker for the console):
//! entries as they are stored, as server-sent events, with the filters of `GET /logs`.
//!
//! - Each entry is one event: `id:` its cursor (`<millis>-<id>`, as `next_cursor`),
//!   `data:` the entry's JSON. A client reconnecting with `Last-Event-ID` first gets what
//!   was stored after that entry (read back from the store, at most [`BACKLOG`] entries,
//!   oldest first), then the live ones; an entry is never sent twice on one connection.
//! - A comment (`: keep-alive`) goes out every [`KEEP_ALIVE`], so proxies keep the
//!   connection and the client sees it is alive.
//! - Followers never slow the writer: the logger actor broadcasts each committed batch
//!   ([`SubscribeLogs`]); a follower that falls [`TAIL_BUFFER`] entries behind is
//!   disconnected, and its client catches up from the store when it reconnects.
//! - In split mode the broker forwards the logger's stream (connect timeout, and a read
//!   timeout of three keep-alive periods); when the logger goes away the stream ends and
//!   the browser's `EventSource` reconnects on its own.
//! - At shutdown every stream ends ([`LogTail::closing`]), so open consoles do not hold the
//!   drain of requests in flight.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::Bytes;
use futures_util::StreamExt as _;
use futures_util::stream::{self, Stream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_util::sync::CancellationToken;
use troupe_actors::logger::SubscribeLogs;
pub use troupe_actors::logger::TAIL_BUFFER;
use troupe_core::ServiceError;
use troupe_core::messages::{LogCursor, LogEntry, LogFilter};
use url::Url;

/// How often a comment keeps an idle stream open.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Most entries replayed to a client that reconnects with `Last-Event-ID`.
pub const BACKLOG: u32 = troupe_core::messages::MAX_LOG_PAGE;
/// What the browser waits before reconnecting (the SSE `retry:` field), in milliseconds.
const RETRY_MS: u32 = 2_000;

/// Where the stream's entries come from.
#[derive(Clone)]
pub enum TailSource {
    /// The logger actor in this process.
    Local(Recipient<SubscribeLogs>),
    /// A logger elsewhere: its own `GET /logs/stream`, forwarded.
    Remote {
        /// `<LOGGER_URL>/logs/stream`.
        url: Url,
        /// A client with a connect and a read timeout, no total deadline.
        http: reqwest::Client,
    },
    /// No tail here (404).
    Off,
}

/// The live tail of a service: where entries come from, and the signal that ends every
/// stream at shutdown.
#[derive(Clone)]
pub struct LogTail {
    /// Where entries come from.
    pub source: TailSource,
    /// Cancelled when the process stops.
    pub closing: CancellationToken,
}

impl LogTail {
    /// Follow the logger actor `actor` in this process.
    pub fn local(actor: Recipient<SubscribeLogs>) -> Self {
        Self { source: TailSource::Local(actor), closing: CancellationToken::new() }
    }

    /// Forward the stream of the logger at `base` (LOGGER_URL).
    pub fn remote(base: &Url) -> anyhow::Result<Self> {
        let http = crate::tls::http_builder(&crate::tls::current())?
            .connect_timeout(Duration::from_secs(2))
            .read_timeout(KEEP_ALIVE * 3)
            .build()?;
        let source = TailSource::Remote { url: base.join("logs/stream")?, http };
        Ok(Self { source, closing: CancellationToken::new() })
    }

    /// No tail (tests of other routes).
    pub fn off() -> Self {
        Self { source: TailSource::Off, closing: CancellationToken::new() }
    }
}

/// Whether `entry` passes `filter` (exact fields, `since` inclusive, `until` exclusive).
pub fn matches(filter: &LogFilter, entry: &LogEntry) -> bool {
    let same = |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| Some(w) == have);
    same(&filter.name, Some(&entry.name))
        && same(&filter.service, Some(&entry.service))
        && same(&filter.request_id, entry.request_id.as_deref())
        && same(&filter.trace_id, entry.trace_id.as_deref())
        && filter.level.is_none_or(|l| l == entry.level)
        && filter.since.is_none_or(|t| entry.created_at >= t)
        && filter.until.is_none_or(|t| entry.created_at < t)
}

/// An entry's place in the log, as its `id:` (the cursor form).
pub fn cursor_of(entry: &LogEntry) -> LogCursor {
    LogCursor { created_ms: entry.created_at.timestamp_millis(), id: entry.id.clone() }
}

/// True when `entry` was stored after `cursor` (by time, then id).
pub fn after(entry: &LogEntry, cursor: &LogCursor) -> bool {
    let at = entry.created_at.timestamp_millis();
    at > cursor.created_ms || (at == cursor.created_ms && entry.id > cursor.id)
}

fn frame(entry: &LogEntry) -> Bytes {
    let json = serde_json::to_string(entry).unwrap_or_default();
    Bytes::from(format!("id: {}\ndata: {json}\n\n", cursor_of(entry).encode()))
}

/// The reply headers of a stream.
pub fn response() -> actix_web::HttpResponseBuilder {
    let mut res = HttpResponse::Ok();
    res.content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"));
    res
}

/// One local follower: the backlog first, then live entries passing the filter.
struct Follow {
    backlog: VecDeque<Arc<LogEntry>>,
    sent: HashSet<String>,
    live: broadcast::Receiver<Arc<LogEntry>>,
    filter: LogFilter,
    closing: CancellationToken,
    tick: tokio::time::Interval,
}

impl Follow {
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(entry) = self.backlog.pop_front() {
            return Some(frame(&entry));
        }
        loop {
            tokio::select! {
                () = self.closing.cancelled() => return None,
                _ = self.tick.tick() => return Some(Bytes::from_static(b": keep-alive\n\n")),
                got = self.live.recv() => match got {
                    Ok(entry) if self.sent.remove(&entry.id) => {}
                    Ok(entry) if matches(&self.filter, &entry) => return Some(frame(&entry)),
                    Ok(_) => {}
                    Err(RecvError::Lagged(missed)) => {
                        tracing::info!(missed, "a log follower fell behind; disconnecting it");
                        return None;
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// The event stream of a local follower: `backlog` (oldest first), then `live`.
pub fn follow(
    live: broadcast::Receiver<Arc<LogEntry>>,
    backlog: Vec<LogEntry>,
    filter: LogFilter,
    closing: CancellationToken,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static {
    let sent = backlog.iter().map(|e| e.id.clone()).collect();
    let mut tick = tokio::time::interval(KEEP_ALIVE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let state =
        Follow { backlog: backlog.into_iter().map(Arc::new).collect(), sent, live, filter, closing, tick };
    let retry = Bytes::from(format!("retry: {RETRY_MS}\n\n"));
    let body = stream::unfold(state, |mut s| async move { s.next().await.map(|b| (b, s)) });
    stream::once(async move { retry }).chain(body).map(Ok)
}

/// Forward the stream of a remote logger: `url` with `query` and `last_id`, until it ends or
/// `closing` is cancelled. A refusal comes back as the logger's error.
pub async fn forward(
    http: &reqwest::Client,
    url: &Url,
    query: &str,
    last_id: Option<&str>,
    within: Duration,
    closing: CancellationToken,
) -> Result<impl Stream<Item = Result<Bytes, actix_web::Error>> + 'static, ServiceError> {
    let mut url = url.clone();
    url.set_query(Some(query).filter(|q| !q.is_empty()));
    let mut request = http.get(url).header(header::ACCEPT.as_str(), "text/event-stream");
    if let Some(id) = last_id {
        request = request.header("last-event-id", id);
    }
    let res = match tokio::time::timeout(within, request.send()).await {
        Ok(Ok(res)) => res,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "logger unreachable for the log stream");
            return Err(ServiceError::unavailable("logger"));
        }
        Err(_) => return Err(ServiceError::unavailable("logger")),
    };
    if res.status() != reqwest::StatusCode::OK {
        let status = res.status();
        return Err(crate::proxy::remote_error(status, res.json().await.ok(), "logger"));
    }
    Ok(stream::unfold((res, closing), |(mut res, closing)| async move {
        let chunk = tokio::select! {
            () = closing.cancelled() => return None,
            chunk = res.chunk() => chunk,
        };
        match chunk {
            Ok(Some(bytes)) => Some((Ok(bytes), (res, closing))),
            Ok(None) | Err(_) => None,
        }
    }))
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use troupe_core::messages::LogLevel;

    use super::*;

    fn entry(name: &str, ms: i64, id: &str) -> LogEntry {
        let at = Utc.timestamp_millis_opt(ms).single().unwrap_or_default();
        LogEntry {
            id: id.into(),
            name: name.into(),
            data: "d".into(),
            level: LogLevel::Info,
            service: "broker".into(),
            request_id: Some("r-1".into()),
            trace_id: None,
            event_id: None,
            created_at: at,
            updated_at: at,
        }
    }

    #[test]
    fn the_filters_of_get_logs_select_the_streamed_entries() {
        let e = entry("event", 1_000, "a");
        let with = |f: LogFilter| matches(&f, &e);
        assert!(with(LogFilter::default()));
        assert!(with(LogFilter {
            name: Some("event".into()),
            request_id: Some("r-1".into()),
            ..Default::default()
        }));
        assert!(!with(LogFilter { name: Some("other".into()), ..Default::default() }));
        assert!(!with(LogFilter { level: Some(LogLevel::Error), ..Default::default() }));
        assert!(!with(LogFilter { until: Some(e.created_at), ..Default::default() }));
        assert!(with(LogFilter { since: Some(e.created_at), ..Default::default() }));
    }

    #[test]
    fn an_entry_is_after_a_cursor_by_time_then_id() {
        let cursor = cursor_of(&entry("x", 1_000, "b"));
        assert!(after(&entry("x", 1_001, "a"), &cursor));
        assert!(after(&entry("x", 1_000, "c"), &cursor));
        assert!(!after(&entry("x", 1_000, "b"), &cursor));
        assert!(!after(&entry("x", 999, "z"), &cursor));
    }

    #[test]
    fn each_entry_is_one_event_whose_id_is_its_cursor() {
        let text = String::from_utf8(frame(&entry("x", 1_000, "b")).to_vec()).unwrap_or_default();
        assert!(text.starts_with("id: 1000-b\ndata: {"), "{text}");
        assert!(text.ends_with("}\n\n") && text.matches('\n').count() == 3, "{text}");
    }
}
