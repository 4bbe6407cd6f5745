//! The built-in mail catcher: a real SMTP server that keeps every mail it receives in the
//! data directory, and an actor that lists, reads and deletes them.
//!
//! - [`CatcherStore`] (an actor on its own arbiter) owns the folder: each mail is
//!   `<id>.eml` (as received) plus `<id>.json` (envelope, subject, time, size). Ids sort by
//!   arrival, so listing newest first is a reverse sort; mail survives restarts.
//! - [`start_smtp`] runs the SMTP side with `mailin-embedded` (blocking, one thread per
//!   connection) on its own thread. A mail is answered `250` only once the store has written
//!   it, `451` if it could not. Sessions are bounded in number and idle time ([`Bounds`]).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, ArbiterHandle, Context, Handler, Supervised, Supervisor};
use chrono::{SecondsFormat, Utc};
use mailin_embedded::{Action, Handler as SmtpHandler, Response, Server, SslConfig, response};
use serde::{Deserialize, Serialize};
use troupe_core::ServiceError;

pub use self::bounds::Bounds;

mod bounds;
use troupe_core::messages::{
    CatchMail, CaughtMail, CaughtSummary, DeleteCaught, GetCaught, GetCaughtRaw, ListCaught,
};

/// Largest mail the catcher accepts (bytes).
pub const MAX_CAUGHT_SIZE: usize = 16 * 1024 * 1024;

/// The envelope data kept beside each raw mail.
#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    from: String,
    to: Vec<String>,
    subject: String,
    received_at: String,
    size: usize,
}

/// The actor owning the catcher's folder.
pub struct CatcherStore {
    dir: PathBuf,
}

impl CatcherStore {
    /// Start the store on `dir` (created when missing) on its own arbiter.
    pub fn start(dir: PathBuf) -> Result<Addr<Self>, String> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("catcher folder {} is not usable: {e}", dir.display()))?;
        Ok(Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self { dir }))
    }

    fn path(&self, id: &str, ext: &str) -> Result<PathBuf, ServiceError> {
        let valid =
            !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        let path = self.dir.join(format!("{id}.{ext}"));
        if valid && path.exists() { Ok(path) } else { Err(not_found()) }
    }

    fn meta(&self, id: &str) -> Result<Meta, ServiceError> {
        let raw = std::fs::read(self.path(id, "json")?).map_err(io_failed)?;
        serde_json::from_slice(&raw).map_err(|e| {
            tracing::error!(id, error = %e, "unreadable catcher metadata");
            ServiceError::Internal
        })
    }

    fn ids(&self) -> Result<Vec<String>, ServiceError> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.dir)
            .map_err(io_failed)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_suffix(".json")).map(str::to_owned))
            .collect();
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }
}

fn not_found() -> ServiceError {
    ServiceError::NotFound("no such message".into())
}

fn io_failed(e: std::io::Error) -> ServiceError {
    tracing::error!(error = %e, "catcher store failed");
    ServiceError::Internal
}

impl Actor for CatcherStore {
    type Context = Context<Self>;
}

impl Supervised for CatcherStore {}

impl Handler<CatchMail> for CatcherStore {
    type Result = Result<String, ServiceError>;

    fn handle(&mut self, msg: CatchMail, _: &mut Context<Self>) -> Self::Result {
        let now = Utc::now();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("{:016}-{}", now.timestamp_micros(), &suffix[..8]);
        let subject = mail_parser::MessageParser::default()
            .parse_headers(&msg.raw)
            .and_then(|m| m.subject().map(str::to_owned))
            .unwrap_or_default();
        let meta = Meta {
            from: msg.from,
            to: msg.to,
            subject,
            received_at: now.to_rfc3339_opts(SecondsFormat::Millis, true),
            size: msg.raw.len(),
        };
        let json = serde_json::to_vec(&meta).map_err(|_| ServiceError::Internal)?;
        // The raw mail first: a listed id (its .json) always has its message.
        std::fs::write(self.dir.join(format!("{id}.eml")), &msg.raw).map_err(io_failed)?;
        std::fs::write(self.dir.join(format!("{id}.json")), json).map_err(io_failed)?;
        tracing::info!(id, "mail caught");
        Ok(id)
    }
}

impl Handler<ListCaught> for CatcherStore {
    type Result = Result<Vec<CaughtSummary>, ServiceError>;

    fn handle(&mut self, _: ListCaught, _: &mut Context<Self>) -> Self::Result {
        Ok(self
            .ids()?
            .into_iter()
            .filter_map(|id| {
                let m = self.meta(&id).ok()?;
                Some(CaughtSummary {
                    id,
                    from: m.from,
                    to: m.to,
                    subject: m.subject,
                    received_at: m.received_at,
                    size: m.size,
                })
            })
            .collect())
    }
}

impl Handler<GetCaught> for CatcherStore {
    type Result = Result<CaughtMail, ServiceError>;

    fn handle(&mut self, msg: GetCaught, _: &mut Context<Self>) -> Self::Result {
        let meta = self.meta(&msg.id)?;
        let raw = std::fs::read(self.path(&msg.id, "eml")?).map_err(io_failed)?;
        let parsed = mail_parser::MessageParser::default().parse(&raw);
        let (headers, text, html) = match &parsed {
            Some(m) => {
                let part = |html: bool| {
                    m.parts
                        .iter()
                        .find(|p| p.is_text() && p.is_text_html() == html)
                        .and_then(|p| p.text_contents())
                        .map(str::to_owned)
                };
                let headers = m.headers_raw().map(|(name, value)| (name.to_owned(), unfold(value))).collect();
                (headers, part(false), part(true))
            }
            None => (Vec::new(), None, None),
        };
        Ok(CaughtMail {
            id: msg.id,
            from: meta.from,
            to: meta.to,
            subject: meta.subject,
            received_at: meta.received_at,
            headers,
            text,
            html,
        })
    }
}

/// A header value as one line: folding removed, decoded where it is an encoded word.
fn unfold(value: &str) -> String {
    let line = value.replace("\r\n", "").replace('\n', "");
    let line = line.trim();
    mail_parser::MessageParser::default()
        .parse_headers(format!("X: {line}\r\n\r\n").as_bytes())
        .and_then(|m| m.header("X").and_then(|h| h.as_text().map(str::to_owned)))
        .unwrap_or_else(|| line.to_owned())
}

impl Handler<GetCaughtRaw> for CatcherStore {
    type Result = Result<Vec<u8>, ServiceError>;

    fn handle(&mut self, msg: GetCaughtRaw, _: &mut Context<Self>) -> Self::Result {
        std::fs::read(self.path(&msg.id, "eml")?).map_err(io_failed)
    }
}

impl Handler<DeleteCaught> for CatcherStore {
    type Result = Result<(), ServiceError>;

    fn handle(&mut self, msg: DeleteCaught, _: &mut Context<Self>) -> Self::Result {
        let ids = match msg.id {
            Some(id) => vec![self.path(&id, "json").map(|_| id)?],
            None => self.ids()?,
        };
        for id in ids {
            for ext in ["json", "eml"] {
                match std::fs::remove_file(self.dir.join(format!("{id}.{ext}"))) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(io_failed(e)),
                }
            }
        }
        Ok(())
    }
}

/// One SMTP session's state; hands each finished mail to the store.
#[derive(Clone)]
struct Session {
    store: Addr<CatcherStore>,
    arbiter: ArbiterHandle,
    from: String,
    to: Vec<String>,
    data: Vec<u8>,
    too_big: bool,
}

impl SmtpHandler for Session {
    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        self.from = from.to_owned();
        self.to = to.to_vec();
        self.data.clear();
        self.too_big = false;
        response::START_DATA
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if self.data.len() + buf.len() > MAX_CAUGHT_SIZE {
            self.too_big = true;
        } else {
            self.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if self.too_big {
            return closing(response::NO_STORAGE);
        }
        let msg =
            CatchMail { from: self.from.clone(), to: self.to.clone(), raw: std::mem::take(&mut self.data) };
        // This is a plain thread owned by the SMTP server, so blocking on the reply is fine.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let store = self.store.clone();
        self.arbiter.spawn(async move {
            let _ = tx.send(matches!(store.send(msg).await, Ok(Ok(_))));
        });
        if rx.blocking_recv().unwrap_or(false) { response::OK } else { closing(response::INTERNAL_ERROR) }
    }
}

/// `reply`, then close the session. After an error at the end of DATA, mailin stays in its
/// DATA state and would read the client's next commands (RSET, QUIT) as message text,
/// leaving the client waiting for a reply that never comes; closing ends the session cleanly.
pub fn closing(mut reply: Response) -> Response {
    reply.action = Action::Close;
    reply
}

/// SMTP sessions the catcher serves at once (one thread each). A session past this waits
/// for a free thread, and a pooled client session holds its thread while idle, so a mailer
/// sending here keeps its pool well below this (`troupe up` caps `MAIL_POOL_SIZE` at half).
pub const SESSIONS: u32 = 64;

/// How long an SMTP client may stay silent before the catcher closes its session.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Serve SMTP on `listener` (bind it first, so the port is known), handing mail to `store`.
/// `tls` is `(cert, key)` PEM paths to offer STARTTLS with (tests use a self-signed pair).
/// At most [`SESSIONS`] at once, each closed after [`IDLE_TIMEOUT`] of silence.
pub fn start_smtp(
    listener: TcpListener,
    store: Addr<CatcherStore>,
    tls: Option<(&Path, &Path)>,
) -> Result<(), String> {
    start_smtp_within(listener, store, tls, Bounds { sessions: SESSIONS, idle: IDLE_TIMEOUT })
}

/// [`start_smtp`] within other [`Bounds`] (tests).
pub fn start_smtp_within(
    listener: TcpListener,
    store: Addr<CatcherStore>,
    tls: Option<(&Path, &Path)>,
    bounds: Bounds,
) -> Result<(), String> {
    // mailin listens on loopback behind the bounded relay, one thread per session it may get.
    let inner = TcpListener::bind(("127.0.0.1", 0)).map_err(|e| format!("catcher SMTP: {e}"))?;
    let inner_addr = inner.local_addr().map_err(|e| format!("catcher SMTP: {e}"))?;
    std::thread::Builder::new()
        .name("catcher-accept".into())
        .spawn(move || bounds::serve(listener, inner_addr, bounds))
        .map_err(|e| format!("cannot start the catcher SMTP thread: {e}"))?;
    let listener = inner;
    let handler = Session {
        store,
        arbiter: Arbiter::new().handle(),
        from: String::new(),
        to: Vec::new(),
        data: Vec::new(),
        too_big: false,
    };
    let mut server = Server::new(handler);
    let ssl = match tls {
        Some((cert, key)) => SslConfig::SelfSigned {
            cert_path: cert.display().to_string(),
            key_path: key.display().to_string(),
        },
        None => SslConfig::None,
    };
    server
        .with_name("troupe-catcher")
        .with_ssl(ssl)
        .map_err(|e| format!("catcher TLS: {e}"))?
        .with_num_threads(bounds.sessions)
        .with_tcp_listener(listener);
    std::thread::Builder::new()
        .name("catcher-smtp".into())
        .spawn(move || {
            if let Err(e) = server.serve() {
                tracing::error!(error = %e, "catcher SMTP server stopped");
            }
        })
        .map_err(|e| format!("cannot start the catcher SMTP thread: {e}"))?;
    Ok(())
}
