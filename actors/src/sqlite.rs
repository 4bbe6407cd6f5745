//! The embedded SQLite files' shared set-up (the log store, the event queue): created when
//! missing, WAL with `synchronous=FULL` (a commit is on disk when it returns), one writer
//! connection — its page cache stays valid between commits (a commit from another
//! connection would make it read every page again) and writes never wait on each other's
//! locks — and a few read-only connections for queries.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

/// The connections of one SQLite file.
#[derive(Clone, Debug)]
pub struct Pools {
    /// The only connection that writes.
    pub writer: SqlitePool,
    /// Read-only connections.
    pub readers: SqlitePool,
}

/// Open `path` (created when missing), run each `schema` statement on the writer, and open
/// `readers` read-only connections; every wait for a lock or a connection is bounded by
/// `timeout`.
pub async fn open(
    path: &Path,
    schema: &[&'static str],
    readers: u32,
    timeout: Duration,
) -> Result<Pools, sqlx::Error> {
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(timeout);
    let pool = |size: u32, opts: SqliteConnectOptions| {
        SqlitePoolOptions::new().max_connections(size).acquire_timeout(timeout).connect_with(opts)
    };
    let writer = pool(1, opts.clone()).await?;
    for statement in schema {
        sqlx::query(*statement).execute(&writer).await?;
    }
    let readers = pool(readers.max(1), opts.read_only(true)).await?;
    Ok(Pools { writer, readers })
}

/// A time stored as Unix milliseconds.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
