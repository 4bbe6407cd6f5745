//! The request id that ties one user request together across services.
//!
//! Every HTTP server adopts a well-formed `x-request-id` from the caller or makes a fresh
//! one, echoes it on the reply and carries it on: in the messages its actors get
//! ([`Authenticate`](crate::messages::Authenticate), [`PublishEvent`](crate::messages::PublishEvent),
//! [`SendMail`](crate::messages::SendMail), log entries), in the `x-request-id` header of
//! calls to other services, and in the body of published events. `GET /logs?request_id=`
//! then finds everything one request caused, in whichever service it happened.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The header the id travels in.
pub const HEADER: &str = "x-request-id";

/// Longest id accepted from outside.
const MAX_LEN: usize = 128;

/// A request id: 1 to 128 characters of ASCII letters, digits and `-_.:/+=@`, so it is
/// always a valid header value and safe in logs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct RequestId(String);

impl RequestId {
    /// Accept `raw` if it is well formed; `None` otherwise (the caller then makes a new one).
    pub fn parse(raw: &str) -> Option<Self> {
        let ok = |c: char| c.is_ascii_alphanumeric() || "-_.:/+=@".contains(c);
        (!raw.is_empty() && raw.len() <= MAX_LEN && raw.chars().all(ok)).then(|| Self(raw.to_owned()))
    }

    /// A fresh id: a time-ordered UUID (version 7: 48 bits of milliseconds, then random), so
    /// the log store's `request_id` index takes new ids at its end instead of on random pages
    /// (docs/benchmarks.md).
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for RequestId {
    type Error = String;

    fn try_from(raw: String) -> Result<Self, String> {
        Self::parse(&raw).ok_or_else(|| format!("not a request id: {raw:?}"))
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> Self {
        id.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_formed_ids_are_adopted_and_others_refused() {
        for good in ["abc", "7f1c0b9e-1d2a-4c55-9a43-3f1a2b3c4d5e", "req_1.2:3/4+5=6@x"] {
            assert_eq!(RequestId::parse(good).map(String::from).as_deref(), Some(good));
        }
        let long = "a".repeat(129);
        for bad in ["", "two words", "new\r\nline", "ünïcode", "quote\"", long.as_str()] {
            assert_eq!(RequestId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn generated_ids_are_well_formed_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()), Some(a));
    }
}
