//! The log store: MongoDB (`MONGO_URL`) or an embedded SQLite file, behind one API.
//!
//! Both stores keep the same fields, use 24-hex-digit ObjectIds as ids, order queries by
//! `(created_at, id)` descending and page with the same opaque cursor. Writes go in batches:
//! [`LogStore::insert_batch`] stores many entries at once (one `insertMany`, or one SQLite
//! transaction) and returns each entry's id in order. An entry whose `event_id` is already
//! stored is not stored again; its existing id is returned instead.
//!
//! Every operation has a deadline; a passed deadline or a socket failure is
//! [`StoreError::Unavailable`], which makes the logger actor reconnect.

use std::collections::{HashMap, HashSet};
use std::future::IntoFuture;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use mongodb::bson::oid::ObjectId;
use mongodb::bson::{self, Document, doc};
use mongodb::error::ErrorKind;
use mongodb::options::{ClientOptions, Credential, IndexOptions};
use mongodb::{Client, Collection, Database, IndexModel};
use secrecy::{ExposeSecret, SecretString};
use sqlx::SqlitePool;
use troupe_core::RequestId;
use troupe_core::messages::{LogCursor, LogEntry, LogFilter, LogLevel, LogPage, MAX_LOG_PAGE, NewLogEntry};

use crate::sqlite::{from_millis, push_padded_in, push_padded_values};

/// Which store to open.
#[derive(Clone, Debug)]
pub enum StoreTarget {
    /// A MongoDB server (or anything speaking its wire protocol).
    Mongo {
        /// `mongodb://...` (may carry credentials).
        url: SecretString,
        /// User, when not in the URL.
        username: Option<String>,
        /// Password, when not in the URL.
        password: Option<SecretString>,
        /// Database holding the `logs` collection.
        database: String,
    },
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (socket error, deadline passed).
    #[error("log store unreachable: {0}")]
    Unavailable(String),
    /// Anything else (a bug or a schema problem).
    #[error("log store error: {0}")]
    Other(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.to_string()),
            other => Self::Other(other.to_string()),
        }
    }
}

impl From<mongodb::error::Error> for StoreError {
    fn from(err: mongodb::error::Error) -> Self {
        match *err.kind {
            ErrorKind::Io(_)
            | ErrorKind::ServerSelection { .. }
            | ErrorKind::ConnectionPoolCleared { .. }
            | ErrorKind::Authentication { .. }
            | ErrorKind::Shutdown => Self::Unavailable(err.to_string()),
            _ => Self::Other(err.to_string()),
        }
    }
}

/// Handle on the log store; cheap to clone.
#[derive(Clone, Debug)]
pub struct LogStore {
    backend: Backend,
    timeout: Duration,
}

#[derive(Clone, Debug)]
enum Backend {
    Mongo(Database, Collection<Document>),
    Sqlite(Sqlite),
}

/// The embedded store's connections: one writer and a few readers ([`crate::sqlite`]).
type Sqlite = crate::sqlite::Pools;

/// Run `fut` with the store's deadline.
async fn deadline<T, E: Into<StoreError>>(
    timeout: Duration,
    fut: impl IntoFuture<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(res) => res.map_err(Into::into),
        Err(_) => Err(StoreError::Unavailable(format!("no answer within {timeout:?}"))),
    }
}

fn millis(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn clamp_limit(limit: u32) -> u32 {
    limit.clamp(1, MAX_LOG_PAGE)
}

/// Turn `limit + 1` rows into a page: the extra row only says there is a next page.
fn page(mut entries: Vec<LogEntry>, limit: u32) -> LogPage {
    let limit = limit as usize;
    let next_cursor = if entries.len() > limit {
        entries.truncate(limit);
        entries.last().map(|e| LogCursor { created_ms: millis(e.created_at), id: e.id.clone() }.encode())
    } else {
        None
    };
    LogPage { entries, next_cursor }
}

const SQLITE_SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS logs (
        id TEXT PRIMARY KEY NOT NULL,
        name TEXT NOT NULL,
        data TEXT NOT NULL,
        level TEXT NOT NULL,
        service TEXT NOT NULL,
        request_id TEXT,
        event_id TEXT UNIQUE,
        trace_id TEXT,
        created_ms INTEGER NOT NULL,
        updated_ms INTEGER NOT NULL
    )",
    "CREATE INDEX IF NOT EXISTS logs_created ON logs (created_ms DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS logs_name ON logs (name, created_ms DESC)",
    "CREATE INDEX IF NOT EXISTS logs_request ON logs (request_id, created_ms DESC)",
    // A level or a service matches a large share of all entries: walking `logs_created` and
    // skipping the others is as fast as an index of its own, which every write would pay.
    "DROP INDEX IF EXISTS logs_service",
    "DROP INDEX IF EXISTS logs_level",
];

/// Brings a data directory made before entries had a trace id up to date (SQLite has no
/// `ADD COLUMN IF NOT EXISTS`: [`sqlite_migrate`] checks first). The index only holds the
/// entries that have one, so writes with tracing off pay nothing for it.
const SQLITE_TRACE_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS logs_trace ON logs (trace_id, created_ms DESC) WHERE trace_id IS NOT NULL";

/// Add the `trace_id` column to a table made without it, then its index.
async fn sqlite_migrate(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let (has,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM pragma_table_info('logs') WHERE name = 'trace_id'")
            .fetch_one(pool)
            .await?;
    if has == 0 {
        sqlx::query("ALTER TABLE logs ADD COLUMN trace_id TEXT").execute(pool).await?;
    }
    sqlx::query(SQLITE_TRACE_INDEX).execute(pool).await.map(drop)
}

type SqliteRow =
    (String, String, String, String, String, Option<String>, Option<String>, Option<String>, i64, i64);

const SQLITE_COLUMNS: &str =
    "id, name, data, level, service, request_id, event_id, trace_id, created_ms, updated_ms";

fn sqlite_entry(row: SqliteRow) -> LogEntry {
    let (id, name, data, level, service, request_id, event_id, trace_id, created, updated) = row;
    LogEntry {
        id,
        name,
        data,
        level: LogLevel::parse(&level).unwrap_or_default(),
        service,
        request_id,
        trace_id,
        event_id,
        created_at: from_millis(created),
        updated_at: from_millis(updated),
    }
}

fn mongo_entry(doc: &Document) -> Option<LogEntry> {
    let text = |k: &str| doc.get_str(k).ok().map(str::to_owned);
    let time = |k: &str| doc.get_datetime(k).ok().map(|d| from_millis(d.timestamp_millis()));
    let created_at = time("created_at")?;
    Some(LogEntry {
        id: doc.get_object_id("_id").ok()?.to_hex(),
        name: text("name").unwrap_or_default(),
        data: text("data").unwrap_or_default(),
        level: text("level").and_then(|l| LogLevel::parse(&l)).unwrap_or_default(),
        service: text("service").unwrap_or_default(),
        request_id: text("request_id"),
        trace_id: text("trace_id"),
        event_id: text("event_id"),
        created_at,
        updated_at: time("updated_at").unwrap_or(created_at),
    })
}

fn mongo_filter(filter: &LogFilter, cursor: Option<&LogCursor>) -> Document {
    let mut f = Document::new();
    for (key, value) in [
        ("name", &filter.name),
        ("service", &filter.service),
        ("request_id", &filter.request_id),
        ("trace_id", &filter.trace_id),
    ] {
        if let Some(v) = value {
            f.insert(key, v.as_str());
        }
    }
    if let Some(level) = filter.level {
        f.insert("level", level.as_str());
    }
    let mut range = Document::new();
    if let Some(since) = filter.since {
        range.insert("$gte", bson::DateTime::from_millis(millis(since)));
    }
    if let Some(until) = filter.until {
        range.insert("$lt", bson::DateTime::from_millis(millis(until)));
    }
    if !range.is_empty() {
        f.insert("created_at", range);
    }
    if let Some(c) = cursor {
        let at = bson::DateTime::from_millis(c.created_ms);
        let id = ObjectId::parse_str(&c.id).unwrap_or_else(|_| ObjectId::from_bytes([0; 12]));
        f.insert("$or", vec![doc! {"created_at": {"$lt": at}}, doc! {"created_at": at, "_id": {"$lt": id}}]);
    }
    f
}

impl LogStore {
    /// Open the store, create its indexes (or tables), and check it answers.
    pub async fn connect(target: &StoreTarget, timeout: Duration) -> anyhow::Result<Self> {
        let backend = match target {
            StoreTarget::Mongo { url, username, password, database } => {
                let mut opts = deadline(timeout, ClientOptions::parse(url.expose_secret())).await?;
                if opts.credential.is_none()
                    && let Some(user) = username
                {
                    opts.credential = Some(
                        Credential::builder()
                            .username(user.clone())
                            .password(password.as_ref().map(|p| p.expose_secret().to_owned()))
                            .build(),
                    );
                }
                opts.connect_timeout = Some(timeout);
                opts.server_selection_timeout = Some(timeout);
                opts.app_name = Some("troupe-logger".into());
                let client = Client::with_options(opts)?;
                let db = client.database(database);
                let coll = db.collection::<Document>("logs");
                create_mongo_indexes(&coll, timeout).await?;
                Backend::Mongo(db, coll)
            }
            StoreTarget::Sqlite(path) => {
                let pools = deadline(timeout, crate::sqlite::open(path, SQLITE_SCHEMA, 3, timeout)).await?;
                deadline(timeout, sqlite_migrate(&pools.writer)).await?;
                Backend::Sqlite(pools)
            }
        };
        let store = Self { backend, timeout };
        store.ping().await?;
        Ok(store)
    }

    /// Which database it is (`mongodb`, `sqlite`), for traces.
    pub fn system(&self) -> &'static str {
        match &self.backend {
            Backend::Mongo(..) => "mongodb",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// A cheap round trip to the store.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Mongo(db, _) => deadline(self.timeout, db.run_command(doc! {"ping": 1})).await.map(drop),
            Backend::Sqlite(db) => {
                deadline(self.timeout, sqlx::query("SELECT 1").execute(&db.writer)).await.map(drop)
            }
        }
    }

    /// Store `entries` at once; returns each one's id, in order. Entries whose `event_id` is
    /// already stored (or repeated within the batch) get the stored entry's id.
    pub async fn insert_batch(&self, entries: &[NewLogEntry]) -> Result<Vec<String>, StoreError> {
        self.insert_batch_at(entries, Utc::now()).await
    }

    /// [`LogStore::insert_batch`] with `now` as the entries' `created_at` (kept to the
    /// millisecond), so the caller knows what was stored without reading it back.
    pub async fn insert_batch_at(
        &self,
        entries: &[NewLogEntry],
        now: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Mongo(_, coll) => deadline(self.timeout, mongo_insert(coll, entries, now)).await,
            Backend::Sqlite(db) => deadline(self.timeout, sqlite_insert(&db.writer, entries, now)).await,
        }
    }

    /// Entries matching `filter`, newest first, after `cursor`; at most `limit`.
    pub async fn query(
        &self,
        filter: &LogFilter,
        limit: u32,
        cursor: Option<&LogCursor>,
    ) -> Result<LogPage, StoreError> {
        let limit = clamp_limit(limit);
        let entries = match &self.backend {
            Backend::Mongo(_, coll) => {
                let find = coll
                    .find(mongo_filter(filter, cursor))
                    .sort(doc! {"created_at": -1, "_id": -1})
                    .limit(i64::from(limit) + 1);
                deadline(self.timeout, async move {
                    let docs: Vec<Document> = find.await?.try_collect().await?;
                    Ok::<_, mongodb::error::Error>(docs.iter().filter_map(mongo_entry).collect())
                })
                .await?
            }
            Backend::Sqlite(db) => {
                let rows: Vec<SqliteRow> = deadline(
                    self.timeout,
                    sqlite_select(filter, cursor, limit).build_query_as().fetch_all(&db.readers),
                )
                .await?;
                rows.into_iter().map(sqlite_entry).collect()
            }
        };
        Ok(page(entries, limit))
    }

    /// One entry by id; `None` when there is no such entry (or `id` is not an id).
    pub async fn get(&self, id: &str) -> Result<Option<LogEntry>, StoreError> {
        let Ok(oid) = ObjectId::parse_str(id) else { return Ok(None) };
        match &self.backend {
            Backend::Mongo(_, coll) => {
                let found = deadline(self.timeout, coll.find_one(doc! {"_id": oid})).await?;
                Ok(found.as_ref().and_then(mongo_entry))
            }
            Backend::Sqlite(db) => {
                let sql = format!("SELECT {SQLITE_COLUMNS} FROM logs WHERE id = ?1");
                let row: Option<SqliteRow> = deadline(
                    self.timeout,
                    sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(oid.to_hex()).fetch_optional(&db.readers),
                )
                .await?;
                Ok(row.map(sqlite_entry))
            }
        }
    }
}

/// The page query with only the conditions `filter` and `cursor` set, so that SQLite can use
/// the index of a condition (`name`, `request_id`); `?1 IS NULL OR name = ?1` forms would
/// make it walk every entry.
fn sqlite_select(
    filter: &LogFilter,
    cursor: Option<&LogCursor>,
    limit: u32,
) -> sqlx::QueryBuilder<sqlx::Sqlite> {
    let mut q = sqlx::QueryBuilder::new(format!("SELECT {SQLITE_COLUMNS} FROM logs WHERE 1 = 1"));
    for (column, value) in [
        ("name", filter.name.as_deref()),
        ("level", filter.level.map(LogLevel::as_str)),
        ("service", filter.service.as_deref()),
        ("request_id", filter.request_id.as_deref()),
        ("trace_id", filter.trace_id.as_deref()),
    ] {
        if let Some(value) = value {
            q.push(format_args!(" AND {column} = ")).push_bind(value);
        }
    }
    if let Some(since) = filter.since {
        q.push(" AND created_ms >= ").push_bind(millis(since));
    }
    if let Some(until) = filter.until {
        q.push(" AND created_ms < ").push_bind(millis(until));
    }
    if let Some(c) = cursor {
        q.push(" AND (created_ms < ").push_bind(c.created_ms);
        q.push(" OR (created_ms = ")
            .push_bind(c.created_ms)
            .push(" AND id < ")
            .push_bind(c.id.as_str())
            .push("))");
    }
    q.push(" ORDER BY created_ms DESC, id DESC LIMIT ").push_bind(i64::from(limit) + 1);
    q
}

async fn create_mongo_indexes(coll: &Collection<Document>, timeout: Duration) -> Result<(), StoreError> {
    let plain = |keys: Document| IndexModel::builder().keys(keys).build();
    let unique_event = IndexModel::builder()
        .keys(doc! {"event_id": 1})
        .options(
            IndexOptions::builder()
                .name("event_id_unique".to_owned())
                .unique(true)
                .partial_filter_expression(doc! {"event_id": {"$exists": true}})
                .build(),
        )
        .build();
    let models = vec![
        plain(doc! {"created_at": -1, "_id": -1}),
        plain(doc! {"name": 1, "created_at": -1}),
        plain(doc! {"service": 1, "created_at": -1}),
        plain(doc! {"level": 1, "created_at": -1}),
        plain(doc! {"request_id": 1, "created_at": -1}),
        IndexModel::builder()
            .keys(doc! {"trace_id": 1, "created_at": -1})
            .options(
                IndexOptions::builder()
                    .name("trace_id_created".to_owned())
                    .partial_filter_expression(doc! {"trace_id": {"$exists": true}})
                    .build(),
            )
            .build(),
        unique_event,
    ];
    deadline(timeout, coll.create_indexes(models)).await.map(drop)
}

fn mongo_doc(id: ObjectId, e: &NewLogEntry, now: bson::DateTime) -> Document {
    let mut d = doc! {
        "_id": id,
        "name": e.name(),
        "data": e.data(),
        "level": e.level().as_str(),
        "service": e.service(),
        "created_at": now,
        "updated_at": now,
    };
    if let Some(r) = e.request_id() {
        d.insert("request_id", r.as_str());
    }
    if let Some(ev) = e.event_id() {
        d.insert("event_id", ev);
    }
    if let Some(trace) = e.trace_id() {
        d.insert("trace_id", trace);
    }
    d
}

/// Ids already stored for these event ids.
async fn mongo_known_events(
    coll: &Collection<Document>,
    events: Vec<&str>,
) -> Result<HashMap<String, String>, mongodb::error::Error> {
    if events.is_empty() {
        return Ok(HashMap::new());
    }
    let docs: Vec<Document> = coll
        .find(doc! {"event_id": {"$in": events}})
        .projection(doc! {"_id": 1, "event_id": 1})
        .await?
        .try_collect()
        .await?;
    Ok(docs
        .iter()
        .filter_map(|d| Some((d.get_str("event_id").ok()?.to_owned(), d.get_object_id("_id").ok()?.to_hex())))
        .collect())
}

async fn mongo_insert(
    coll: &Collection<Document>,
    entries: &[NewLogEntry],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let now = bson::DateTime::from_millis(millis(now));
    let events: Vec<&str> = entries.iter().filter_map(NewLogEntry::event_id).collect();
    let mut known = mongo_known_events(coll, events).await?;
    let mut ids = Vec::with_capacity(entries.len());
    let mut docs = Vec::new();
    for e in entries {
        if let Some(existing) = e.event_id().and_then(|ev| known.get(ev)) {
            ids.push(existing.clone());
            continue;
        }
        let id = ObjectId::new();
        if let Some(ev) = e.event_id() {
            known.insert(ev.to_owned(), id.to_hex());
        }
        docs.push(mongo_doc(id, e, now));
        ids.push(id.to_hex());
    }
    if docs.is_empty() {
        return Ok(ids);
    }
    match coll.insert_many(docs).ordered(false).await {
        Ok(_) => Ok(ids),
        Err(err) => {
            let only_duplicates = matches!(&*err.kind, ErrorKind::InsertMany(e)
                if e.write_concern_error.is_none()
                    && e.write_errors.as_ref().is_some_and(|w| w.iter().all(|w| w.code == 11000)));
            if !only_duplicates {
                return Err(err.into());
            }
            // Another writer stored some of these events meanwhile: answer with its ids.
            let events: Vec<&str> = entries.iter().filter_map(NewLogEntry::event_id).collect();
            let stored = mongo_known_events(coll, events).await?;
            Ok(entries
                .iter()
                .zip(ids)
                .map(|(e, id)| e.event_id().and_then(|ev| stored.get(ev).cloned()).unwrap_or(id))
                .collect())
        }
    }
}

/// Rows per `INSERT` statement: 10 bound values each, well under SQLite's 32,766 variables.
const SQLITE_ROWS_PER_STATEMENT: usize = 1_000;

/// Store a batch in as few round trips to sqlx's SQLite worker thread as possible: one
/// multi-row `INSERT ... RETURNING` per [`SQLITE_ROWS_PER_STATEMENT`] rows (a batch that
/// fits is one statement, hence one implicit transaction and one fsync), then, only when some
/// rows repeated a stored `event_id`, one `SELECT` for the ids those events already have.
///
/// A profile of the first version (one `INSERT` per row inside `BEGIN`/`COMMIT`) showed the
/// writer spending its time handing each statement to the worker thread and back, not in
/// SQLite: `docs/benchmarks.md`.
async fn sqlite_insert(
    pool: &SqlitePool,
    entries: &[NewLogEntry],
    now: DateTime<Utc>,
) -> Result<Vec<String>, sqlx::Error> {
    let now = millis(now);
    let ids: Vec<String> = entries.iter().map(|_| ObjectId::new().to_hex()).collect();
    let mut inserted = HashSet::with_capacity(entries.len());
    let chunks = entries.chunks(SQLITE_ROWS_PER_STATEMENT).zip(ids.chunks(SQLITE_ROWS_PER_STATEMENT));
    // A failed write closes its connection (`Writer`): after some errors SQLite has rolled
    // back on its own and the connection's transaction state is no longer what sqlx believes.
    let mut conn = crate::sqlite::Writer::acquire(pool).await?;
    if entries.len() <= SQLITE_ROWS_PER_STATEMENT {
        for (rows, row_ids) in chunks {
            inserted.extend(sqlite_insert_rows(&mut conn, rows, row_ids, now).await?);
        }
    } else {
        // Dropped before the commit (a passed deadline), the transaction rolls back.
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        for (rows, row_ids) in chunks {
            inserted.extend(sqlite_insert_rows(&mut tx, rows, row_ids, now).await?);
        }
        tx.commit().await?;
    }
    conn.succeeded();
    if inserted.len() == entries.len() {
        return Ok(ids);
    }
    // Some rows repeated an event already stored (or earlier in this batch): answer with the
    // stored entry's id, as for a redelivery. Asked on the writer held above: the pool has one
    // writer, so asking the pool would wait for it until the deadline.
    let mut known =
        sqlx::QueryBuilder::<sqlx::Sqlite>::new("SELECT event_id, id FROM logs WHERE event_id IN ");
    let repeated: Vec<&str> = entries
        .iter()
        .zip(&ids)
        .filter(|(_, id)| !inserted.contains(id.as_str()))
        .filter_map(|(e, _)| e.event_id())
        .collect();
    push_padded_in(&mut known, &repeated);
    let stored: HashMap<String, String> =
        known.build_query_as::<(String, String)>().fetch_all(&mut *conn).await?.into_iter().collect();
    entries
        .iter()
        .zip(ids)
        .map(|(e, id)| {
            if inserted.contains(id.as_str()) {
                return Ok(id);
            }
            e.event_id().and_then(|event| stored.get(event).cloned()).ok_or(sqlx::Error::RowNotFound)
        })
        .collect()
}

/// One multi-row `INSERT ... ON CONFLICT(event_id) DO NOTHING RETURNING id`: the ids of the
/// rows it stored (a row repeating a stored `event_id` is not among them); its rows padded by
/// [`push_padded_values`].
async fn sqlite_insert_rows(
    conn: &mut sqlx::SqliteConnection,
    rows: &[NewLogEntry],
    ids: &[String],
    now: i64,
) -> Result<Vec<String>, sqlx::Error> {
    let mut insert = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
        "INSERT INTO logs (id, name, data, level, service, request_id, event_id, trace_id, created_ms, updated_ms) ",
    );
    let traces: Vec<Option<String>> = rows.iter().map(NewLogEntry::trace_id).collect();
    push_padded_values(&mut insert, rows.iter().zip(ids).zip(traces), 10, |row, ((e, id), trace)| {
        row.push_bind(id.as_str())
            .push_bind(e.name())
            .push_bind(e.data())
            .push_bind(e.level().as_str())
            .push_bind(e.service())
            .push_bind(e.request_id().map(RequestId::as_str))
            .push_bind(e.event_id())
            .push_bind(trace)
            .push_bind(now)
            .push_bind(now);
    });
    insert.push(" ON CONFLICT(event_id) DO NOTHING RETURNING id");
    let returned: Vec<(String,)> = insert.build_query_as().fetch_all(conn).await?;
    Ok(returned.into_iter().map(|(id,)| id).collect())
}
