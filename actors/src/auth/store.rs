//! The user store: one set of queries over PostgreSQL or SQLite (sqlx), with migrations for
//! both compiled into the binary.
//!
//! Every operation has a deadline (`DB_TIMEOUT`); a timeout or a socket/pool failure is a
//! [`StoreError::Unavailable`], which makes the auth actor reconnect.

use std::time::Duration;

use chrono::{NaiveDateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{PgPool, SqlitePool};
use troupe_core::domain::User;

use super::dsn::DbTarget;
use crate::supervision::Misconfigured;

/// A pool on either backend.
#[derive(Clone, Debug)]
enum Db {
    Pg(PgPool),
    Sqlite(SqlitePool),
}

/// Run the same query text on whichever pool is open.
macro_rules! on_db {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            Db::Pg($pool) => $body,
            Db::Sqlite($pool) => $body,
        }
    };
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached (socket error, pool exhausted, deadline passed).
    #[error("database unreachable: {0}")]
    Unavailable(String),
    /// A unique constraint (the email) was violated.
    #[error("duplicate email")]
    Duplicate,
    /// Anything else (a bug or a schema problem).
    #[error("database error: {0}")]
    Other(sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        match err {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Duplicate,
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => Self::Unavailable(err.to_string()),
            other => Self::Other(other),
        }
    }
}

/// A user row, including the password hash (which never leaves this crate's actors).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRecord {
    id: i32,
    email: String,
    first_name: String,
    last_name: String,
    /// bcrypt hash.
    pub password: String,
    user_active: i32,
    is_admin: i32,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl UserRecord {
    /// The public view of the row.
    pub fn user(&self) -> User {
        User {
            id: self.id,
            email: self.email.clone(),
            first_name: self.first_name.clone(),
            last_name: self.last_name.clone(),
            active: self.user_active,
            admin: self.is_admin != 0,
            created_at: self.created_at.and_utc(),
            updated_at: self.updated_at.and_utc(),
        }
    }

    /// Whether the account may log in.
    pub fn is_active(&self) -> bool {
        self.user_active != 0
    }
}

const COLUMNS: &str = "id, email, COALESCE(first_name, '') AS first_name, \
    COALESCE(last_name, '') AS last_name, password, user_active, is_admin, created_at, updated_at";

/// The first row a `... RETURNING` statement gave.
///
/// Those statements are read with `fetch_all`, never `fetch_one`/`fetch_optional`: SQLite
/// hands out the returned rows before the statement's implicit transaction commits, and the
/// commit happens when the statement is stepped to its end. `fetch_one` stops after the first
/// row and the statement is then reset, which commits — or, on a full disk, rolls back — with
/// the outcome thrown away: the user was answered 201 with an id and was never stored (found
/// by `make chaos`, disk-full scenario). `fetch_all` steps to the end, so a failed commit is an
/// error.
fn first(rows: Vec<UserRecord>) -> Option<UserRecord> {
    rows.into_iter().next()
}

/// A new user's row.
pub struct NewUserRow<'a> {
    /// Normalised email.
    pub email: &'a str,
    /// First name.
    pub first_name: &'a str,
    /// Last name.
    pub last_name: &'a str,
    /// bcrypt hash.
    pub password_hash: &'a str,
    /// Admin role.
    pub admin: bool,
}

/// Handle on the users table; cheap to clone.
#[derive(Clone, Debug)]
pub struct UserStore {
    db: Db,
    timeout: Duration,
}

/// A connection error, marked [`Misconfigured`] when PostgreSQL refused for a reason
/// retrying will not fix: a wrong password (28P01), a user or host not allowed (28000), a
/// database that does not exist (3D000).
fn postgres_refusal(err: sqlx::Error) -> anyhow::Error {
    let code = match &err {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    };
    let what = match code.as_deref() {
        Some("28P01") => "PostgreSQL refused the password in DSN",
        Some("28000") => "PostgreSQL refused the user or host in DSN",
        Some("3D000") => "the database named in DSN does not exist",
        _ => return err.into(),
    };
    let code = code.unwrap_or_default();
    anyhow::Error::new(err).context(Misconfigured(format!("{what} (SQLSTATE {code})")))
}

impl UserStore {
    /// Open a pool, run the migrations, and check the connection.
    pub async fn connect(target: &DbTarget, max_connections: u32, timeout: Duration) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let db = match target {
            DbTarget::Postgres(opts) => {
                let pool = PgPoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(timeout)
                    .connect_with((**opts).clone());
                let pool = tokio::time::timeout(timeout, pool)
                    .await
                    .context("connecting to PostgreSQL timed out")?
                    .map_err(postgres_refusal)
                    .context("connecting to PostgreSQL")?;
                let migrate = sqlx::migrate!("./migrations/postgres").run(&pool);
                tokio::time::timeout(timeout * 4, migrate)
                    .await
                    .context("migrating PostgreSQL timed out")?
                    .context("migrating PostgreSQL")?;
                Db::Pg(pool)
            }
            DbTarget::Sqlite(path) => {
                let opts = SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .busy_timeout(timeout);
                let pool = SqlitePoolOptions::new()
                    .max_connections(max_connections)
                    .acquire_timeout(timeout)
                    .connect_with(opts)
                    .await
                    .with_context(|| format!("opening {}", path.display()))?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&pool)
                    .await
                    .with_context(|| format!("migrating {}", path.display()))?;
                Db::Sqlite(pool)
            }
        };
        let store = Self { db, timeout };
        store.ping().await?;
        Ok(store)
    }

    async fn deadline<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, op).await {
            Ok(res) => res.map_err(StoreError::from),
            Err(_) => Err(StoreError::Unavailable(format!("no answer within {:?}", self.timeout))),
        }
    }

    /// A round trip to the database.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.deadline(async { on_db!(&self.db, p => sqlx::query("SELECT 1").execute(p).await.map(drop)) })
            .await
    }

    /// The user with this (normalised) email.
    pub async fn find_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(email).fetch_optional(p).await)
        })
        .await
    }

    /// The user with this id.
    pub async fn get(&self, id: i32) -> Result<Option<UserRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(p).await)
        })
        .await
    }

    /// Up to `limit` users with an id above `after`, by id.
    pub async fn list(&self, after: i32, limit: u32) -> Result<Vec<UserRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id > $1 ORDER BY id LIMIT $2");
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(after).bind(i64::from(limit)).fetch_all(p).await)
        })
        .await
    }

    /// Insert a user; `Duplicate` when the email exists.
    pub async fn insert(&self, new: NewUserRow<'_>) -> Result<UserRecord, StoreError> {
        let now = Utc::now().naive_utc();
        let sql = format!(
            "INSERT INTO users (email, first_name, last_name, password, user_active, is_admin, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 1, $5, $6, $6) RETURNING {COLUMNS}"
        );
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(new.email).bind(new.first_name).bind(new.last_name).bind(new.password_hash)
                .bind(i32::from(new.admin)).bind(now).fetch_all(p).await)
            .and_then(|rows| first(rows).ok_or(sqlx::Error::RowNotFound))
        })
        .await
    }

    /// Change profile fields (`None` keeps the current value); `Ok(None)` when no such user.
    pub async fn update_profile(
        &self,
        id: i32,
        email: Option<&str>,
        first_name: Option<&str>,
        last_name: Option<&str>,
    ) -> Result<Option<UserRecord>, StoreError> {
        let now = Utc::now().naive_utc();
        let sql = format!(
            "UPDATE users SET email = COALESCE($2, email), first_name = COALESCE($3, first_name), \
             last_name = COALESCE($4, last_name), updated_at = $5 WHERE id = $1 RETURNING {COLUMNS}"
        );
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id).bind(email).bind(first_name).bind(last_name).bind(now).fetch_all(p).await)
            .map(first)
        })
        .await
    }

    /// Activate or deactivate; `Ok(None)` when no such user.
    pub async fn set_active(&self, id: i32, active: bool) -> Result<Option<UserRecord>, StoreError> {
        let now = Utc::now().naive_utc();
        let sql =
            format!("UPDATE users SET user_active = $2, updated_at = $3 WHERE id = $1 RETURNING {COLUMNS}");
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(id).bind(i32::from(active)).bind(now).fetch_all(p).await)
            .map(first)
        })
        .await
    }

    /// Replace the password hash; `false` when no such user.
    pub async fn set_password(&self, id: i32, hash: &str) -> Result<bool, StoreError> {
        let now = Utc::now().naive_utc();
        let sql = "UPDATE users SET password = $2, updated_at = $3 WHERE id = $1";
        self.deadline(async {
            on_db!(&self.db, p => sqlx::query(sql).bind(id).bind(hash).bind(now).execute(p).await
                .map(|done| done.rows_affected() > 0))
        })
        .await
    }
}
