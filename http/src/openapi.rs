//! The API contract: an OpenAPI 3.1 document per service, generated with `utoipa` from the
//! handlers' `#[utoipa::path]` attributes and the payload types' `ToSchema` derives, served at
//! `GET /openapi.json` by every service ([`routes`]).
//!
//! Each handler module lists its own operations (`broker::Doc`, `auth::Doc`, ...); this
//! module puts together what each service mounts ([`document`]), adds the shared health
//! routes, the bearer security scheme and the answers every route can give (a refused
//! foreign origin, 403). The same document tells the default service which methods a path
//! has, so a known path asked with another method is a 405 with `Allow` ([`MethodTable`]).
//! `http/tests/api/openapi.rs` checks that each document lists every route its server
//! mounts, and `schemathesis` (`scripts/schemathesis.sh`) fuzzes every service against it.

use actix_web::http::{Method, StatusCode, header};
use actix_web::web::{self, Bytes, ServiceConfig};
use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use troupe_core::domain::{AccessToken, User};
use troupe_core::{Envelope, ServiceError};
use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{self, OpenApi as Document, PathItem};
use utoipa::{Modify, OpenApi, ToSchema};

/// A successful reply in the envelope, with `data` of type `T`.
#[derive(Serialize, ToSchema)]
pub struct Reply<T> {
    /// `false`.
    pub error: bool,
    /// A human-readable message.
    pub message: String,
    /// The payload.
    pub data: T,
}

/// A successful login: the user in `data`, an access token in `token`.
#[derive(Serialize, ToSchema)]
pub struct LoginReply {
    /// `false`.
    pub error: bool,
    /// `Authenticated!` (broker) or `Logged in user <email>` (auth).
    pub message: String,
    /// The user who logged in.
    pub data: User,
    /// A bearer token for later requests.
    pub token: AccessToken,
}

/// The id of what was stored (a log entry, an event).
#[derive(Serialize, ToSchema)]
pub struct Stored {
    /// Its id.
    pub id: String,
}

/// What the body extractor refuses, on every route that takes a body (`responses(.., BodyRefused)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum BodyRefused {
    /// The body is too large.
    #[response(status = 413, description = "Body over 1 MiB")]
    TooLarge(Envelope),
    /// The body is of a type the route does not read.
    #[response(status = 415, description = "Content type not JSON, form or text")]
    Unsupported(Envelope),
}

/// The rate limits' refusal (`responses(.., Throttled)`): logins per account and client,
/// requests per client, mails per user.
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum Throttled {
    /// Over a rate limit.
    #[response(status = 429, description = "Over a rate limit (logins per account or client, requests per client, mails per user)",
        headers(("Retry-After" = u64, description = "Seconds to wait")))]
    TooMany(Envelope),
}

/// The `Idempotency-Key` header of the routes that store or send (`params(IdempotencyKeyHeader)`).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "a description of a header for the OpenAPI document, never built")]
pub(crate) struct IdempotencyKeyHeader {
    /// Does the write (an entry, an event, a mail) once however often it is sent, while the
    /// service keeps its keys; 1 to 128 visible ASCII characters.
    #[param(rename = "Idempotency-Key", pattern = "^[!-~]{1,128}$")]
    idempotency_key: Option<String>,
}

/// What every bearer-guarded route of the auth service can answer besides its own
/// (`responses(.., UserRefused)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum UserRefused {
    /// No valid token.
    #[response(status = 401, description = "Missing, expired or forged bearer token")]
    Unauthorized(Envelope),
    /// The users' store does not answer.
    #[response(status = 503, description = "The user store is unavailable")]
    StoreDown(Envelope),
}

/// What a bearer-guarded route about one user answers when the caller may not touch that
/// user (`responses(.., NotYours)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum NotYours {
    /// Another user's, and the caller is not an admin.
    #[response(status = 403, description = "Not allowed (another user, not an admin)")]
    Forbidden(Envelope),
    /// No user has that id.
    #[response(status = 404, description = "No such user")]
    NoSuchUser(Envelope),
}

/// What the auth service's routes taking a user's details refuse in them
/// (`responses(.., UserInvalid)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum UserInvalid {
    /// Not JSON, or a required field is missing.
    #[response(status = 400, description = "Malformed JSON or a missing field")]
    Malformed(Envelope),
    /// A field's value is refused.
    #[response(status = 422, description = "A value is invalid (address, password length, name)")]
    Invalid(Envelope),
}

/// What the logger's reads of stored entries answer besides their own
/// (`responses(.., LogReadRefused)`).
#[derive(utoipa::IntoResponses)]
#[expect(dead_code, reason = "a description of answers for the OpenAPI document, never built")]
pub(crate) enum LogReadRefused {
    /// No valid token where one is needed.
    #[response(
        status = 401,
        description = "No valid bearer token where reads need one (`READ_AUTH`, on the broker)"
    )]
    Unauthorized(Envelope),
    /// The store does not answer.
    #[response(status = 503, description = "The log store is unavailable")]
    StoreDown(Envelope),
}

/// A string that is empty (a filter left blank: no filter), or else `schema`; or `null`
/// too when `null` is given.
fn empty_or(schema: impl Into<openapi::RefOr<Schema>>, null: bool) -> Schema {
    let empty = ObjectBuilder::new().schema_type(Type::String).max_length(Some(0));
    let mut any = AnyOfBuilder::new().item(schema).item(empty);
    if null {
        any = any.item(ObjectBuilder::new().schema_type(Type::Null));
    }
    Schema::AnyOf(any.build())
}

/// An RFC 3339 time, or empty (no bound).
pub(crate) fn time_or_empty() -> Schema {
    let format = SchemaFormat::KnownFormat(KnownFormat::DateTime);
    empty_or(ObjectBuilder::new().schema_type(Type::String).format(Some(format)), false)
}

/// A [`troupe_core::messages::LogLevel`], or empty (any level).
pub(crate) fn level_or_empty() -> Schema {
    empty_or(openapi::Ref::from_schema_name("LogLevel"), false)
}

/// A [`troupe_core::messages::LogLevel`], empty or `null` (`INFO`), in a log entry to store.
pub(crate) fn level_or_default() -> Schema {
    empty_or(openapi::Ref::from_schema_name("LogLevel"), true)
}

/// `GET /metrics`: Prometheus metrics of the service (text exposition format).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
#[expect(dead_code, reason = "documents the route actix-web-prom's middleware serves")]
fn metrics() {}

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The service's OpenAPI 3.1 document", body = Object)))]
async fn openapi_json(spec: web::Data<Spec>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(spec.json.clone())
}

/// What every service serves beside its own routes.
#[derive(OpenApi)]
#[openapi(paths(crate::api::ping, crate::api::healthz, crate::api::readyz, metrics, openapi_json))]
struct Shared;

/// The bearer scheme, and the 403 every route answers to a page on an origin not allowed.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        for item in doc.paths.paths.values_mut() {
            for op in operations(item) {
                op.responses.responses.entry("403".into()).or_insert_with(|| {
                    openapi::ResponseBuilder::new()
                        .description(
                            "Refused: sent from a page whose origin is not allowed (CORS_ALLOWED_ORIGINS)",
                        )
                        .content("application/json", openapi::Content::new(Some(envelope_ref())))
                        .into()
                });
            }
        }
    }
}

fn envelope_ref() -> openapi::RefOr<openapi::schema::Schema> {
    openapi::Ref::from_schema_name("Envelope").into()
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The services that serve a document, by the name `api::serve` knows them by.
pub const SERVICES: [&str; 6] = ["broker", "auth", "logger", "mailer", "catcher", "listener"];

/// The OpenAPI document of the service `name` (`broker`, `auth`, ...), or `None` for a
/// server with no API (the console).
pub fn document(name: &str) -> Option<Document> {
    let (title, own) = match name {
        "broker" => ("Troupe broker", broker_document()),
        "auth" => ("Troupe authentication", crate::auth::Doc::openapi()),
        "logger" => ("Troupe logger", logger_document()),
        "mailer" => ("Troupe mailer", crate::mailer::Doc::openapi()),
        "catcher" => ("Troupe mail catcher", crate::catcher::Doc::openapi()),
        "listener" => ("Troupe event listener", crate::events::Doc::openapi()),
        _ => return None,
    };
    let mut doc = Shared::openapi().merge_from(crate::traces::Doc::openapi()).merge_from(own);
    doc.info.title = title.to_owned();
    doc.info.description = Some(format!(
        "{title}: every reply is the envelope {{\"error\",\"message\",\"data\"}} (docs/api.md)."
    ));
    Common.modify(&mut doc);
    Some(doc)
}

fn broker_document() -> Document {
    crate::broker::Doc::openapi()
        .merge_from(crate::logger::ReadDoc::openapi())
        .merge_from(crate::status::Doc::openapi())
        .merge_from(crate::events::BrokerDoc::openapi())
        .merge_from(crate::history::Doc::openapi())
}

fn logger_document() -> Document {
    crate::logger::Doc::openapi().merge_from(crate::logger::ReadDoc::openapi())
}

/// A service's document, as served, and the methods of each of its paths.
pub struct Spec {
    json: Bytes,
    methods: MethodTable,
}

/// Each documented path (as a pattern) and the methods it has, the most specific first
/// (`/users/me` before `/users/{id}`).
pub struct MethodTable(Vec<(actix_web::dev::ResourceDef, Vec<Method>)>);

impl MethodTable {
    fn of(doc: &Document) -> Self {
        let mut table = Vec::new();
        for (path, item) in &doc.paths.paths {
            let mut item = item.clone();
            let mut methods = Vec::new();
            for (method, op) in [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ] {
                if op.is_some() {
                    methods.push(method);
                }
            }
            table.push((path.matches('{').count(), actix_web::dev::ResourceDef::new(path.as_str()), methods));
        }
        table.sort_by_key(|(params, ..)| *params);
        Self(table.into_iter().map(|(_, def, methods)| (def, methods)).collect())
    }

    /// The methods `path` has, when it is a documented path.
    pub fn allowed(&self, path: &str) -> Option<&[Method]> {
        self.0.iter().find(|(def, _)| def.is_match(path)).map(|(_, m)| m.as_slice())
    }
}

/// `GET /openapi.json` for the service `name` (nothing for a server with no document).
pub fn routes(name: &str) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    let spec = document(name).map(|doc| {
        let json = serde_json::to_vec(&doc).unwrap_or_default();
        web::Data::new(Spec { json: Bytes::from(json), methods: MethodTable::of(&doc) })
    });
    move |cfg: &mut ServiceConfig| {
        if let Some(spec) = &spec {
            cfg.app_data(spec.clone()).route("/openapi.json", web::get().to(openapi_json));
        }
    }
}

/// 405 with `Allow` (in the envelope) when `req`'s path is documented without its method.
pub fn method_not_allowed(req: &HttpRequest) -> Option<HttpResponse> {
    let spec = req.app_data::<web::Data<Spec>>()?;
    let methods = spec.methods.allowed(req.path())?;
    if methods.is_empty() || methods.contains(req.method()) {
        return None;
    }
    let allow = methods.iter().map(Method::as_str).collect::<Vec<_>>().join(", ");
    let message = format!("method {} not allowed here; allowed: {allow}", req.method());
    let res = HttpResponse::build(StatusCode::METHOD_NOT_ALLOWED)
        .insert_header((header::ALLOW, allow))
        .json(Envelope { kind: Some("method_not_allowed".into()), ..Envelope::failure(message) });
    Some(res)
}

/// The reply to a request no route took: 405 with `Allow` when its path is documented with
/// other methods ([`method_not_allowed`]), else 404, both in the envelope.
pub fn unrouted(req: &HttpRequest) -> HttpResponse {
    method_not_allowed(req).unwrap_or_else(|| {
        let err = ServiceError::NotFound("not found".into());
        HttpResponse::NotFound().json(Envelope::from_error(&err))
    })
}
