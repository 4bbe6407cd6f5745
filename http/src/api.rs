//! What every Troupe HTTP service shares: envelope errors, the JSON body extractor, health
//! routes, Prometheus metrics (`GET /metrics`), CORS, request ids and the server builder.

use std::fmt;
use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MailboxError, Message};
use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::error::PayloadError;
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{App, FromRequest, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing_actix_web::{RequestId, TracingLogger};
use troupe_core::health::Readiness;
use troupe_core::{Envelope, ServiceError};

/// Largest request body accepted (1 MiB), as in the Go platform.
pub const BODY_LIMIT: usize = 1_048_576;

/// A [`ServiceError`] on its way out as an HTTP reply in the envelope.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(Envelope::failure(self.0.to_string()))
    }
}

/// Map a failed actor send (mailbox closed, deadline passed) to "`service` unavailable".
pub fn unavailable(service: &'static str) -> impl Fn(MailboxError) -> ApiError {
    move |err| {
        tracing::warn!(service, error = %err, "service did not answer");
        ApiError(ServiceError::unavailable(service))
    }
}

/// Send `msg` to a service actor with a deadline. A closed mailbox or a passed deadline is
/// "`service` unavailable" (503); the actor's own `ServiceError` passes through.
pub async fn ask<A, M, T>(
    actor: &Addr<A>,
    msg: M,
    deadline: Duration,
    service: &'static str,
) -> Result<T, ApiError>
where
    A: Actor<Context = Context<A>> + Handler<M>,
    M: Message<Result = Result<T, ServiceError>> + Send + 'static,
    T: Send + 'static,
{
    Ok(actor.send(msg).timeout(deadline).await.map_err(unavailable(service))??)
}

/// A reply in the envelope with the given status.
pub fn reply(status: StatusCode, envelope: Envelope) -> HttpResponse {
    HttpResponse::build(status).json(envelope)
}

/// A JSON request body parsed into `T`, with every failure answered in the envelope:
/// over 1 MiB is 413, a non-JSON content type is 415, malformed JSON or wrong types are 400.
///
/// Like the Go platform, a body sent without a JSON content type (`curl -d` sends
/// `application/x-www-form-urlencoded`, `fetch` in no-cors mode `text/plain`) is read as JSON.
pub struct JsonBody<T>(pub T);

fn content_type_accepted(req: &HttpRequest) -> bool {
    let Ok(Some(mime)) = req.mime_type() else {
        return req.headers().get(header::CONTENT_TYPE).is_none();
    };
    let (ty, sub, suffix) = (mime.type_(), mime.subtype(), mime.suffix());
    matches!(
        (ty.as_str(), sub.as_str()),
        ("application", "json") | ("application", "x-www-form-urlencoded") | ("text", "plain")
    ) || suffix.is_some_and(|s| s == "json")
}

impl<T: DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        if !content_type_accepted(req) {
            return Box::pin(async {
                Err(ApiError(ServiceError::UnsupportedMediaType("expected a JSON body".into())))
            });
        }
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = body.await.map_err(|err| match err.as_error::<PayloadError>() {
                Some(PayloadError::Overflow) => {
                    ApiError(ServiceError::PayloadTooLarge(format!("body larger than {BODY_LIMIT} bytes")))
                }
                _ => ApiError(ServiceError::BadRequest("could not read the request body".into())),
            })?;
            parse_json(&bytes).map(JsonBody)
        })
    }
}

/// Parse JSON into `T`, reporting serde's (client-safe) reason as a 400.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(ServiceError::BadRequest(format!("malformed JSON: {e}"))))
}

/// Take the member `name` of a JSON object and parse it as `T` (400 naming it otherwise).
pub fn member<T: DeserializeOwned>(value: &Value, name: &str) -> Result<T, ApiError> {
    let field = value
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ApiError(ServiceError::BadRequest(format!("missing \"{name}\""))))?;
    T::deserialize(field).map_err(|e| ApiError(ServiceError::BadRequest(format!("invalid \"{name}\": {e}"))))
}

/// `GET /ping`, `GET /healthz`, `GET /readyz`.
pub fn health_routes(cfg: &mut ServiceConfig) {
    cfg.route("/ping", web::get().to(ping))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Liveness in the Go platform's form: `200 text/plain "."`.
async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(".")
}

async fn healthz() -> HttpResponse {
    reply(StatusCode::OK, Envelope::ok("alive"))
}

async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let backends = readiness.snapshot();
    if readiness.is_ready() {
        reply(StatusCode::OK, Envelope::with_data("ready", backends))
    } else {
        let mut env = Envelope::with_data("not ready", backends);
        env.error = true;
        reply(StatusCode::SERVICE_UNAVAILABLE, env)
    }
}

async fn not_found() -> HttpResponse {
    reply(StatusCode::NOT_FOUND, Envelope::failure("not found"))
}

/// CORS from an allow-list of origins (`*` allows any, without credentials).
pub fn cors(origins: &[String]) -> Cors {
    let base = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([header::ACCEPT, header::AUTHORIZATION, header::CONTENT_TYPE])
        .allowed_header("x-request-id")
        .expose_headers(["x-request-id"])
        .max_age(300);
    if origins.iter().any(|o| o.trim() == "*") {
        return base.allow_any_origin().send_wildcard();
    }
    origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).fold(base, |c, o| c.allowed_origin(o))
}

/// A running HTTP service: its name, the port it got, and its server.
pub struct RunningServer {
    /// Service name (for logs).
    pub name: &'static str,
    /// The bound port (useful when asked for port 0).
    pub port: u16,
    server: Server,
}

impl RunningServer {
    /// A handle to stop the server.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serve until SIGTERM / Ctrl-C (or the handle) stops it, draining in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Options shared by every server.
#[derive(Clone)]
pub struct ServerOptions {
    /// Allowed CORS origins.
    pub cors_origins: Vec<String>,
    /// Grace period for in-flight requests at shutdown.
    pub shutdown_timeout: Duration,
    /// The readiness registry behind `/readyz`.
    pub readiness: Readiness,
}

/// Build an actix-web server on `listener` with the shared middleware, limits, health routes
/// and envelope 404, plus the service's own routes from `configure`.
pub fn serve<F>(
    name: &'static str,
    listener: TcpListener,
    opts: ServerOptions,
    configure: F,
) -> std::io::Result<RunningServer>
where
    F: Fn(&mut ServiceConfig) + Send + Clone + 'static,
{
    let port = listener.local_addr()?.port();
    let metrics = actix_web_prom::PrometheusMetricsBuilder::new("troupe")
        .endpoint("/metrics")
        .const_labels([("service".to_owned(), name.to_owned())].into())
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| std::io::Error::other(format!("metrics: {e}")))?;
    let readiness = web::Data::new(opts.readiness.clone());
    let origins = opts.cors_origins.clone();
    let server = HttpServer::new(move || {
        // Middleware runs outermost-last: metrics time the whole request, TracingLogger opens
        // the request span (with its request id), the id is echoed on the reply, then CORS
        // answers preflights.
        App::new()
            .wrap(cors(&origins))
            .wrap_fn(|req, srv| {
                let id = req.extensions().get::<RequestId>().map(ToString::to_string);
                let res = srv.call(req);
                async move {
                    let mut res = res.await?;
                    if let Some(value) = id.and_then(|id| header::HeaderValue::from_str(&id).ok()) {
                        res.headers_mut().insert(header::HeaderName::from_static("x-request-id"), value);
                    }
                    Ok(res)
                }
            })
            .wrap(TracingLogger::default())
            .wrap(metrics.clone())
            .app_data(web::PayloadConfig::new(BODY_LIMIT))
            .app_data(readiness.clone())
            .configure(health_routes)
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .shutdown_timeout(opts.shutdown_timeout.as_secs().max(1))
    .listen(listener)?
    .run();
    tracing::info!(service = name, port, "listening");
    Ok(RunningServer { name, port, server })
}
