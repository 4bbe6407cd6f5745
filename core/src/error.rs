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
            Self::Unavailable(_) => 503,
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
}
