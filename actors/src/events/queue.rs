//! The embedded event queue: the in-process bus keeps its events on disk, so that
//! `202 Event published` means the event outlives the process.
//!
//! One SQLite file (`events.db` in TROUPE_DATA_DIR; WAL, `synchronous=FULL`, like the log
//! store) with two tables: `queue`, the events waiting to be delivered in publish order, and
//! `dead_letters`, the events the sink refused for good with the reason (RabbitMQ's `.dead`
//! queue, listable and replayable). SQLite rather than an append-only file of our own: the
//! transaction gives append, acknowledge and dead-letter atomically, crash recovery is
//! SQLite's, and the file can be read with any SQLite client.
//!
//! Writes are group-committed: one task owns the only write connection, and every operation
//! sent while a commit is in flight (publishes, acknowledgements, dead letters) goes into the
//! next transaction, so under load one fsync covers many events. A publish is answered only
//! after the transaction holding it is committed.
//!
//! Capacity is bounded: at most `max_pending` events wait (EVENTS_QUEUE_MAX); beyond that,
//! and when the disk is full, a publish is refused with [`ServiceError::Overloaded`] (503).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use sqlx::{QueryBuilder, Row, Sqlite, SqlitePool};
use tokio::sync::{Notify, mpsc, oneshot};
use troupe_core::ServiceError;
use troupe_core::messages::Event;

use crate::sqlite::{Pools, Writer, from_millis, push_padded_in, push_padded_values};

/// Most operations committed in one transaction.
const GROUP_MAX: usize = 2_000;
/// Rows per multi-row statement (three parameters each, well under SQLite's limit).
const ROWS_PER_STATEMENT: usize = 500;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        body TEXT NOT NULL,
        queued_ms INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS dead_letters (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id TEXT NOT NULL,
        body TEXT NOT NULL,
        reason TEXT NOT NULL,
        queued_ms INTEGER NOT NULL,
        dead_ms INTEGER NOT NULL)",
];

/// Where the queue lives and how much it may hold.
#[derive(Debug, Clone)]
pub struct QueueConfig {
    /// The SQLite file (created when missing).
    pub path: PathBuf,
    /// Most events waiting for delivery before publishers get 503.
    pub max_pending: u64,
    /// Deadline for each commit and each read.
    pub timeout: Duration,
}

/// Why a queue operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    /// `max_pending` events are waiting already.
    #[error("event queue full: {0} events wait to be delivered (EVENTS_QUEUE_MAX)")]
    Full(u64),
    /// The data directory has no space left.
    #[error("event queue full: no space left in the data directory")]
    DiskFull,
    /// Anything else (I/O, deadline, a bug); the cause is logged where it happens.
    #[error("event queue failed: {0}")]
    Failed(String),
}

impl From<sqlx::Error> for QueueError {
    fn from(err: sqlx::Error) -> Self {
        // SQLITE_FULL (13): the disk, or the file system's quota, is full.
        let full = matches!(&err, sqlx::Error::Database(db) if db.code().as_deref() == Some("13"));
        if full { Self::DiskFull } else { Self::Failed(err.to_string()) }
    }
}

impl From<QueueError> for ServiceError {
    fn from(err: QueueError) -> Self {
        match err {
            QueueError::Full(_) | QueueError::DiskFull => ServiceError::Overloaded(err.to_string()),
            QueueError::Failed(why) => {
                tracing::error!(error = %why, "event queue failed");
                ServiceError::unavailable("events")
            }
        }
    }
}

pub use troupe_core::messages::DeadLetter;

/// One event waiting for delivery: its place in the queue and the event (or why its stored
/// body cannot be read, which dead-letters it).
pub type Queued = (i64, Result<Event, String>);

enum Op {
    Append(Event),
    Done(i64),
    Dead(i64, String),
    Replay(Option<i64>),
}

struct Request {
    op: Op,
    reply: oneshot::Sender<Result<u64, QueueError>>,
}

/// Handle on the queue; cheap to clone. Opening it starts the writer task on the current
/// runtime.
#[derive(Clone)]
pub struct EventQueue {
    ops: mpsc::Sender<Request>,
    reader: SqlitePool,
    /// Events waiting, counting publishes not yet committed.
    depth: Arc<AtomicU64>,
    /// Signalled after every commit that added events.
    appended: Arc<Notify>,
    max_pending: u64,
    timeout: Duration,
}

impl EventQueue {
    /// Open (or create) the queue and start its writer.
    pub async fn open(config: &QueueConfig) -> Result<Self, QueueError> {
        let opened = crate::sqlite::open(&config.path, SCHEMA, 2, config.timeout);
        let within = || QueueError::Failed(format!("not opened within {:?}", config.timeout));
        let Pools { writer, readers: reader } =
            tokio::time::timeout(config.timeout, opened).await.map_err(|_| within())??;
        let waiting: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM queue").fetch_one(&reader).await?;
        let depth = Arc::new(AtomicU64::new(u64::try_from(waiting).unwrap_or_default()));
        let appended = Arc::new(Notify::new());
        let (ops, rx) = mpsc::channel(GROUP_MAX * 4);
        tokio::spawn(write_loop(writer, rx, depth.clone(), appended.clone(), config.timeout));
        Ok(Self { ops, reader, depth, appended, max_pending: config.max_pending, timeout: config.timeout })
    }

    /// A cheap round trip to the file (the supervisor's liveness check).
    pub async fn ping(&self) -> Result<(), QueueError> {
        self.within(sqlx::query("SELECT 1").execute(&self.reader)).await.map(drop)
    }

    /// Events waiting for delivery (publishes being committed included).
    pub fn depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }

    /// A counter that follows [`EventQueue::depth`] (for status pages).
    pub fn depth_counter(&self) -> Arc<AtomicU64> {
        self.depth.clone()
    }

    /// Store `event` at the end of the queue; `Ok` once it is on disk.
    pub async fn append(&self, event: Event) -> Result<(), QueueError> {
        let before = self.depth.fetch_add(1, Ordering::Relaxed);
        if before >= self.max_pending {
            self.depth.fetch_sub(1, Ordering::Relaxed);
            return Err(QueueError::Full(before));
        }
        self.run(Op::Append(event)).await.map(drop)
    }

    /// The event at `seq` was delivered: remove it.
    pub async fn done(&self, seq: i64) -> Result<(), QueueError> {
        self.run(Op::Done(seq)).await.map(drop)
    }

    /// The event at `seq` was refused for good: move it to the dead letters with `reason`.
    pub async fn dead(&self, seq: i64, reason: String) -> Result<(), QueueError> {
        self.run(Op::Dead(seq, reason)).await.map(drop)
    }

    /// Put the dead letter `seq` (or every one, for `None`) back at the end of the queue;
    /// answers how many were put back.
    pub async fn replay(&self, seq: Option<i64>) -> Result<u64, QueueError> {
        self.run(Op::Replay(seq)).await
    }

    /// Resolves after the next commit that adds events (at once if one happened since the
    /// last call).
    pub async fn appended(&self) {
        self.appended.notified().await;
    }

    async fn run(&self, op: Op) -> Result<u64, QueueError> {
        let (reply, answer) = oneshot::channel();
        let gone = || QueueError::Failed("the queue's writer stopped".into());
        self.ops.send(Request { op, reply }).await.map_err(|_| gone())?;
        answer.await.unwrap_or_else(|_| Err(gone()))
    }

    /// Up to `limit` waiting events after `seq`, in publish order.
    pub async fn after(&self, seq: i64, limit: u32) -> Result<Vec<Queued>, QueueError> {
        let read = sqlx::query("SELECT seq, body FROM queue WHERE seq > ? ORDER BY seq LIMIT ?")
            .bind(seq)
            .bind(limit)
            .fetch_all(&self.reader);
        let rows = self.within(read).await?;
        Ok(rows
            .iter()
            .map(|row| {
                let body: String = row.get("body");
                (row.get("seq"), serde_json::from_str(&body).map_err(|e| format!("unreadable body: {e}")))
            })
            .collect())
    }

    /// The most recent `limit` dead letters, newest first.
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, QueueError> {
        let read = sqlx::query(
            "SELECT seq, body, reason, queued_ms, dead_ms FROM dead_letters ORDER BY seq DESC LIMIT ?",
        )
        .bind(limit)
        .fetch_all(&self.reader);
        let rows = self.within(read).await?;
        rows.iter()
            .map(|row| {
                let body: String = row.get("body");
                let event = serde_json::from_str(&body)
                    .map_err(|e| QueueError::Failed(format!("unreadable dead letter: {e}")))?;
                Ok(DeadLetter {
                    seq: row.get("seq"),
                    event,
                    reason: row.get("reason"),
                    queued_at: from_millis(row.get("queued_ms")),
                    dead_at: from_millis(row.get("dead_ms")),
                })
            })
            .collect()
    }

    async fn within<T>(&self, fut: impl Future<Output = Result<T, sqlx::Error>>) -> Result<T, QueueError> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(res) => Ok(res?),
            Err(_) => Err(QueueError::Failed(format!("no answer within {:?}", self.timeout))),
        }
    }
}

/// The writer: take every request waiting (up to [`GROUP_MAX`]), commit them in one
/// transaction, answer them all, repeat.
async fn write_loop(
    pool: SqlitePool,
    mut rx: mpsc::Receiver<Request>,
    depth: Arc<AtomicU64>,
    appended: Arc<Notify>,
    timeout: Duration,
) {
    let mut group = Vec::new();
    while rx.recv_many(&mut group, GROUP_MAX).await > 0 {
        let committed = match tokio::time::timeout(timeout, commit(&pool, &group)).await {
            Ok(res) => res.map_err(QueueError::from),
            Err(_) => Err(QueueError::Failed(format!("commit not done within {timeout:?}"))),
        };
        let mut added = false;
        for (n, request) in group.drain(..).enumerate() {
            // Each request's count from the commit, or the commit's error.
            let outcome = committed.as_ref().map(|counts| counts[n]).map_err(Clone::clone);
            match (&request.op, &outcome) {
                (Op::Append(_), Ok(_)) => added = true,
                (Op::Append(_), Err(_)) | (Op::Done(_) | Op::Dead(..), Ok(_)) => {
                    depth.fetch_sub(1, Ordering::Relaxed);
                }
                (Op::Replay(_), Ok(n)) => {
                    depth.fetch_add(*n, Ordering::Relaxed);
                    added |= *n > 0;
                }
                _ => {}
            }
            let _ = request.reply.send(outcome);
        }
        if added {
            appended.notify_one();
        }
    }
}

/// One transaction for the whole group; each request's count of rows affected, in order. A
/// failed group closes its connection ([`Writer`]): the next one starts clean.
async fn commit(pool: &SqlitePool, group: &[Request]) -> Result<Vec<u64>, sqlx::Error> {
    let mut conn = Writer::acquire(pool).await?;
    let counts = commit_on(&mut conn, group).await?;
    conn.succeeded();
    Ok(counts)
}

async fn commit_on(conn: &mut sqlx::SqliteConnection, group: &[Request]) -> Result<Vec<u64>, sqlx::Error> {
    let now = Utc::now().timestamp_millis();
    let mut tx = sqlx::Connection::begin(conn).await?;
    let appends: Vec<&Event> = group
        .iter()
        .filter_map(|r| match &r.op {
            Op::Append(event) => Some(event),
            _ => None,
        })
        .collect();
    insert_rows(&mut tx, &appends, now).await?;
    let mut counts = Vec::with_capacity(group.len());
    let mut done = Vec::new();
    for request in group {
        let count = match &request.op {
            Op::Append(_) => 1,
            Op::Done(seq) => {
                done.push(*seq);
                1
            }
            Op::Dead(seq, reason) => {
                sqlx::query(
                    "INSERT INTO dead_letters (event_id, body, reason, queued_ms, dead_ms)
                     SELECT event_id, body, ?, queued_ms, ? FROM queue WHERE seq = ?",
                )
                .bind(reason)
                .bind(now)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
                done.push(*seq);
                1
            }
            Op::Replay(seq) => replay(&mut tx, *seq, now).await?,
        };
        counts.push(count);
    }
    delete_rows(&mut tx, &done).await?;
    tx.commit().await?;
    Ok(counts)
}

/// Append `events` to the queue, in multi-row statements ([`push_padded_values`]).
async fn insert_rows(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    events: &[&Event],
    now: i64,
) -> Result<(), sqlx::Error> {
    for chunk in events.chunks(ROWS_PER_STATEMENT) {
        let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO queue (event_id, body, queued_ms) ");
        push_padded_values(&mut insert, chunk.iter(), 3, |row, event| {
            let body = serde_json::to_string(event).unwrap_or_default();
            row.push_bind(event.id.clone().unwrap_or_default()).push_bind(body).push_bind(now);
        });
        insert.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Remove the events at `seqs` from the queue.
async fn delete_rows(tx: &mut sqlx::Transaction<'_, Sqlite>, seqs: &[i64]) -> Result<(), sqlx::Error> {
    for chunk in seqs.chunks(ROWS_PER_STATEMENT) {
        let mut delete = QueryBuilder::<Sqlite>::new("DELETE FROM queue WHERE seq IN ");
        push_padded_in(&mut delete, chunk);
        delete.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Move dead letter `seq` (every one for `None`) back to the queue; how many moved.
async fn replay(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    seq: Option<i64>,
    now: i64,
) -> Result<u64, sqlx::Error> {
    let moved = sqlx::query(
        "INSERT INTO queue (event_id, body, queued_ms)
         SELECT event_id, body, ?1 FROM dead_letters WHERE ?2 IS NULL OR seq = ?2 ORDER BY seq",
    )
    .bind(now)
    .bind(seq)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM dead_letters WHERE ?1 IS NULL OR seq = ?1").bind(seq).execute(&mut **tx).await?;
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use troupe_core::messages::LogLevel;

    use super::*;

    fn event(n: usize) -> Event {
        Event {
            id: Some(format!("e{n}")),
            name: "event".into(),
            data: format!("number {n}"),
            level: LogLevel::Info,
            request_id: None,
            traceparent: None,
            tracestate: None,
        }
    }

    fn config(dir: &tempfile::TempDir, max_pending: u64) -> QueueConfig {
        QueueConfig { path: dir.path().join("events.db"), max_pending, timeout: Duration::from_secs(5) }
    }

    #[tokio::test]
    async fn events_survive_reopening_in_order_until_done_and_dead_letters_are_kept() {
        let dir = tempfile::tempdir().expect("dir");
        let queue = EventQueue::open(&config(&dir, 100)).await.expect("opens");
        let appends: Vec<_> = (0..50).map(|n| queue.append(event(n))).collect();
        for appended in futures_util::future::join_all(appends).await {
            appended.expect("stored");
        }
        let first = queue.after(0, 2).await.expect("reads");
        let (seq0, seq1) = (first[0].0, first[1].0);
        queue.done(seq0).await.expect("done");
        queue.dead(seq1, "refused".into()).await.expect("dead");
        drop(queue);

        let queue = EventQueue::open(&config(&dir, 100)).await.expect("reopens");
        assert_eq!(queue.depth(), 48);
        let waiting = queue.after(0, 100).await.expect("reads");
        let data: Vec<String> = waiting.into_iter().map(|(_, e)| e.expect("readable").data).collect();
        assert_eq!(data, (2..50).map(|n| format!("number {n}")).collect::<Vec<_>>());
        let dead = queue.dead_letters(10).await.expect("lists");
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].event.data.as_str(), dead[0].reason.as_str()), ("number 1", "refused"));

        assert_eq!(queue.replay(Some(dead[0].seq)).await, Ok(1));
        assert_eq!((queue.depth(), queue.dead_letters(10).await.expect("lists").len()), (49, 0));
        let last = queue.after(0, 100).await.expect("reads").pop().expect("one");
        assert_eq!(last.1.expect("readable").data, "number 1", "a replayed event goes to the end");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_with_a_clear_reason_until_events_are_delivered() {
        let dir = tempfile::tempdir().expect("dir");
        let queue = EventQueue::open(&config(&dir, 2)).await.expect("opens");
        queue.append(event(0)).await.expect("stored");
        queue.append(event(1)).await.expect("stored");
        let refused = queue.append(event(2)).await.expect_err("full");
        assert_eq!(refused, QueueError::Full(2));
        let err = ServiceError::from(refused);
        assert_eq!((err.status(), err.to_string().contains("EVENTS_QUEUE_MAX")), (503, true));

        let seq = queue.after(0, 1).await.expect("reads")[0].0;
        queue.done(seq).await.expect("done");
        queue.append(event(2)).await.expect("room again");
    }
}
