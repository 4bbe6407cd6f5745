//! Messages of the logger service.
//!
//! [`WriteLog`] is answered only after the entry is durably stored, so an `Ok` is never
//! lost. An entry with an `event_id` is stored at most once: writing the same event id again
//! answers `Ok` with the id of the entry already stored (the event listener relies on this
//! to make redelivery harmless).

use actix::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{RequestId, ServiceError};

/// Severity of a log entry; events are routed as `log.<LEVEL>`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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

/// Longest `name`, `service` or `event_id` of an entry, in bytes.
pub const MAX_FIELD_LEN: usize = 256;

/// A log entry to store: the Go platform's `{name, data}` plus Troupe's fields.
///
/// Checked once, when built ([`NewLogEntry::new`] and the `with_*` setters, or deserialised):
/// `name`, `service` and `event_id` are at most [`MAX_FIELD_LEN`] bytes, and the request id
/// is a well-formed [`RequestId`]. Serialised as the logger's wire JSON
/// (`{"name","data","level","service","request_id"?,"event_id"?}`).
///
/// It also holds the span it was made in ([`Span::current`](tracing::Span::current) at
/// [`NewLogEntry::new`]): the logger traces its storing as that span's child and stores the
/// span's trace id beside the request id. Two entries are equal when their fields are (the
/// span is not compared).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "EntryFields")]
pub struct NewLogEntry {
    name: String,
    data: String,
    level: LogLevel,
    service: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<RequestId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    event_id: Option<String>,
    #[serde(skip)]
    span: tracing::Span,
    /// The trace id, once known (taken from the span it was made in when it moves into the
    /// logger's span: the same trace, and that span need not start early to say so).
    #[serde(skip)]
    trace_id: Option<String>,
}

impl PartialEq for NewLogEntry {
    fn eq(&self, other: &Self) -> bool {
        (&self.name, &self.data, self.level, &self.service, &self.request_id, &self.event_id)
            == (&other.name, &other.data, other.level, &other.service, &other.request_id, &other.event_id)
    }
}

/// `Invalid` unless `value` is at most [`MAX_FIELD_LEN`] bytes.
fn bounded(field: &str, value: String) -> Result<String, ServiceError> {
    if value.len() > MAX_FIELD_LEN {
        return Err(ServiceError::Invalid(format!("\"{field}\" must be at most {MAX_FIELD_LEN} bytes")));
    }
    Ok(value)
}

impl NewLogEntry {
    /// An `INFO` entry `name` with free text `data`, from no service in particular;
    /// `Invalid` when `name` is too long.
    pub fn new(name: impl Into<String>, data: impl Into<String>) -> Result<Self, ServiceError> {
        Ok(Self {
            name: bounded("name", name.into())?,
            data: data.into(),
            level: LogLevel::default(),
            service: String::new(),
            request_id: None,
            event_id: None,
            span: tracing::Span::current(),
            trace_id: None,
        })
    }

    /// With severity `level`.
    pub fn with_level(mut self, level: LogLevel) -> Self {
        self.level = level;
        self
    }

    /// Written by `service`; `Invalid` when the name is too long.
    pub fn with_service(mut self, service: impl Into<String>) -> Result<Self, ServiceError> {
        self.service = bounded("service", service.into())?;
        Ok(self)
    }

    /// Caused by the request `id`.
    pub fn with_request_id(mut self, id: Option<RequestId>) -> Self {
        self.request_id = id;
        self
    }

    /// Stored at most once per event `id`; `Invalid` when the id is too long.
    pub fn with_event_id(mut self, id: Option<String>) -> Result<Self, ServiceError> {
        self.event_id = id.map(|id| bounded("event_id", id)).transpose()?;
        Ok(self)
    }

    /// What happened (`event`, `authentication`, ...).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Free text (a string, as in the Go platform).
    pub fn data(&self) -> &str {
        &self.data
    }

    /// Severity.
    pub fn level(&self) -> LogLevel {
        self.level
    }

    /// Which service wrote it (`broker`, `auth`, `listener`, ...).
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The request that caused it, to follow a request across services.
    pub fn request_id(&self) -> Option<&RequestId> {
        self.request_id.as_ref()
    }

    /// The event it came from, if any.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The same entry, traced as part of `span` from now on (the logger's `WriteLog` span).
    pub fn in_span(mut self, span: tracing::Span) -> Self {
        if self.trace_id.is_none() {
            self.trace_id = crate::telemetry::trace_id(&self.span);
        }
        self.span = span;
        self
    }

    /// The span it was made in.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// The trace it belongs to (32 hex digits), when it was made in a traced span.
    pub fn trace_id(&self) -> Option<String> {
        self.trace_id.clone().or_else(|| crate::telemetry::trace_id(&self.span))
    }
}

/// [`NewLogEntry`]'s wire form before it is checked.
#[derive(Deserialize)]
struct EntryFields {
    name: String,
    data: String,
    #[serde(default)]
    level: LogLevel,
    #[serde(default)]
    service: String,
    #[serde(default)]
    request_id: Option<RequestId>,
    #[serde(default)]
    event_id: Option<String>,
}

impl TryFrom<EntryFields> for NewLogEntry {
    type Error = ServiceError;

    fn try_from(f: EntryFields) -> Result<Self, ServiceError> {
        NewLogEntry::new(f.name, f.data)?
            .with_level(f.level)
            .with_service(f.service)?
            .with_request_id(f.request_id)
            .with_event_id(f.event_id)
    }
}

/// Store one entry; answers with the stored entry's id once it is durable.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, ServiceError>")]
pub struct WriteLog(pub NewLogEntry);

/// A stored log entry, as `GET /logs` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// The trace it was written in (32 hex digits), if known.
    #[serde(default)]
    pub trace_id: Option<String>,
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
    /// Exact trace id.
    #[serde(default)]
    pub trace_id: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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

    #[test]
    fn entries_are_checked_once_built_and_keep_their_wire_form() {
        let long = "x".repeat(MAX_FIELD_LEN + 1);
        assert!(NewLogEntry::new(long.as_str(), "d").is_err());
        let entry = NewLogEntry::new("n", "d").and_then(|e| e.with_service("broker"));
        assert!(entry.clone().and_then(|e| e.with_service(long.as_str())).is_err());
        assert!(entry.clone().and_then(|e| e.with_event_id(Some(long.clone()))).is_err());
        let entry = entry
            .and_then(|e| e.with_event_id(Some("evt-1".into())))
            .map(|e| e.with_level(LogLevel::Error).with_request_id(RequestId::parse("req-1")))
            .expect("valid");
        let json = serde_json::to_value(&entry).unwrap_or_default();
        assert_eq!(
            json,
            serde_json::json!({"name": "n", "data": "d", "level": "ERROR", "service": "broker",
                               "request_id": "req-1", "event_id": "evt-1"})
        );
        assert_eq!(serde_json::from_value::<NewLogEntry>(json).ok(), Some(entry));
        let minimal = serde_json::json!({"name": "n", "data": "d"});
        let read = serde_json::from_value::<NewLogEntry>(minimal).expect("defaults");
        assert_eq!((read.level(), read.service(), read.request_id()), (LogLevel::Info, "", None));
        for bad in [
            serde_json::json!({"name": long, "data": "d"}),
            serde_json::json!({"name": "n", "data": "d", "request_id": "two words"}),
        ] {
            assert!(serde_json::from_value::<NewLogEntry>(bad).is_err());
        }
    }
}
