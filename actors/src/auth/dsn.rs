//! Where users live: PostgreSQL from `DSN`, or SQLite in the data directory.
//!
//! The Go platform's `DSN` is a libpq key=value string
//! (`host=postgres port=5432 user=postgres password=password dbname=users sslmode=disable`);
//! sqlx parses only URLs, so key=value strings are read here (libpq's quoting rules: values
//! may be single-quoted, with `\'` and `\\` escapes). `postgres://` URLs go to sqlx as they are.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The database the auth actor connects to.
#[derive(Debug, Clone)]
pub enum DbTarget {
    /// A PostgreSQL server.
    Postgres(Box<PgConnectOptions>),
    /// An SQLite file, created on first start.
    Sqlite(PathBuf),
}

impl DbTarget {
    /// PostgreSQL when `dsn` is given, else `users.db` in `data_dir`.
    /// Errors name the setting at fault.
    pub fn new(dsn: Option<&str>, data_dir: &Path) -> Result<Self, String> {
        match dsn {
            Some(dsn) => parse_dsn(dsn).map(|o| Self::Postgres(Box::new(o))),
            None => Ok(Self::Sqlite(data_dir.join("users.db"))),
        }
    }
}

/// Parse a libpq key=value string or a `postgres://` URL.
pub fn parse_dsn(dsn: &str) -> Result<PgConnectOptions, String> {
    let dsn = dsn.trim();
    if dsn.starts_with("postgres://") || dsn.starts_with("postgresql://") {
        return PgConnectOptions::from_str(dsn).map_err(|e| format!("DSN: invalid URL: {e}"));
    }
    let mut opts = PgConnectOptions::new_without_pgpass().host("localhost");
    let mut pairs = KeyValues { rest: dsn };
    while let Some(pair) = pairs.next_pair()? {
        opts = match pair {
            ("host" | "hostaddr", v) => opts.host(&v),
            ("port", v) => opts.port(v.parse().map_err(|_| format!("DSN: invalid port {v:?}"))?),
            ("user", v) => opts.username(&v),
            ("password", v) => opts.password(&v),
            ("dbname", v) => opts.database(&v),
            ("sslmode", v) => {
                opts.ssl_mode(PgSslMode::from_str(&v).map_err(|_| format!("DSN: invalid sslmode {v:?}"))?)
            }
            ("application_name", v) => opts.application_name(&v),
            ("sslrootcert", v) => opts.ssl_root_cert(v.as_str()),
            ("options", v) => opts.options([("options", v.as_str())]),
            // Accepted for compatibility; Troupe applies its own timeouts (DB_TIMEOUT) and UTC.
            ("timezone" | "connect_timeout", _) => opts,
            (key, _) => return Err(format!("DSN: unknown parameter {key:?}")),
        };
    }
    Ok(opts)
}

struct KeyValues<'a> {
    rest: &'a str,
}

impl<'a> KeyValues<'a> {
    fn next_pair(&mut self) -> Result<Option<(&'a str, String)>, String> {
        self.rest = self.rest.trim_start();
        if self.rest.is_empty() {
            return Ok(None);
        }
        let eq =
            self.rest.find('=').ok_or_else(|| format!("DSN: expected key=value near {:?}", self.rest))?;
        let key = self.rest[..eq].trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("DSN: expected key=value near {:?}", self.rest));
        }
        self.rest = self.rest[eq + 1..].trim_start();
        let mut value = String::new();
        let mut chars = self.rest.char_indices();
        if self.rest.starts_with('\'') {
            chars.next();
            let mut closed = None;
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next().map(|(_, c)| c)),
                    '\'' => {
                        closed = Some(i + 1);
                        break;
                    }
                    c => value.push(c),
                }
            }
            let end = closed.ok_or_else(|| format!("DSN: unterminated quote in {key:?}"))?;
            self.rest = &self.rest[end..];
        } else {
            let end = self.rest.find(char::is_whitespace).unwrap_or(self.rest.len());
            value.push_str(&self.rest[..end]);
            self.rest = &self.rest[end..];
        }
        Ok(Some((key, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_go_platform_dsn() {
        let o = parse_dsn(
            "host=postgres port=5433 user=postgres password='pa ss\\'w' dbname=users sslmode=disable timezone=UTC connect_timeout=5",
        )
        .expect("valid DSN");
        assert_eq!(o.get_host(), "postgres");
        assert_eq!(o.get_port(), 5433);
        assert_eq!(o.get_username(), "postgres");
        assert_eq!(o.get_database(), Some("users"));
    }

    #[test]
    fn reads_urls() {
        let o = parse_dsn("postgres://u:p@db.example:6543/app").expect("valid URL");
        assert_eq!((o.get_host(), o.get_port(), o.get_database()), ("db.example", 6543, Some("app")));
    }

    #[test]
    fn names_what_is_wrong() {
        for (dsn, needle) in [
            ("host=x port=abc", "invalid port"),
            ("host", "expected key=value"),
            ("password='open", "unterminated quote"),
            ("colour=blue", "unknown parameter"),
            ("postgres://[bad", "invalid URL"),
        ] {
            let err = parse_dsn(dsn).expect_err(dsn);
            assert!(err.starts_with("DSN: ") && err.contains(needle), "{dsn}: {err}");
        }
    }
}
