//! The catcher's JSON API (:8025, like MailHog), read by the web console:
//!
//! - `GET /api/messages` -> summaries, newest first
//! - `GET /api/messages/{id}` -> headers, text and HTML parts
//! - `GET /api/messages/{id}/raw` -> the message as received (`text/plain`)
//! - `GET /api/messages/{id}/html` -> the HTML part (`text/html`, `Content-Security-Policy:
//!   sandbox`, so a page showing it in an iframe runs none of its scripts)
//! - `DELETE /api/messages/{id}`, `DELETE /api/messages`

use std::time::Duration;

use actix::Addr;
use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use troupe_actors::catcher::CatcherStore;
use troupe_core::messages::{CaughtMail, CaughtSummary, DeleteCaught, GetCaught, GetCaughtRaw, ListCaught};
use troupe_core::{Envelope, ServiceError};

use crate::api::{ApiError, ask, reply};
use crate::openapi::Reply;

/// What the routes about one caught mail answer besides their own
/// (`responses(.., MessageRefused)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
enum MessageRefused {
    /// No mail has that id (for `/html`: or it has no HTML part).
    #[response(status = 404, description = "No such message (for /html: or it has no HTML part)")]
    NotFound(Envelope),
    /// The catcher's store does not answer.
    #[response(status = 503, description = "The store is unavailable")]
    StoreDown(Envelope),
}

/// Deadline for each call to the store.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The catcher routes' state.
#[derive(Clone)]
pub struct CatcherState {
    /// The store actor.
    pub store: Addr<CatcherStore>,
}

/// The catcher's routes.
pub fn routes(state: CatcherState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone()))
            .route("/api/messages", web::get().to(list))
            .route("/api/messages", web::delete().to(delete_all))
            .route("/api/messages/{id}", web::get().to(get))
            .route("/api/messages/{id}", web::delete().to(delete))
            .route("/api/messages/{id}/raw", web::get().to(raw))
            .route("/api/messages/{id}/html", web::get().to(html));
    }
}

/// Every caught mail, newest first.
#[utoipa::path(get, path = "/api/messages", tag = "catcher",
    responses(
        (status = 200, description = "Summaries", body = Reply<Vec<CaughtSummary>>),
        (status = 503, description = "The store is unavailable", body = Envelope)))]
async fn list(state: web::Data<CatcherState>) -> Result<HttpResponse, ApiError> {
    let all = ask(&state.store, ListCaught, TIMEOUT, "catcher").await?;
    Ok(reply(StatusCode::OK, Envelope::with_data(format!("{} messages", all.len()), all)))
}

/// One caught mail: headers, text and HTML parts.
#[utoipa::path(get, path = "/api/messages/{id}", tag = "catcher", params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The mail", body = Reply<CaughtMail>),
        MessageRefused))]
async fn get(state: web::Data<CatcherState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mail = ask(&state.store, GetCaught { id: id.into_inner() }, TIMEOUT, "catcher").await?;
    Ok(reply(StatusCode::OK, Envelope::with_data("message", mail)))
}

/// A caught mail as received.
#[utoipa::path(get, path = "/api/messages/{id}/raw", tag = "catcher", params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The raw message", body = String, content_type = "text/plain"),
        MessageRefused))]
async fn raw(state: web::Data<CatcherState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let bytes = ask(&state.store, GetCaughtRaw { id: id.into_inner() }, TIMEOUT, "catcher").await?;
    Ok(HttpResponse::Ok().content_type("text/plain; charset=utf-8").body(bytes))
}

/// A caught mail's HTML part, sandboxed (`Content-Security-Policy: sandbox`).
#[utoipa::path(get, path = "/api/messages/{id}/html", tag = "catcher", params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "The HTML part", body = String, content_type = "text/html"),
        MessageRefused))]
async fn html(state: web::Data<CatcherState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let mail = ask(&state.store, GetCaught { id: id.into_inner() }, TIMEOUT, "catcher").await?;
    let html =
        mail.html.ok_or_else(|| ApiError(ServiceError::NotFound("message has no HTML part".into())))?;
    Ok(HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CONTENT_SECURITY_POLICY, "sandbox"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(html))
}

/// Delete one caught mail.
#[utoipa::path(delete, path = "/api/messages/{id}", tag = "catcher", params(("id" = String, Path, description = "The message's id")),
    responses(
        (status = 200, description = "Deleted", body = Envelope),
        MessageRefused))]
async fn delete(state: web::Data<CatcherState>, id: web::Path<String>) -> Result<HttpResponse, ApiError> {
    ask(&state.store, DeleteCaught { id: Some(id.into_inner()) }, TIMEOUT, "catcher").await?;
    Ok(reply(StatusCode::OK, Envelope::ok("deleted")))
}

/// Delete every caught mail.
#[utoipa::path(delete, path = "/api/messages", tag = "catcher",
    responses(
        (status = 200, description = "Deleted", body = Envelope),
        (status = 503, description = "The store is unavailable", body = Envelope)))]
async fn delete_all(state: web::Data<CatcherState>) -> Result<HttpResponse, ApiError> {
    ask(&state.store, DeleteCaught { id: None }, TIMEOUT, "catcher").await?;
    Ok(reply(StatusCode::OK, Envelope::ok("deleted all messages")))
}

/// The catcher's operations, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(list, delete_all, get, delete, raw, html))]
pub(crate) struct Doc;
