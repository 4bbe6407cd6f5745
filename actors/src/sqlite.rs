//! The embedded SQLite files' shared set-up (the log store, the event queue): created when
//! missing, WAL with `synchronous=FULL` (a commit is on disk when it returns), one writer
//! connection — its page cache stays valid between commits (a commit from another
//! connection would make it read every page again) and writes never wait on each other's
//! locks — and a few read-only connections for queries.
//!
//! A writer connection whose work failed is closed, never reused ([`Writer`]): after some
//! errors SQLite has already rolled the transaction back, and sqlx, still counting it as open,
//! would turn every later transaction on that connection into a savepoint inside one that
//! never commits.
//!
//! Multi-row statements are built for a few row counts only ([`padded_rows`]), so that the
//! statements each connection keeps prepared stay few and small.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqliteConnection, SqlitePool};

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

/// A connection of a writer pool that goes back to the pool only if [`Writer::succeeded`]
/// was called; otherwise (an error, or a deadline that dropped the work half-way) it is closed.
///
/// Why: on `SQLITE_FULL`, `SQLITE_IOERR` and a few other errors SQLite rolls the open
/// transaction back by itself. sqlx does not see it: its `ROLLBACK` then fails, and it keeps
/// counting one open transaction on the connection. The next `begin()` issues a `SAVEPOINT`,
/// a failed `RELEASE` is answered with `ROLLBACK TO` (which leaves the savepoint, and so a
/// transaction, open), and from then on every `commit()` only releases a savepoint inside a
/// transaction that never ends: the writes look committed, other connections never see them,
/// and they are gone when the connection closes. `make chaos` found it (disk-full scenario:
/// events and users answered 202/201, then lost). Closing the connection rolls back whatever
/// is open; the pool opens a clean one for the next write.
pub struct Writer {
    conn: PoolConnection<Sqlite>,
    ok: bool,
}

impl Writer {
    /// A connection of `pool` (the writer pool of [`open`]).
    pub async fn acquire(pool: &SqlitePool) -> Result<Writer, sqlx::Error> {
        Ok(Writer { conn: pool.acquire().await?, ok: false })
    }

    /// The work on the connection succeeded: return it to the pool when dropped.
    pub fn succeeded(&mut self) {
        self.ok = true;
    }
}

impl std::ops::Deref for Writer {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Writer {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if !self.ok {
            self.conn.close_on_drop();
        }
    }
}

/// The row count a multi-row statement of `n` rows is built for: `n` rounded up to a power
/// of two or one and a half times one (1, 2, 3, 4, 6, 8, 12, 16, 24, ...), the extra rows
/// bound to NULL and left out by the statement ([`push_padded_values`], [`push_padded_in`]).
///
/// Why: sqlx keeps every distinct statement prepared on its connection (up to 100). Built for
/// each batch size as it came, a writer kept up to 100 compiled `INSERT`s of up to 1,000 rows
/// each (megabytes of SQLite programs: the process's C heap grew by 11 MiB under a
/// 256-connection load, not under an 8-connection one, and stayed) and compiled a new one
/// for every size it had not kept. Rounded, a batch is still one statement, a connection
/// keeps at most 20 sizes up to 1,024 rows, and a padding row costs less than compiling.
pub fn padded_rows(n: usize) -> usize {
    if n <= 2 {
        return n;
    }
    let power = n.next_power_of_two();
    let between = power / 4 * 3;
    if n <= between { between } else { power }
}

/// Push `SELECT * FROM (VALUES (...), ...) WHERE column1 IS NOT NULL` into `query`: a row
/// per item of `rows`, bound by `bind`, then rows of `width` NULLs up to [`padded_rows`],
/// which the `WHERE` leaves out (the first value `bind` pushes must never be NULL). After an
/// `INSERT INTO t (...)`, the `WHERE` also settles SQLite's `INSERT ... SELECT ... ON
/// CONFLICT` parsing ambiguity.
pub fn push_padded_values<I, F>(query: &mut sqlx::QueryBuilder<Sqlite>, rows: I, width: usize, mut bind: F)
where
    I: ExactSizeIterator,
    F: FnMut(&mut sqlx::query_builder::Separated<'_, Sqlite, &'static str>, I::Item),
{
    let n = rows.len();
    let padding = (n..padded_rows(n)).map(|_| None);
    query.push("SELECT * FROM (");
    query.push_values(rows.map(Some).chain(padding), |mut row, item| match item {
        Some(item) => bind(&mut row, item),
        None => {
            for _ in 0..width {
                row.push_bind(None::<&str>);
            }
        }
    });
    query.push(") WHERE column1 IS NOT NULL");
}

/// Push `( ?, ?, ... )` for `values` into `query`, padded with NULLs to [`padded_rows`]
/// (a NULL matches nothing in `IN`).
pub fn push_padded_in<'t, T>(query: &mut sqlx::QueryBuilder<Sqlite>, values: &[T])
where
    T: 't + Clone + sqlx::Encode<'t, Sqlite> + sqlx::Type<Sqlite>,
{
    query.push("(");
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
    for _ in values.len()..padded_rows(values.len()) {
        list.push_bind(None::<T>);
    }
    query.push(")");
}

/// A time stored as Unix milliseconds.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::padded_rows;

    #[test]
    fn statements_are_built_for_twenty_row_counts_up_to_1024_none_half_padding() {
        let sizes: std::collections::BTreeSet<usize> = (1..=1_024).map(padded_rows).collect();
        assert_eq!(sizes.len(), 20, "{sizes:?}");
        for n in 1..=1_024 {
            let padded = padded_rows(n);
            assert!(padded >= n && padded * 2 < n * 3, "{n} rows padded to {padded}");
        }
        assert_eq!((padded_rows(0), padded_rows(5), padded_rows(7), padded_rows(1_000)), (0, 6, 8, 1_024));
    }
}
