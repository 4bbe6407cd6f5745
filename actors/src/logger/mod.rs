//! The logger actor: owns the log store (MongoDB or embedded SQLite) and batches writes.
//!
//! [`WriteLog`] requests are queued; while one batch is being stored, the next ones
//! accumulate, and each batch (up to `batch_max` entries) is written at once. Every caller is
//! answered only after the batch holding its entry is stored, with that entry's id. Under
//! light load a batch is a single entry, so latency stays that of one insert.
//!
//! The store connection is supervised ([`supervision`]): while it is down, requests are
//! answered `Unavailable` at once; a failed batch answers each of its callers `Unavailable`
//! and makes the actor reconnect with backoff.
//!
//! Followers ([`SubscribeLogs`], the live tail behind `GET /logs/stream`) get every entry
//! after the batch holding it is committed, through a broadcast channel: the writer never
//! waits for them, a follower that falls [`TAIL_BUFFER`] entries behind is told it lagged,
//! and with no follower nothing is built or sent.

pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use actix::fut::{ActorFutureExt, wrap_future};
use actix::{Addr, Arbiter, AsyncContext, Context, Handler, ResponseActFuture};
use actix::{Message, MessageResult, ResponseFuture, Supervisor};
use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, oneshot};
use tracing::Instrument as _;
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::LoggerSettings;
use troupe_core::health::Readiness;
use troupe_core::messages::{GetLog, LogEntry, LogPage, NewLogEntry, QueryLogs, WriteLog};
use troupe_core::metrics::LogStoreMetrics;

use self::store::{LogStore, StoreError, StoreTarget};
use crate::supervision::{self, Backend, BackendError, Checking, Connecting, Link, supervised};

/// Name used in "logger unavailable".
pub const SERVICE: &str = "logger";

/// Everything the logger actor needs, checked at start-up.
#[derive(Clone, Debug)]
pub struct LoggerConfig {
    /// Which store.
    pub target: StoreTarget,
    /// Deadline per store operation.
    pub timeout: Duration,
    /// Largest batch written at once.
    pub batch_max: usize,
    /// Reconnect policy.
    pub backoff: BackoffPolicy,
}

impl LoggerConfig {
    /// Build from settings: MongoDB when `MONGO_URL` is set, else SQLite in the data
    /// directory (created when missing). Errors name the variable.
    pub fn from_settings(s: &LoggerSettings, backoff: BackoffPolicy) -> Result<Self, String> {
        let target = match s.mongo_url.value() {
            Some(url) => StoreTarget::Mongo {
                url: url.clone(),
                username: s.mongo_username.clone(),
                password: s.mongo_password.value().cloned(),
                database: s.mongo_database.clone(),
            },
            None => {
                crate::auth::ensure_data_dir(&s.logs_data_dir)?;
                StoreTarget::Sqlite(s.logs_data_dir.join("logs.db"))
            }
        };
        Ok(Self::new(target, s.log_store_timeout, s.log_batch_max, backoff))
    }

    /// A config for `target` (tests and examples).
    pub fn new(target: StoreTarget, timeout: Duration, batch_max: usize, backoff: BackoffPolicy) -> Self {
        Self { target, timeout, batch_max: batch_max.max(1), backoff }
    }

    /// An embedded store in `dir/logs.db`.
    pub fn embedded(dir: impl Into<PathBuf>, backoff: BackoffPolicy) -> Self {
        Self::new(StoreTarget::Sqlite(dir.into().join("logs.db")), Duration::from_secs(3), 500, backoff)
    }
}

type Waiter = oneshot::Sender<Result<String, ServiceError>>;

/// Entries a follower may fall behind the writer before it is told it lagged.
pub const TAIL_BUFFER: usize = 1024;

/// Follow the log: a receiver of every entry stored from now on, in commit order. One that
/// falls [`TAIL_BUFFER`] entries behind gets `RecvError::Lagged` (and should let go).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "broadcast::Receiver<Arc<LogEntry>>")]
pub struct SubscribeLogs;

/// The stored form of `entry`, as a reader would get it back.
fn stored(entry: NewLogEntry, id: String, at: DateTime<Utc>) -> Arc<LogEntry> {
    Arc::new(LogEntry {
        id,
        name: entry.name().to_owned(),
        data: entry.data().to_owned(),
        level: entry.level(),
        service: entry.service().to_owned(),
        request_id: entry.request_id().map(|r| r.as_str().to_owned()),
        trace_id: entry.trace_id(),
        event_id: entry.event_id().map(str::to_owned),
        created_at: at,
        updated_at: at,
    })
}

/// The span of one batch write (the backend call), in the trace of its first entry.
fn batch_span(entries: &[NewLogEntry], store: &LogStore) -> tracing::Span {
    entries.first().map_or_else(tracing::Span::none, |first| {
        tracing::info_span!(parent: first.span(), "log store insert", otel.kind = "client",
                            service = SERVICE, db.system = store.system(), batch.size = entries.len())
    })
}

/// The logger service actor.
pub struct LoggerActor {
    config: LoggerConfig,
    link: Link<LogStore>,
    pending: Vec<(NewLogEntry, Waiter)>,
    flushing: bool,
    /// New entries for followers (sent to only when someone follows).
    tail: broadcast::Sender<Arc<LogEntry>>,
    /// Batch sizes, commit times, entries in flight (`None` with TROUPE_METRICS=off).
    metrics: Option<LogStoreMetrics>,
}

impl LoggerActor {
    /// Start the actor under a supervisor, on its own arbiter (thread).
    pub fn start(config: LoggerConfig, readiness: &Readiness) -> Addr<Self> {
        let probe = readiness.probe("logger.store");
        let link = Link::new(SERVICE, probe, config.backoff);
        let metrics = readiness.metrics().log_store();
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self {
            metrics,
            config,
            link,
            pending: Vec::new(),
            flushing: false,
            tail: broadcast::channel(TAIL_BUFFER).0,
        })
    }

    /// Answer every queued writer `Unavailable`.
    fn fail_pending(&mut self) {
        for (_, waiter) in self.pending.drain(..) {
            let _ = waiter.send(Err(ServiceError::unavailable(SERVICE)));
        }
    }

    /// Store the next batch, if none is in flight.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        if self.flushing || self.pending.is_empty() {
            return;
        }
        let store = match self.link.conn() {
            Ok(store) => store,
            Err(_) => return self.fail_pending(),
        };
        let take = self.pending.len().min(self.config.batch_max);
        let began = std::time::Instant::now();
        if let Some(m) = &self.metrics {
            m.in_flight.set(i64::try_from(self.pending.len()).unwrap_or(i64::MAX));
            m.batch_size.observe(take as f64);
        }
        let (entries, waiters): (Vec<_>, Vec<_>) = self.pending.drain(..take).unzip();
        self.flushing = true;
        // The time the store records, to the millisecond, so followers see the stored entry.
        let now = crate::sqlite::from_millis(Utc::now().timestamp_millis());
        let batch = batch_span(&entries, &store);
        let write = async move { (store.insert_batch_at(&entries, now).await, entries) }.instrument(batch);
        ctx.spawn(wrap_future::<_, Self>(write).map(move |(res, entries), act, ctx| {
            act.flushing = false;
            if let Some(m) = &act.metrics {
                m.commit_seconds.observe(began.elapsed().as_secs_f64());
                m.in_flight.set(i64::try_from(act.pending.len()).unwrap_or(i64::MAX));
            }
            match res {
                Ok(ids) => {
                    // Followers are sent each entry before its writer hears it is stored.
                    let followed = act.tail.receiver_count() > 0;
                    for ((waiter, id), entry) in waiters.into_iter().zip(ids).zip(entries) {
                        if followed {
                            let _ = act.tail.send(stored(entry, id.clone(), now));
                        }
                        let _ = waiter.send(Ok(id));
                    }
                }
                Err(err) => {
                    let lost = err.is_connection_lost();
                    let reply = err.into_service_error(SERVICE);
                    for waiter in waiters {
                        let _ = waiter.send(Err(reply.clone()));
                    }
                    if lost {
                        act.fail_pending();
                        supervision::lost(act, ctx, &"a batch write failed");
                        return;
                    }
                }
            }
            act.flush(ctx);
        }));
    }
}

supervised!(LoggerActor, LogStore);

impl Backend for LoggerActor {
    fn connect(&mut self) -> Connecting<LogStore> {
        let c = self.config.clone();
        Box::pin(async move { LogStore::connect(&c.target, c.timeout).await })
    }

    fn check(store: LogStore) -> Checking {
        Box::pin(async move { Ok(store.ping().await?) })
    }

    fn on_start(&mut self, ctx: &mut Context<Self>) -> bool {
        // Queued writes are answered in batches; allow many waiting callers.
        ctx.set_mailbox_capacity(10_000);
        true
    }

    fn on_restart(&mut self) {
        self.fail_pending();
        self.flushing = false;
    }

    fn on_stop(&mut self) {
        self.fail_pending();
    }
}

impl BackendError for StoreError {
    fn is_connection_lost(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    fn into_service_error(self, service: &str) -> ServiceError {
        match self {
            Self::Unavailable(_) => ServiceError::unavailable(service),
            Self::Other(e) => {
                tracing::error!(error = %e, "log store failed");
                ServiceError::Internal
            }
        }
    }
}

impl Handler<WriteLog> for LoggerActor {
    type Result = ResponseFuture<Result<String, ServiceError>>;

    fn handle(&mut self, WriteLog(entry): WriteLog, ctx: &mut Context<Self>) -> Self::Result {
        if !self.link.is_ready() {
            return Box::pin(async { Err(ServiceError::unavailable(SERVICE)) });
        }
        // The message's span, from taking it to its entry being stored (or failing).
        let span = tracing::info_span!(parent: entry.span(), "WriteLog", service = SERVICE);
        let (tx, rx) = oneshot::channel();
        self.pending.push((entry.in_span(span.clone()), tx));
        self.flush(ctx);
        Box::pin(
            async move { rx.await.unwrap_or_else(|_| Err(ServiceError::unavailable(SERVICE))) }
                .instrument(span),
        )
    }
}

impl Handler<QueryLogs> for LoggerActor {
    type Result = ResponseActFuture<Self, Result<LogPage, ServiceError>>;

    fn handle(&mut self, msg: QueryLogs, _: &mut Context<Self>) -> Self::Result {
        supervision::call(self, move |store: LogStore| async move {
            store.query(&msg.filter, msg.limit, msg.cursor.as_ref()).await
        })
    }
}

impl Handler<GetLog> for LoggerActor {
    type Result = ResponseActFuture<Self, Result<LogEntry, ServiceError>>;

    fn handle(&mut self, GetLog(id): GetLog, _: &mut Context<Self>) -> Self::Result {
        let found = supervision::call(self, move |store: LogStore| async move { store.get(&id).await });
        Box::pin(found.map(|res, _, _| {
            res.and_then(|entry| entry.ok_or_else(|| ServiceError::NotFound("log entry not found".into())))
        }))
    }
}

impl Handler<SubscribeLogs> for LoggerActor {
    type Result = MessageResult<SubscribeLogs>;

    fn handle(&mut self, _: SubscribeLogs, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.tail.subscribe())
    }
}
