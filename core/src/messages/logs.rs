//! Messages of the logger service.
//!
//! [`WriteLog`] is answered only after the entry is durably stored, so an `Ok` is never
//! lost. An entry with an `event_id` is stored at most once: writing the same event id again
//! answers `Ok` with the id of the entry already stored (the event listener relies on this
//! to make redelivery harmless).

use actix::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// Severity of a log entry; events are routed as `log.<LEVEL>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Diagnostic detail.
    Debug,
    /// Normal operation (the default, as in the Go platform).
    #[default]
    Info,
    /// Something unexpected but handled.
    Warning,
    /// A failure.
    Error,
}

impl LogLevel {
    /// `INFO`, `WARNING`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warning => "WARNING",
            Self::Error => "ERROR",
        }
    }

    /// Parse `info`, `INFO`, `warn`, `warning`, ... (case-insensitive).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Self::Debug),
            "INFO" => Some(Self::Info),
            "WARN" | "WARNING" => Some(Self::Warning),
            "ERROR" => Some(Self::Error),
            _ => None,
        }
    }
}

/// A log entry to store: the Go platform's `{name, data}` plus Troupe's fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewLogEntry {
    /// What happened (`event`, `authentication`, ...).
    pub name: String,
    /// Free text (a string, as in the Go platform).
    pub data: String,
    /// Severity.
    #[serde(default)]
    pub level: LogLevel,
    /// Which service wrote it (`broker`, `auth`, `listener`, ...).
    #[serde(default)]
    pub service: String,
    /// The request id of the HTTP request that caused it, to follow a request across services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Set when the entry came from an event: stored at most once per id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Store one entry; answers with the stored entry's id once it is durable.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, ServiceError>")]
pub struct WriteLog(pub NewLogEntry);

/// A stored log entry, as `GET /logs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    /// Store id (a 24-hex-digit ObjectId in both stores).
    pub id: String,
    /// What happened.
    pub name: String,
    /// Free text.
    pub data: String,
    /// Severity.
    pub level: LogLevel,
    /// Which service wrote it.
    pub service: String,
    /// The request that caused it, if known.
    pub request_id: Option<String>,
    /// The event it came from, if any.
    pub event_id: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Last change (equal to `created_at`: entries are never edited).
    pub updated_at: DateTime<Utc>,
}

/// Which entries a query selects; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LogFilter {
    /// Exact name.
    pub name: Option<String>,
    /// Exact level.
    pub level: Option<LogLevel>,
    /// Exact service.
    pub service: Option<String>,
    /// Exact request id.
    pub request_id: Option<String>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// Where a page starts: strictly older than this entry (newest first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCursor {
    /// `created_at` of the last entry of the previous page, in milliseconds.
    pub created_ms: i64,
    /// Its id.
    pub id: String,
}

impl LogCursor {
    /// The opaque text form handed to clients (`<millis>-<id>`).
    pub fn encode(&self) -> String {
        format!("{}-{}", self.created_ms, self.id)
    }

    /// Parse the text form; `BadRequest` when it is not one.
    pub fn decode(raw: &str) -> Result<Self, ServiceError> {
        let bad = || ServiceError::BadRequest("invalid cursor".into());
        let (ms, id) = raw.split_once('-').ok_or_else(bad)?;
        let created_ms = ms.parse().map_err(|_| bad())?;
        if id.len() != 24 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        Ok(Self { created_ms, id: id.to_ascii_lowercase() })
    }
}

/// Largest page `QueryLogs` returns.
pub const MAX_LOG_PAGE: u32 = 500;

/// List entries matching a filter, newest first.
#[derive(Debug, Clone, Message, Serialize, Deserialize)]
#[rtype(result = "Result<LogPage, ServiceError>")]
pub struct QueryLogs {
    /// Which entries.
    pub filter: LogFilter,
    /// Page size (clamped to 1..=[`MAX_LOG_PAGE`]).
    pub limit: u32,
    /// Continue after this entry.
    pub cursor: Option<LogCursor>,
}

/// One page of entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPage {
    /// Newest first.
    pub entries: Vec<LogEntry>,
    /// Pass back as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// Fetch one entry by id (`NotFound` otherwise).
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<LogEntry, ServiceError>")]
pub struct GetLog(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = LogCursor { created_ms: 1_700_000_000_123, id: "65a1b2c3d4e5f60718293a4b".into() };
        assert_eq!(LogCursor::decode(&c.encode()), Ok(c));
        for bad in ["", "x", "1-zz", "abc-65a1b2c3d4e5f60718293a4b", "1-65a1b2c3"] {
            assert!(LogCursor::decode(bad).is_err(), "{bad:?} accepted");
        }
    }
}
