//! `troupe logs [--follow] [--request-id ID] [--service S] [--name N] [--level L] [--url BROKER]`:
//! the log in the terminal, from the broker's `GET /logs` and live tail `GET /logs/stream`.
//!
//! Without `--follow` it prints the latest entries (oldest first) and exits. With it, it
//! prints the last few, then every new one as it is stored; when the stream ends (a broker or
//! logger restart) it reconnects with backoff and resumes after the last entry printed, so
//! nothing is missed or printed twice. Every request has a connect timeout; the stream a read
//! timeout of three keep-alive periods, after which it reconnects.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Args;
use eventsource_stream::Eventsource as _;
use futures_util::StreamExt as _;
use serde::Deserialize;
use troupe_core::messages::LogEntry;
use url::Url;

use crate::tail::KEEP_ALIVE;

/// Entries printed before following.
const LAST: u32 = 10;
/// Longest wait between reconnects.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// Options of `troupe logs`.
#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// Keep printing new entries as they are stored (Ctrl-C to stop).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// Only the entries of this request id.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Only the entries written by this service (broker, auth, listener, ...).
    #[arg(long)]
    pub service: Option<String>,
    /// Only the entries with this name.
    #[arg(long)]
    pub name: Option<String>,
    /// Only the entries of this level (DEBUG, INFO, WARNING, ERROR).
    #[arg(long)]
    pub level: Option<String>,
    /// The broker (or a logger) to read from.
    #[arg(long, env = "BROKER_URL", default_value = "http://localhost:8080")]
    pub url: Url,
    /// PEM certificate(s) of the authority that signed an `https://` broker's certificate,
    /// trusted besides the system's roots.
    #[arg(long, env = "TLS_CA_FILE")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Print each entry as one JSON line instead of text.
    #[arg(long)]
    pub json: bool,
    /// A bearer token (an access token from a login) for a broker whose reads need one
    /// (`READ_AUTH`: every `troupe serve broker` by default).
    #[arg(long, env = "TROUPE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl LogsArgs {
    /// A GET of `url` on `http`, with the bearer token when one is given.
    fn get(&self, http: &reqwest::Client, url: Url) -> reqwest::RequestBuilder {
        let req = http.get(url);
        match &self.token {
            Some(token) => req.bearer_auth(token),
            None => req,
        }
    }

    /// `path` on the broker with the filters (and `extra`) as its query.
    fn url(&self, path: &str, extra: &[(&str, String)]) -> anyhow::Result<Url> {
        let mut url = self.url.join(path).context("--url")?;
        {
            let mut q = url.query_pairs_mut();
            for (key, value) in [
                ("request_id", &self.request_id),
                ("service", &self.service),
                ("name", &self.name),
                ("level", &self.level),
            ] {
                if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
                    q.append_pair(key, v);
                }
            }
            for (key, value) in extra {
                q.append_pair(key, value);
            }
        }
        Ok(url)
    }

    fn print(&self, out: &mut impl Write, entry: &LogEntry) -> std::io::Result<()> {
        if self.json {
            return writeln!(out, "{}", serde_json::to_string(entry).unwrap_or_default());
        }
        let at = entry.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let request = entry.request_id.as_deref().map(|r| format!(" [{r}]")).unwrap_or_default();
        writeln!(
            out,
            "{at} {:<7} {:<8} {}: {}{request}",
            entry.level.as_str(),
            entry.service,
            entry.name,
            entry.data
        )
    }
}

#[derive(Deserialize)]
struct Page {
    entries: Vec<LogEntry>,
}

#[derive(Deserialize)]
struct Reply<T> {
    message: String,
    data: Option<T>,
}

/// Print the log to `out` as `args` asks; with `--follow`, until the process is stopped.
pub async fn run(args: &LogsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let limit = if args.follow { LAST } else { 50 };
    let http =
        crate::tls::http_builder(&crate::tls::current())?.connect_timeout(Duration::from_secs(5)).build()?;
    let page =
        args.get(&http, args.url("logs", &[("limit", limit.to_string())])?).timeout(Duration::from_secs(10));
    let res = page.send().await.with_context(|| format!("cannot reach {}", args.url))?;
    let status = res.status();
    let reply: Reply<Page> = res.json().await.with_context(|| format!("{} answered {status}", args.url))?;
    let Some(page) = reply.data.filter(|_| status.is_success()) else {
        bail!("{} answered {status}: {}", args.url, reply.message);
    };
    let mut last = page.entries.first().map(|e| crate::tail::cursor_of(e).encode());
    for entry in page.entries.iter().rev() {
        args.print(out, entry)?;
    }
    out.flush()?;
    if !args.follow {
        return Ok(());
    }
    let stream = crate::tls::http_builder(&crate::tls::current())?
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(KEEP_ALIVE * 3)
        .build()?;
    let mut wait = Duration::from_millis(500);
    loop {
        match follow_once(&stream, args, &mut last, out).await {
            Ok(()) => wait = Duration::from_millis(500),
            Err(e) => eprintln!("troupe logs: {e:#}; reconnecting in {wait:?}"),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RECONNECT_MAX);
    }
}

/// One connection to the stream: print entries until it ends; `last` follows the printed.
async fn follow_once(
    http: &reqwest::Client,
    args: &LogsArgs,
    last: &mut Option<String>,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let after: Vec<(&str, String)> = last.iter().map(|l| ("after", l.clone())).collect();
    let res =
        args.get(http, args.url("logs/stream", &after)?).send().await.context("cannot reach the stream")?;
    if !res.status().is_success() {
        let status = res.status();
        let message = res.json::<Reply<serde_json::Value>>().await.map(|r| r.message).unwrap_or_default();
        bail!("the stream answered {status}: {message}");
    }
    // eventsource-stream parses the frames (split across chunks, CRLF, multi-line data).
    let mut events = res.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.context("the stream broke off")?;
        let Ok(entry) = serde_json::from_str::<LogEntry>(&event.data) else { continue };
        args.print(out, &entry)?;
        out.flush()?;
        *last = Some(crate::tail::cursor_of(&entry).encode());
    }
    Ok(())
}
