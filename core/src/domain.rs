//! Domain types, parsed once at the edge ("parse, don't validate").
//!
//! An [`Email`] or a [`Password`] that exists is valid; handlers build them from raw input and
//! report a [`ServiceError::Invalid`] when they cannot.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// Longest email address accepted (the `users.email` column is `varchar(255)`).
pub const MAX_EMAIL_LEN: usize = 255;
/// Shortest password accepted for new passwords.
pub const MIN_PASSWORD_LEN: usize = 8;
/// Longest password accepted: bcrypt ignores everything past 72 bytes.
pub const MAX_PASSWORD_LEN: usize = 72;
/// Longest first or last name.
pub const MAX_NAME_LEN: usize = 255;

/// A syntactically valid email address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parse and normalise an address.
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        let s = raw.trim().to_lowercase();
        if s.len() > MAX_EMAIL_LEN {
            return Err(ServiceError::Invalid(format!("email must be at most {MAX_EMAIL_LEN} characters")));
        }
        let parsed = email_address::EmailAddress::parse_with_options(
            &s,
            email_address::Options::default().without_display_text().without_domain_literal(),
        );
        match parsed {
            Ok(_) => Ok(Self(s)),
            Err(_) => Err(ServiceError::Invalid(format!("invalid email address: {raw:?}"))),
        }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that satisfies the length rules. Never printed.
#[derive(Clone)]
pub struct Password(SecretString);

impl Password {
    /// Check the length rules (bytes, since that is what bcrypt sees).
    pub fn parse(raw: SecretString) -> Result<Self, ServiceError> {
        let len = raw.expose_secret().len();
        if len < MIN_PASSWORD_LEN {
            return Err(ServiceError::Invalid(format!(
                "password must be at least {MIN_PASSWORD_LEN} characters"
            )));
        }
        if len > MAX_PASSWORD_LEN {
            return Err(ServiceError::Invalid(format!("password must be at most {MAX_PASSWORD_LEN} bytes")));
        }
        Ok(Self(raw))
    }

    /// The secret, for hashing.
    pub fn secret(&self) -> &SecretString {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A first or last name: trimmed, at most [`MAX_NAME_LEN`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct PersonName(String);

impl PersonName {
    /// Parse a name; `field` names it in the error.
    pub fn parse(raw: &str, field: &str) -> Result<Self, ServiceError> {
        let s = raw.trim();
        if s.chars().count() > MAX_NAME_LEN {
            return Err(ServiceError::Invalid(format!("{field} must be at most {MAX_NAME_LEN} characters")));
        }
        if s.chars().any(char::is_control) {
            return Err(ServiceError::Invalid(format!("{field} must not contain control characters")));
        }
        Ok(Self(s.to_owned()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user as the outside world sees it: the Go platform's fields, never the password hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct User {
    /// Database id.
    pub id: i32,
    /// Login address.
    pub email: String,
    /// First name (may be empty).
    pub first_name: String,
    /// Last name (may be empty).
    pub last_name: String,
    /// `1` when the account may log in, `0` when deactivated (an integer, as in Go).
    pub active: i32,
    /// Whether the user may manage other users.
    #[serde(default)]
    pub admin: bool,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
}

/// A signed access token handed out at login.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AccessToken {
    /// The JWT itself.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Lifetime in seconds from issue.
    pub expires_in: u64,
}

/// Who is asking, as proven by a verified access token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The user's id.
    pub user_id: i32,
    /// Whether the token carries the admin role.
    pub admin: bool,
}

/// Whom a verified bearer token speaks for: a user, or one of Troupe's own services (a
/// service token signed with the shared key, for the mail jobs the listener runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// An active user.
    User(Principal),
    /// A Troupe service, by name (`listener`).
    Service(String),
}

impl Caller {
    /// Whether this caller may read every user's entries (an admin, or a service).
    pub fn is_admin(&self) -> bool {
        match self {
            Self::User(p) => p.admin,
            Self::Service(_) => true,
        }
    }
}

/// A successful login: the user and a token for later requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Authenticated {
    /// The user who logged in.
    pub user: User,
    /// Their new access token.
    pub token: AccessToken,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse(" Admin@Example.com ").map(|e| e.0), Ok("admin@example.com".into()));
        for bad in ["", "plain", "a@", "@b.c", "a b@c.d", "x@y.z\r\nBcc: e@f.g", &"a".repeat(300)] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn passwords_respect_length_limits() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("x".repeat(73).into()).is_err());
        assert!(Password::parse("verysecret".into()).is_ok());
        assert_eq!(format!("{:?}", Password::parse("verysecret".into())), "Ok(Password(***))");
    }

    #[test]
    fn names_reject_control_characters() {
        assert!(PersonName::parse("Ada", "first_name").is_ok());
        assert!(PersonName::parse("A\nB", "first_name").is_err());
    }
}
