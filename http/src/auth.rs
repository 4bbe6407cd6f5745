//! The authentication service's HTTP adapter (:8082).
//!
//! - `POST /authenticate` `{"email","password"}` -> 202 `Logged in user <email>` (Go contract),
//!   with the user in `data` and an access token in `token`.
//! - `GET /token` (bearer) -> 200 with the token's claims: how other services verify tokens.
//! - User management, bearer-protected: `POST /users`, `GET /users`, `GET /users/me`,
//!   `GET|PATCH /users/{id}`, `POST /users/{id}/deactivate`, `PUT /users/{id}/password`.
//!
//! Handlers parse into domain types (`Email`, `Password`, `PersonName`) and send one message
//! to the auth actor; the actor decides who may do what.

use std::time::Duration;

use actix::Addr;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use secrecy::SecretString;
use serde::Deserialize;
use troupe_actors::auth::AuthActor;
use troupe_actors::auth::token::{Claims, TokenKeys};
use troupe_core::domain::{Email, Password, PersonName, Principal, User};
use troupe_core::messages::{
    Authenticate, ChangePassword, DeactivateUser, GetUser, ListUsers, RegisterUser, UpdateUser,
};
use troupe_core::{Envelope, ServiceError};

use crate::api::{ApiError, CurrentRequestId, JsonBody, bearer_token, reply};
use crate::openapi::{BodyRefused, LoginReply, NotYours, Reply, Throttled, UserInvalid, UserRefused};

/// What the auth routes need.
#[derive(Clone)]
pub struct AuthState {
    /// The auth actor.
    pub actor: Addr<AuthActor>,
    /// Keys to verify bearer tokens.
    pub keys: TokenKeys,
    /// Deadline for each call to the actor.
    pub timeout: Duration,
}

impl AuthState {
    async fn ask<M, T>(&self, msg: M) -> Result<T, ApiError>
    where
        M: actix::Message<Result = Result<T, ServiceError>> + Send + 'static,
        T: Send + 'static,
        AuthActor: actix::Handler<M>,
    {
        crate::api::ask(&self.actor, msg, self.timeout, "auth").await
    }
}

/// The auth service's routes.
pub fn routes(state: AuthState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/authenticate", web::post().to(authenticate))
            .route("/token", web::get().to(token))
            .route("/users", web::post().to(register))
            .route("/users", web::get().to(list))
            .route("/users/me", web::get().to(me))
            .route("/users/{id}", web::get().to(get))
            .route("/users/{id}", web::patch().to(update))
            .route("/users/{id}/deactivate", web::post().to(deactivate))
            .route("/users/{id}/password", web::put().to(change_password));
    }
}

/// The verified claims of the request's bearer token (401 otherwise).
pub struct Bearer(pub Claims);

impl Bearer {
    fn principal(&self) -> Result<Principal, ApiError> {
        self.0.principal().map_err(ApiError)
    }
}

impl FromRequest for Bearer {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(bearer(req))
    }
}

fn bearer(req: &HttpRequest) -> Result<Bearer, ApiError> {
    let missing = || ApiError(ServiceError::Unauthorized("missing bearer token".into()));
    let state = req.app_data::<web::Data<AuthState>>().ok_or_else(missing)?;
    let token = bearer_token(req).ok_or_else(missing)?;
    state.keys.verify(token).map(Bearer).map_err(ApiError)
}

/// A login.
#[derive(Deserialize, utoipa::ToSchema)]
struct Credentials {
    /// Login address.
    email: String,
    /// Password.
    #[schema(value_type = String, format = Password)]
    password: SecretString,
}

/// Log in: the user and an access token (the Go contract's `Logged in user <email>`).
#[utoipa::path(post, path = "/authenticate", tag = "auth", request_body = Credentials,
    responses(
        (status = 202, description = "Logged in", body = LoginReply),
        (status = 400, description = "Malformed JSON or a missing field", body = Envelope),
        (status = 401, description = "Wrong email or password, or an inactive account", body = Envelope),
        Throttled,
        (status = 503, description = "The user store is unavailable", body = Envelope),
        BodyRefused))]
async fn authenticate(
    state: web::Data<AuthState>,
    request_id: CurrentRequestId,
    JsonBody(c): JsonBody<Credentials>,
) -> Result<HttpResponse, ApiError> {
    let request_id = Some(request_id.into_inner());
    let done = state
        .ask(Authenticate {
            email: c.email,
            password: c.password,
            request_id,
            span: tracing::Span::current(),
        })
        .await?;
    let message = format!("Logged in user {}", done.user.email);
    Ok(reply(StatusCode::ACCEPTED, Envelope::with_data(message, done.user).with_token(done.token)))
}

/// `GET /token`: the claims of a well-signed token whose user still exists and is active
/// (a token outlives a deleted or deactivated user only until its `exp`: not here), or of a
/// service token (`svc` names the Troupe service).
#[utoipa::path(get, path = "/token", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The token's claims in `data`", body = Envelope),
        UserRefused))]
async fn token(state: web::Data<AuthState>, who: Bearer) -> Result<HttpResponse, ApiError> {
    if who.0.svc.is_some() {
        // A service token (signed with this key) speaks for a Troupe service, not a user.
        return Ok(reply(StatusCode::OK, Envelope::with_data("valid service token", who.0)));
    }
    let by = who.principal()?;
    match state.ask(GetUser { by, id: by.user_id }).await {
        Ok(_) => Ok(reply(StatusCode::OK, Envelope::with_data("valid token", who.0))),
        Err(ApiError(ServiceError::NotFound(_) | ServiceError::Forbidden)) => {
            Err(ApiError(ServiceError::Unauthorized("invalid or expired token".into())))
        }
        Err(other) => Err(other),
    }
}

/// A user to create.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewUser {
    /// Login address.
    #[schema(format = Email, max_length = 255)]
    email: String,
    /// 8 to 72 bytes.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 72)]
    password: SecretString,
    /// First name.
    #[serde(default)]
    #[schema(max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    first_name: String,
    /// Last name.
    #[serde(default)]
    #[schema(max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    last_name: String,
    /// May manage other users.
    #[serde(default)]
    admin: bool,
}

/// Create a user (admins only).
#[utoipa::path(post, path = "/users", tag = "auth", request_body = NewUser,
    security(("bearer" = [])),
    responses(
        (status = 201, description = "Created", body = Reply<User>),
        (status = 403, description = "Not allowed (another user, not an admin)", body = Envelope),
        (status = 409, description = "The address is taken", body = Envelope),
        UserInvalid,
        BodyRefused,
        UserRefused))]
async fn register(
    state: web::Data<AuthState>,
    who: Bearer,
    JsonBody(u): JsonBody<NewUser>,
) -> Result<HttpResponse, ApiError> {
    let msg = RegisterUser {
        by: who.principal()?,
        email: Email::parse(&u.email)?,
        password: Password::parse(u.password)?,
        first_name: PersonName::parse(&u.first_name, "first_name")?,
        last_name: PersonName::parse(&u.last_name, "last_name")?,
        admin: u.admin,
    };
    let user = state.ask(msg).await?;
    Ok(reply(StatusCode::CREATED, Envelope::with_data(format!("created user {}", user.email), user)))
}

/// A page of users.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Users with a greater id.
    after: Option<i32>,
    /// Page size (50 by default).
    #[param(value_type = Option<u64>, maximum = 4_294_967_295_u64)]
    limit: Option<u32>,
}

/// Users by id (admins only).
#[utoipa::path(get, path = "/users", tag = "auth", params(Page),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A page of users", body = Reply<Vec<User>>),
        (status = 400, description = "A bad query parameter", body = Envelope),
        (status = 403, description = "Not allowed (another user, not an admin)", body = Envelope),
        UserRefused))]
async fn list(
    state: web::Data<AuthState>,
    who: Bearer,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let msg = ListUsers { by: who.principal()?, after: page.after, limit: page.limit.unwrap_or(50) };
    let users = state.ask(msg).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{} users", users.len()), users)))
}

/// The caller.
#[utoipa::path(get, path = "/users/me", tag = "auth",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = Reply<User>),
        (status = 404, description = "No such user", body = Envelope),
        UserRefused))]
async fn me(state: web::Data<AuthState>, who: Bearer) -> Result<HttpResponse, ApiError> {
    let by = who.principal()?;
    let user = state.ask(GetUser { by, id: by.user_id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user", user)))
}

/// One user (the caller, or anyone for an admin).
#[utoipa::path(get, path = "/users/{id}", tag = "auth", params(("id" = i32, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user", body = Reply<User>),
        NotYours,
        UserRefused))]
async fn get(state: web::Data<AuthState>, who: Bearer, id: web::Path<i32>) -> Result<HttpResponse, ApiError> {
    let user = state.ask(GetUser { by: who.principal()?, id: *id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user", user)))
}

/// Changes to a user; absent fields stay.
#[derive(Deserialize, utoipa::ToSchema)]
struct Changes {
    /// New login address.
    #[schema(format = Email, max_length = 255)]
    email: Option<String>,
    /// New first name.
    #[schema(max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    first_name: Option<String>,
    /// New last name.
    #[schema(max_length = 255, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    last_name: Option<String>,
}

/// Change a user's address or names.
#[utoipa::path(patch, path = "/users/{id}", tag = "auth", params(("id" = i32, Path, description = "The user's id")), request_body = Changes,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Updated", body = Reply<User>),
        NotYours,
        (status = 409, description = "The address is taken", body = Envelope),
        UserInvalid,
        BodyRefused,
        UserRefused))]
async fn update(
    state: web::Data<AuthState>,
    who: Bearer,
    id: web::Path<i32>,
    JsonBody(c): JsonBody<Changes>,
) -> Result<HttpResponse, ApiError> {
    let msg = UpdateUser {
        by: who.principal()?,
        id: *id,
        email: c.email.as_deref().map(Email::parse).transpose()?,
        first_name: c.first_name.as_deref().map(|n| PersonName::parse(n, "first_name")).transpose()?,
        last_name: c.last_name.as_deref().map(|n| PersonName::parse(n, "last_name")).transpose()?,
    };
    let user = state.ask(msg).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user updated", user)))
}

/// Deactivate a user (they can no longer log in).
#[utoipa::path(post, path = "/users/{id}/deactivate", tag = "auth", params(("id" = i32, Path, description = "The user's id")),
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Deactivated", body = Reply<User>),
        NotYours,
        UserRefused))]
async fn deactivate(
    state: web::Data<AuthState>,
    who: Bearer,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let user = state.ask(DeactivateUser { by: who.principal()?, id: *id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user deactivated", user)))
}

/// A password change.
#[derive(Deserialize, utoipa::ToSchema)]
struct NewPassword {
    /// The current password (needed unless an admin changes another user's).
    #[schema(value_type = Option<String>, format = Password)]
    current_password: Option<SecretString>,
    /// 8 to 72 bytes.
    #[schema(value_type = String, format = Password, min_length = 8, max_length = 72)]
    new_password: SecretString,
}

/// Change a user's password.
#[utoipa::path(put, path = "/users/{id}/password", tag = "auth", params(("id" = i32, Path, description = "The user's id")), request_body = NewPassword,
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Changed", body = Envelope),
        NotYours,
        UserInvalid,
        BodyRefused,
        UserRefused))]
async fn change_password(
    state: web::Data<AuthState>,
    who: Bearer,
    id: web::Path<i32>,
    JsonBody(p): JsonBody<NewPassword>,
) -> Result<HttpResponse, ApiError> {
    let msg = ChangePassword {
        by: who.principal()?,
        id: *id,
        current: p.current_password,
        new: Password::parse(p.new_password)?,
    };
    state.ask(msg).await?;
    Ok(reply(StatusCode::OK, Envelope::ok("password changed")))
}

/// The auth service's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(authenticate, token, register, list, me, get, update, deactivate, change_password))]
pub(crate) struct Doc;
