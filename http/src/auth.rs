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
use troupe_core::domain::{Email, Password, PersonName, Principal};
use troupe_core::messages::{
    Authenticate, ChangePassword, DeactivateUser, GetUser, ListUsers, RegisterUser, UpdateUser,
};
use troupe_core::{Envelope, ServiceError};

use crate::api::{ApiError, CurrentRequestId, JsonBody, bearer_token, reply};

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

#[derive(Deserialize)]
struct Credentials {
    email: String,
    password: SecretString,
}

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
/// (a token outlives a deleted or deactivated user only until its `exp`: not here).
async fn token(state: web::Data<AuthState>, who: Bearer) -> Result<HttpResponse, ApiError> {
    let by = who.principal()?;
    match state.ask(GetUser { by, id: by.user_id }).await {
        Ok(_) => Ok(reply(StatusCode::OK, Envelope::with_data("valid token", who.0))),
        Err(ApiError(ServiceError::NotFound(_) | ServiceError::Forbidden)) => {
            Err(ApiError(ServiceError::Unauthorized("invalid or expired token".into())))
        }
        Err(other) => Err(other),
    }
}

#[derive(Deserialize)]
struct NewUser {
    email: String,
    password: SecretString,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    admin: bool,
}

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

#[derive(Deserialize)]
struct Page {
    after: Option<i32>,
    limit: Option<u32>,
}

async fn list(
    state: web::Data<AuthState>,
    who: Bearer,
    page: web::Query<Page>,
) -> Result<HttpResponse, ApiError> {
    let msg = ListUsers { by: who.principal()?, after: page.after, limit: page.limit.unwrap_or(50) };
    let users = state.ask(msg).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{} users", users.len()), users)))
}

async fn me(state: web::Data<AuthState>, who: Bearer) -> Result<HttpResponse, ApiError> {
    let by = who.principal()?;
    let user = state.ask(GetUser { by, id: by.user_id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user", user)))
}

async fn get(state: web::Data<AuthState>, who: Bearer, id: web::Path<i32>) -> Result<HttpResponse, ApiError> {
    let user = state.ask(GetUser { by: who.principal()?, id: *id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user", user)))
}

#[derive(Deserialize)]
struct Changes {
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

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

async fn deactivate(
    state: web::Data<AuthState>,
    who: Bearer,
    id: web::Path<i32>,
) -> Result<HttpResponse, ApiError> {
    let user = state.ask(DeactivateUser { by: who.principal()?, id: *id }).await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("user deactivated", user)))
}

#[derive(Deserialize)]
struct NewPassword {
    current_password: Option<SecretString>,
    new_password: SecretString,
}

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
