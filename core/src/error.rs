//! [`ServiceError`]: what can go wrong across a service boundary, in client-safe words.
//!
//! Its `Display` is what a client reads; causes (SQL errors, socket errors) are logged where
//! they happen and never carried here. Adapters map it to a status with [`ServiceError::status`].

use serde::{Deserialize, Serialize};

/// An error a caller of a service may see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum ServiceError {
    /// The service or its backend cannot serve right now (HTTP 503).
    #[error("{0} unavailable")]
    Unavailable(String),
    /// A configured limit is reached (a full queue): try again later (HTTP 503). The
    /// message says which limit.
    #[error("{0}")]
    Overloaded(String),
    /// Too many attempts from one client or for one account: retry after this many seconds
    /// (HTTP 429 with `Retry-After`).
    #[error("too many requests; retry in {0} s")]
    RateLimited(u64),
    /// Wrong email or password, or an inactive account (HTTP 401).
    #[error("invalid credentials")]
    InvalidCredentials,
    /// Missing, expired or forged bearer token (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// Authenticated but not allowed (HTTP 403).
    #[error("forbidden")]
    Forbidden,
    /// The request could not be understood (HTTP 400).
    #[error("{0}")]
    BadRequest(String),
    /// The request was understood but a value is invalid (HTTP 422).
    #[error("{0}")]
    Invalid(String),
    /// No such resource (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The resource already exists (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// The body is larger than the limit (HTTP 413).
    #[error("{0}")]
    PayloadTooLarge(String),
    /// The body's content type is not accepted (HTTP 415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Something failed inside the service; details are in its logs (HTTP 500).
    #[error("internal error")]
    Internal,
}

impl ServiceError {
    /// The HTTP status this error is reported with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Unavailable(_) | Self::Overloaded(_) => 503,
            Self::RateLimited(_) => 429,
            Self::InvalidCredentials | Self::Unauthorized(_) => 401,
            Self::Forbidden => 403,
            Self::BadRequest(_) => 400,
            Self::Invalid(_) => 422,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Internal => 500,
        }
    }

    /// `Unavailable` for the named service.
    pub fn unavailable(service: &str) -> Self {
        Self::Unavailable(service.to_owned())
    }

    /// The variant's name in `snake_case` (`invalid_credentials`, `unavailable`, ...), sent as
    /// the `kind` of failure envelopes so a caller can rebuild the same variant.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable(_) => "unavailable",
            Self::Overloaded(_) => "overloaded",
            Self::RateLimited(_) => "rate_limited",
            Self::InvalidCredentials => "invalid_credentials",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest(_) => "bad_request",
            Self::Invalid(_) => "invalid",
            Self::NotFound(_) => "not_found",
            Self::Conflict(_) => "conflict",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Internal => "internal",
        }
    }

    /// The error a remote service reported as `kind` with `message`; `None` for a kind this
    /// version does not know. `Unavailable` names `service`, the one that was called.
    pub fn from_kind(kind: &str, message: String, service: &str) -> Option<Self> {
        Some(match kind {
            "unavailable" => Self::unavailable(service),
            "overloaded" => Self::Overloaded(message),
            // The message carries the wait ("... retry in N s").
            "rate_limited" => {
                Self::RateLimited(message.rsplit(' ').nth(1).and_then(|n| n.parse().ok()).unwrap_or(1))
            }
            "invalid_credentials" => Self::InvalidCredentials,
            "unauthorized" => Self::Unauthorized(message),
            "forbidden" => Self::Forbidden,
            "bad_request" => Self::BadRequest(message),
            "invalid" => Self::Invalid(message),
            "not_found" => Self::NotFound(message),
            "conflict" => Self::Conflict(message),
            "payload_too_large" => Self::PayloadTooLarge(message),
            "unsupported_media_type" => Self::UnsupportedMediaType(message),
            "internal" => Self::Internal,
            _ => return None,
        })
    }

    /// One error of every variant (for tests that must cover them all).
    pub fn every_variant() -> [Self; 13] {
        [
            Self::unavailable("logger"),
            Self::Overloaded("event queue full".into()),
            Self::RateLimited(7),
            Self::InvalidCredentials,
            Self::Unauthorized("token expired".into()),
            Self::Forbidden,
            Self::BadRequest("unknown action".into()),
            Self::Invalid("bad email".into()),
            Self::NotFound("no such user".into()),
            Self::Conflict("email taken".into()),
            Self::PayloadTooLarge("body too large".into()),
            Self::UnsupportedMediaType("expected a JSON body".into()),
            Self::Internal,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_contract() {
        let cases = [
            (ServiceError::unavailable("auth"), 503, "auth unavailable"),
            (ServiceError::InvalidCredentials, 401, "invalid credentials"),
            (ServiceError::BadRequest("unknown action".into()), 400, "unknown action"),
            (ServiceError::Invalid("bad email".into()), 422, "bad email"),
            (ServiceError::Conflict("email taken".into()), 409, "email taken"),
            (ServiceError::Internal, 500, "internal error"),
        ];
        for (err, status, text) in cases {
            assert_eq!(err.status(), status, "{err:?}");
            assert_eq!(err.to_string(), text);
        }
    }

    #[test]
    fn every_variant_is_rebuilt_from_its_kind_and_message() {
        for err in ServiceError::every_variant() {
            let json = serde_json::to_value(&err).unwrap_or_default();
            assert_eq!(json["kind"], err.kind(), "the kind is serde's tag too");
            assert_eq!(ServiceError::from_kind(err.kind(), err.to_string(), "logger"), Some(err));
        }
        assert_eq!(ServiceError::from_kind("teapot", "short and stout".into(), "logger"), None);
    }
}
