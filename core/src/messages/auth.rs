//! Messages of the authentication service.

use actix::Message;
use secrecy::SecretString;

use crate::domain::{Authenticated, Caller, Email, Password, PersonName, Principal, User};
use crate::{RequestId, ServiceError};

/// Check an email and password; on success return the user and a fresh access token.
#[derive(Debug, Message)]
#[rtype(result = "Result<Authenticated, ServiceError>")]
pub struct Authenticate {
    /// The address as typed (not validated: a malformed one simply fails to log in).
    pub email: String,
    /// The password as typed.
    pub password: SecretString,
    /// The request this login belongs to (carried into its audit entry and `auth` event).
    pub request_id: Option<RequestId>,
    /// The span the login is asked in (`Span::current()`): the actor's work is its child.
    pub span: tracing::Span,
}

/// Check a bearer token: well signed, not expired, and its user exists and is active (or it
/// is a service token).
#[derive(Debug, Message)]
#[rtype(result = "Result<Caller, ServiceError>")]
pub struct VerifyToken(pub SecretString);

/// Create a user (admins only).
#[derive(Debug, Message)]
#[rtype(result = "Result<User, ServiceError>")]
pub struct RegisterUser {
    /// Who asks.
    pub by: Principal,
    /// Login address; must not exist yet.
    pub email: Email,
    /// Initial password.
    pub password: Password,
    /// First name.
    pub first_name: PersonName,
    /// Last name.
    pub last_name: PersonName,
    /// Grant the admin role.
    pub admin: bool,
}

/// Read one user (yourself, or anyone as admin).
#[derive(Debug, Message)]
#[rtype(result = "Result<User, ServiceError>")]
pub struct GetUser {
    /// Who asks.
    pub by: Principal,
    /// Whom.
    pub id: i32,
}

/// List users by id, a page at a time (admins only).
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<User>, ServiceError>")]
pub struct ListUsers {
    /// Who asks.
    pub by: Principal,
    /// Return users with an id greater than this (cursor).
    pub after: Option<i32>,
    /// At most this many (1..=100).
    pub limit: u32,
}

/// Change a user's profile (yourself, or anyone as admin). `None` leaves a field alone.
#[derive(Debug, Message)]
#[rtype(result = "Result<User, ServiceError>")]
pub struct UpdateUser {
    /// Who asks.
    pub by: Principal,
    /// Whom.
    pub id: i32,
    /// New login address.
    pub email: Option<Email>,
    /// New first name.
    pub first_name: Option<PersonName>,
    /// New last name.
    pub last_name: Option<PersonName>,
}

/// Deactivate an account so it can no longer log in (admins, or yourself).
#[derive(Debug, Message)]
#[rtype(result = "Result<User, ServiceError>")]
pub struct DeactivateUser {
    /// Who asks.
    pub by: Principal,
    /// Whom.
    pub id: i32,
}

/// Set a new password. Users changing their own must give the current one.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ServiceError>")]
pub struct ChangePassword {
    /// Who asks.
    pub by: Principal,
    /// Whom.
    pub id: i32,
    /// The current password (required when changing your own).
    pub current: Option<SecretString>,
    /// The new password.
    pub new: Password,
}
