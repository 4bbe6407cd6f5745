//! Messages of the logger service.
//!
//! [`WriteLog`] is answered only after the entry is durably stored, so an `Ok` is never
//! lost. An entry with an `event_id` is stored at most once: writing the same event id again
//! answers `Ok` with the id of the entry already stored (the event listener relies on this
//! to make redelivery harmless).

use actix::Message;
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
