//! The JSON envelope of every reply: `{"error": bool, "message": string, "data": any}`.
//!
//! Keys are lower-case and `data` is omitted when empty, as in the Go platform. Troupe adds
//! an optional `token` (an access token after a successful login) and, on failures, an
//! optional `kind` (the [`ServiceError`](crate::ServiceError) variant, so a Troupe caller
//! rebuilds the same error); Go clients ignore both.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ServiceError;
use crate::domain::AccessToken;

/// One reply of a Troupe service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Envelope {
    /// `true` when the request failed.
    pub error: bool,
    /// A human-readable, client-safe message.
    pub message: String,
    /// The payload, omitted when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// An access token, present only in successful login replies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<AccessToken>,
    /// On failures, which [`ServiceError`] it was ([`ServiceError::kind`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
}

impl Envelope {
    /// A success reply with a message and no data.
    pub fn ok(message: impl Into<String>) -> Self {
        Self { error: false, message: message.into(), data: None, token: None, kind: None }
    }

    /// A success reply carrying `data` (serialised; `null` when it cannot be).
    pub fn with_data(message: impl Into<String>, data: impl Serialize) -> Self {
        Self {
            error: false,
            message: message.into(),
            data: serde_json::to_value(data).ok().filter(|v| !v.is_null()),
            token: None,
            kind: None,
        }
    }

    /// A failure reply.
    pub fn failure(message: impl Into<String>) -> Self {
        Self { error: true, message: message.into(), data: None, token: None, kind: None }
    }

    /// The failure reply of `err`: its client-safe text and its kind.
    pub fn from_error(err: &ServiceError) -> Self {
        Self { kind: Some(err.kind().to_owned()), ..Self::failure(err.to_string()) }
    }

    /// Attach an access token.
    pub fn with_token(mut self, token: AccessToken) -> Self {
        self.token = Some(token);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_omitted_when_empty() {
        let json = serde_json::to_string(&Envelope::ok("Hit the broker")).unwrap_or_default();
        assert_eq!(json, r#"{"error":false,"message":"Hit the broker"}"#);
    }

    #[test]
    fn data_is_kept_when_present() {
        let env = Envelope::with_data("m", serde_json::json!({"id": 1}));
        let json = serde_json::to_string(&env).unwrap_or_default();
        assert_eq!(json, r#"{"error":false,"message":"m","data":{"id":1}}"#);
    }

    #[test]
    fn failures_name_their_kind() {
        let env = Envelope::from_error(&ServiceError::InvalidCredentials);
        let json = serde_json::to_string(&env).unwrap_or_default();
        assert_eq!(json, r#"{"error":true,"message":"invalid credentials","kind":"invalid_credentials"}"#);
    }
}
