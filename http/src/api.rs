//! What every Troupe HTTP service shares: envelope errors, the JSON body extractor, health
//! routes, Prometheus metrics (`GET /metrics`), CORS, request ids and the server builder (over
//! TLS when the process has a certificate, [`crate::tls`]).

use std::fmt;
use std::future::Future;
use std::net::TcpListener;
use std::pin::Pin;
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, MailboxError, Message, Recipient};
use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle, Service as _};
use actix_web::error::PayloadError;
use actix_web::http::{StatusCode, header};
use actix_web::web::{self, ServiceConfig};
use actix_web::{App, FromRequest, HttpMessage, HttpRequest, HttpResponse, HttpServer, ResponseError};
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Span;
use tracing_actix_web::{DefaultRootSpanBuilder, RootSpanBuilder, TracingLogger};
use troupe_core::health::Readiness;
use troupe_core::{Envelope, RequestId, ServiceError, request_id};

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
        let mut res = HttpResponse::build(self.status_code());
        if let ServiceError::RateLimited(secs) = self.0 {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        res.json(Envelope::from_error(&self.0))
    }
}

/// Map a failed actor send (mailbox closed, deadline passed) to "`service` unavailable".
pub fn unavailable(service: &'static str) -> impl Fn(MailboxError) -> ApiError {
    move |err| {
        tracing::warn!(service, error = %err, "service did not answer");
        ApiError(ServiceError::unavailable(service))
    }
}

/// Something a message can be sent to: an actor's [`Addr`] or a [`Recipient`] (a local actor
/// or a remote proxy alike).
pub trait Mailbox<M: Message + Send + 'static>
where
    M::Result: Send,
{
    /// Send `msg`; `Err` when the mailbox is closed or `within` passed first.
    fn send_within(&self, msg: M, within: Duration) -> impl Future<Output = Result<M::Result, MailboxError>>;
}

impl<A, M> Mailbox<M> for Addr<A>
where
    A: Actor<Context = Context<A>> + Handler<M>,
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn send_within(&self, msg: M, within: Duration) -> impl Future<Output = Result<M::Result, MailboxError>> {
        self.send(msg).timeout(within)
    }
}

impl<M> Mailbox<M> for Recipient<M>
where
    M: Message + Send + 'static,
    M::Result: Send,
{
    fn send_within(&self, msg: M, within: Duration) -> impl Future<Output = Result<M::Result, MailboxError>> {
        self.send(msg).timeout(within)
    }
}

/// Send `msg` to a service with a deadline. A closed mailbox or a passed deadline is
/// "`service` unavailable" (503); the service's own `ServiceError` passes through.
pub async fn ask<M, T>(
    to: &impl Mailbox<M>,
    msg: M,
    deadline: Duration,
    service: &'static str,
) -> Result<T, ApiError>
where
    M: Message<Result = Result<T, ServiceError>> + Send + 'static,
    T: Send + 'static,
{
    Ok(to.send_within(msg, deadline).await.map_err(unavailable(service))??)
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

/// The token of the request's `Authorization: Bearer <token>` header, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).map(str::trim)
}

/// Longest idempotency key or client-given event id.
pub const MAX_KEY_LEN: usize = 128;

/// `key` if it is 1 to [`MAX_KEY_LEN`] visible ASCII characters, else `Invalid` naming `what`.
pub fn checked_key(what: &str, key: &str) -> Result<String, ApiError> {
    match !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| b.is_ascii_graphic()) {
        true => Ok(key.to_owned()),
        false => Err(ApiError(ServiceError::Invalid(format!(
            "invalid {what}: 1 to {MAX_KEY_LEN} visible ASCII characters expected"
        )))),
    }
}

/// The `Idempotency-Key` header of a write. A client that got no answer (a timeout, a 503)
/// for a write that may have happened sends it again with the same key, and it is stored
/// once: the key becomes the event's id (`event`) or the entry's event id (`log`).
pub struct IdempotencyKey(pub Option<String>);

impl FromRequest for IdempotencyKey {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let header = req.headers().get("idempotency-key");
        // A header that is not visible ASCII reads as "" and is refused as such.
        let key = header.map(|raw| checked_key("Idempotency-Key", raw.to_str().unwrap_or_default()));
        let key = key.transpose();
        std::future::ready(key.map(Self))
    }
}

/// Parse a JSON object into `T`, reporting serde's (client-safe) reason as a 400. Anything
/// but an object is refused: serde would read a struct from an array too (`["n","d"]` as
/// `{"name":"n","data":"d"}`), which no body here is documented to be.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError(ServiceError::BadRequest("malformed JSON: expected an object".into())));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError(ServiceError::BadRequest(format!("malformed JSON: {e}"))))
}

/// Take the member `name` of a JSON object and parse it as `T` (400 naming it otherwise).
pub fn member<T: DeserializeOwned>(value: &Value, name: &str) -> Result<T, ApiError> {
    let field = value
        .get(name)
        .filter(|v| !v.is_null())
        .ok_or_else(|| ApiError(ServiceError::BadRequest(format!("missing \"{name}\""))))?;
    if !field.is_object() {
        return Err(ApiError(ServiceError::BadRequest(format!("invalid \"{name}\": expected an object"))));
    }
    T::deserialize(field).map_err(|e| ApiError(ServiceError::BadRequest(format!("invalid \"{name}\": {e}"))))
}

/// `GET /ping`, `GET /healthz`, `GET /readyz`.
pub fn health_routes(cfg: &mut ServiceConfig) {
    cfg.route("/ping", web::get().to(ping))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

/// Liveness in the Go platform's form: `200 text/plain "."`.
#[utoipa::path(get, path = "/ping", tag = "health",
    responses((status = 200, description = "Alive: the body is `.`", body = String, content_type = "text/plain")))]
pub(crate) async fn ping() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body(".")
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "Alive", body = Envelope)))]
pub(crate) async fn healthz() -> HttpResponse {
    reply(StatusCode::OK, Envelope::ok("alive"))
}

/// Readiness: every backend of this process connected (`data`: each backend's state).
#[utoipa::path(get, path = "/readyz", tag = "health", responses(
    (status = 200, description = "Ready", body = Envelope),
    (status = 503, description = "Not ready: a backend is connecting or down", body = Envelope)))]
pub(crate) async fn readyz(readiness: web::Data<Readiness>) -> HttpResponse {
    let backends = readiness.snapshot();
    if readiness.is_ready() {
        reply(StatusCode::OK, Envelope::with_data("ready", backends))
    } else {
        let mut env = Envelope::with_data("not ready", backends);
        env.error = true;
        reply(StatusCode::SERVICE_UNAVAILABLE, env)
    }
}

/// No route took the request: 405 when its path has other methods, else 404 ([`crate::openapi::unrouted`]).
async fn not_found(req: HttpRequest) -> HttpResponse {
    crate::openapi::unrouted(&req)
}

/// CORS from an allow-list of origins (`*` allows any, without credentials).
pub fn cors(origins: &[String]) -> Cors {
    let base = Cors::default()
        .allowed_methods(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        .allowed_headers([header::ACCEPT, header::AUTHORIZATION, header::CONTENT_TYPE])
        .allowed_header("x-request-id")
        .allowed_header("traceparent")
        .allowed_header("tracestate")
        .expose_headers(["x-request-id", "traceresponse"])
        .max_age(300);
    if origins.iter().any(|o| o.trim() == "*") {
        return base.allow_any_origin().send_wildcard();
    }
    origins.iter().map(|o| o.trim()).filter(|o| !o.is_empty()).fold(base, |c, o| c.allowed_origin(o))
}

/// Whether a request may act: one without `Origin` (not from a browser page), from an
/// allowed origin, or from the page's own origin (same host). Browsers send some cross-site
/// requests without a preflight (a `text/plain` POST): CORS alone would let them act.
fn origin_allowed(req: &actix_web::dev::ServiceRequest, origins: &[String]) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else { return true };
    let Ok(origin) = origin.to_str() else { return false };
    let listed = origins.iter().map(|o| o.trim()).any(|o| o == "*" || o.eq_ignore_ascii_case(origin));
    let own = origin
        .split_once("://")
        .is_some_and(|(_, host)| host.eq_ignore_ascii_case(req.connection_info().host()));
    listed || own
}

/// A server's allow-list of origins (app data, for [`refuse_foreign_origins`]).
struct AllowedOrigins(Vec<String>);

/// Middleware: answer 403 (nothing done) to a request from a page whose origin is not
/// allowed; pass every other request on.
async fn refuse_foreign_origins(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let allowed = req.app_data::<web::Data<AllowedOrigins>>().is_none_or(|a| origin_allowed(&req, &a.0));
    if allowed {
        return next.call(req).await.map(actix_web::dev::ServiceResponse::map_into_left_body);
    }
    let origin = req.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("?");
    tracing::warn!(origin, "cross-origin request refused");
    let message = format!("requests from the origin {origin:?} are not allowed (CORS_ALLOWED_ORIGINS)");
    let refused = HttpResponse::Forbidden().json(Envelope::failure(message));
    Ok(req.into_response(refused).map_into_right_body())
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

    /// Serve until the handle stops it (the platform does on SIGTERM / Ctrl-C), draining
    /// in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The caller's `x-request-id` when it is well formed ([`RequestId::parse`]), else a new one.
pub fn incoming_request_id(headers: &header::HeaderMap) -> RequestId {
    headers
        .get(request_id::HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate)
}

/// The request id of the request being served (set by [`serve`]'s middleware); handlers take
/// it as an argument.
pub type CurrentRequestId = web::ReqData<RequestId>;

/// tracing-actix-web's request span (the trace's server span), with Troupe's request id
/// (adopted from the caller) in place of the per-hop UUID it would make, named
/// `<METHOD> <route>` and owned by the serving service. A caller's W3C `traceparent` /
/// `tracestate` is adopted, else a new trace starts. Health probes, metrics scrapes and reads
/// of the traces themselves are not traced. When the request ends, one access-log line
/// (`INFO`; `DEBUG` for probes and scrapes) inside that span.
pub struct RequestSpan;

/// When the request arrived (for the access log).
#[derive(Clone, Copy)]
struct Started(std::time::Instant);

/// The name of the service a server serves (app data, for its request spans).
#[derive(Clone, Copy)]
struct ServiceName(&'static str);

/// Paths whose requests make no trace (probes, scrapes, the trace view's own reads).
fn untraced(path: &str) -> bool {
    matches!(path, "/ping" | "/healthz" | "/readyz" | "/metrics" | "/traces") || path.starts_with("/traces/")
}

/// An actix header map as an OpenTelemetry [`Extractor`](opentelemetry::propagation::Extractor).
struct HeaderExtractor<'a>(&'a header::HeaderMap);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(header::HeaderName::as_str).collect()
    }
}

impl RootSpanBuilder for RequestSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> Span {
        if untraced(request.path()) {
            return Span::none();
        }
        let id = request.extensions().get::<RequestId>().map(ToString::to_string).unwrap_or_default();
        let route = request.match_pattern().unwrap_or_else(|| "UNMATCHED".into());
        let service = request.app_data::<ServiceName>().map_or("", |s| s.0);
        // Plain `&str` values where there is one: a `%` (Display) value costs a formatting
        // pass per layer, on every request. No `http.target`: the route names the operation,
        // and a query string can hold a token (the stream's `access_token`).
        let method = request.method().as_str();
        let name = format!("{method} {route}");
        let span = tracing::info_span!(
            "HTTP request",
            otel.name = name.as_str(),
            otel.kind = "server",
            service,
            http.method = method,
            http.route = route.as_str(),
            http.status_code = tracing::field::Empty,
            otel.status_code = tracing::field::Empty,
            request_id = id.as_str(),
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        );
        troupe_core::telemetry::adopt(&span, &HeaderExtractor(request.headers()));
        span
    }

    fn on_request_end<B: actix_web::body::MessageBody>(
        span: Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        if let Ok(res) = outcome {
            let req = res.request();
            let ms = req
                .extensions()
                .get::<Started>()
                .map(|s| (s.0.elapsed().as_secs_f64() * 10_000.0).round() / 10.0);
            let (method, path, status) = (req.method().as_str(), req.path(), res.status().as_u16());
            // The access line is a log line, not part of the trace (no span event on every
            // request): it names its request itself.
            let extensions = req.extensions();
            let id = extensions.get::<RequestId>().map_or("", RequestId::as_str);
            if matches!(path, "/ping" | "/healthz" | "/readyz" | "/metrics") {
                tracing::debug!(parent: None, status, elapsed_ms = ms, request_id = id, "{method} {path}");
            } else {
                tracing::info!(parent: None, status, elapsed_ms = ms, request_id = id, "{method} {path}");
            }
        }
        DefaultRootSpanBuilder::on_request_end(span, outcome);
    }
}

/// Middleware inside the request span: name it on the reply in a W3C Trace Context Level 2
/// `traceresponse` header (`00-<trace_id>-<span_id>-<flags>`), so a client (the console) can
/// open the trace of any request it made.
async fn trace_response(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let named = troupe_core::telemetry::traceparent(&Span::current());
    let mut res = next.call(req).await?;
    if let Some(value) = named.and_then(|v| header::HeaderValue::from_str(&v).ok()) {
        res.headers_mut().insert(header::HeaderName::from_static("traceresponse"), value);
    }
    Ok(res)
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
    /// HTTP worker threads (each its own event loop).
    pub workers: usize,
    /// Per-client rate limits (`web::Data<ClientLimits>` for the handlers).
    pub limits: crate::limits::ClientLimits,
}

/// Prometheus metrics of the service `name` (its routes, labelled `service`), in the
/// process's `registry`, served at `/metrics` with everything else the process counts.
fn metrics(
    name: &str,
    registry: &troupe_core::metrics::Registry,
) -> std::io::Result<actix_web_prom::PrometheusMetrics> {
    actix_web_prom::PrometheusMetricsBuilder::new("troupe")
        .registry(registry.clone())
        .buckets(&troupe_core::metrics::SECONDS)
        .endpoint("/metrics")
        .const_labels([("service".to_owned(), name.to_owned())].into())
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| std::io::Error::other(format!("metrics: {e}")))
}

/// The body limit, and every extractor failure (query string, path) in the envelope.
fn extractor_errors(cfg: &mut ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(BODY_LIMIT))
        .app_data(web::QueryConfig::default().error_handler(|err, _| {
            let detail = match &err {
                actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
                other => other.to_string(),
            };
            ApiError(ServiceError::BadRequest(format!("invalid query string: {detail}"))).into()
        }))
        .app_data(web::PathConfig::default().error_handler(|err, req| {
            // `PATCH /users/me` reaches `/users/{id}` and fails there: 405, `/users/me` has no PATCH.
            match crate::openapi::method_not_allowed(req) {
                Some(res) => actix_web::error::InternalError::from_response(err, res).into(),
                None => ApiError(ServiceError::NotFound(format!("no such resource: {}", req.path()))).into(),
            }
        }));
}

/// `$server` listening on `$listener`: over TLS only when the process has a certificate
/// ([`crate::tls`]; actix offers h2 and http/1.1 by ALPN itself), each handshake within
/// TLS_HANDSHAKE_TIMEOUT. A macro, as the server's type parameters are actix's own.
macro_rules! listen {
    ($server:expr, $listener:expr) => {{
        let tls = crate::tls::current();
        match tls.server_config(&[]) {
            Some(config) => $server
                .tls_handshake_timeout(tls.handshake_timeout())
                .listen_rustls_0_23($listener, rustls::ServerConfig::clone(&config)),
            None => $server.listen($listener),
        }
    }};
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
    let metrics = metrics(name, opts.readiness.metrics().registry())?;
    let readiness = web::Data::new(opts.readiness.clone());
    let limits = web::Data::new(opts.limits.clone());
    let origins = opts.cors_origins.clone();
    let openapi = crate::openapi::routes(name);
    let server = HttpServer::new(move || {
        // Middleware runs outermost-last: metrics time the whole request, the request id is
        // adopted (or made) and echoed on the reply, TracingLogger opens the request span
        // with it (adopting the caller's traceparent), the span is named on the reply
        // (traceresponse), a request from a page on an origin not allowed is refused (403)
        // before it acts, then CORS answers preflights.
        App::new()
            .wrap(cors(&origins))
            .wrap(actix_web::middleware::from_fn(refuse_foreign_origins))
            .wrap(actix_web::middleware::from_fn(trace_response))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap_fn(|req, srv| {
                let id = incoming_request_id(req.headers());
                req.extensions_mut().insert(id.clone());
                req.extensions_mut().insert(Started(std::time::Instant::now()));
                let res = srv.call(req);
                async move {
                    let mut res = res.await?;
                    if let Ok(value) = header::HeaderValue::from_str(id.as_str()) {
                        res.headers_mut().insert(header::HeaderName::from_static(request_id::HEADER), value);
                    }
                    Ok(res)
                }
            })
            .wrap(
                actix_web::middleware::DefaultHeaders::new()
                    .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                    .add((header::REFERRER_POLICY, "no-referrer")),
            )
            .wrap(metrics.clone())
            .app_data(readiness.clone())
            .app_data(limits.clone())
            .app_data(web::Data::new(AllowedOrigins(origins.clone())))
            .app_data(ServiceName(name))
            .configure(extractor_errors)
            .configure(health_routes)
            .configure(crate::traces::routes)
            .configure(openapi.clone())
            .configure(configure.clone())
            .default_service(web::to(not_found))
    })
    .workers(opts.workers.max(1))
    .shutdown_timeout(opts.shutdown_timeout.as_secs().max(1))
    // The platform owns SIGTERM / Ctrl-C: actix-server's own handling would stop the whole
    // actor system with the servers, before the event consumers could drain.
    .disable_signals();
    let server = listen!(server, listener)?.run();
    tracing::info!(service = name, port, tls = crate::tls::current().serves_tls(), "listening");
    Ok(RunningServer { name, port, server })
}
