//! The logger's gRPC adapter (`LOGGER_GRPC_PORT`, 50001): `logs.LogService/WriteLog` exactly as
//! the Go platform's proto (`proto/logs.proto`), plus the standard `grpc.health.v1` service,
//! and the client the broker uses for `POST /log-grpc` in split mode.
//!
//! Troupe reads two optional request metadata keys, `x-request-id` and `x-service`, and answers
//! the stored entry's id in the `x-log-id` response metadata; Go clients need neither. A call
//! is a server span adopting the caller's W3C `traceparent` / `tracestate` metadata, and the
//! client sends its own span's.

use std::future::Future;
use std::time::Duration;

use actix::{Actor, Context, Handler, Recipient, ResponseFuture};
use tokio::net::TcpListener;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};
use tracing::Instrument as _;
use troupe_core::messages::{MAX_FIELD_LEN, NewLogEntry, WriteLog};
use troupe_core::{RequestId, ServiceError};
use url::Url;

pub mod codec;

/// Code generated from `proto/logs.proto`.
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("logs");
}

use pb::log_service_client::LogServiceClient;
use pb::log_service_server::{LogService, LogServiceServer};
use pb::{Log, LogRequest, LogResponse};

/// The gRPC reply of a stored entry, as in the Go platform.
pub const GRPC_RESULT: &str = "logged!";

/// `logs.LogService` backed by the logger actor.
pub struct LogGrpc {
    write: Recipient<WriteLog>,
    timeout: Duration,
}

fn metadata<'r>(req: &'r Request<LogRequest>, key: &str) -> Option<&'r str> {
    req.metadata().get(key).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

/// The metadata key carrying the [`ServiceError::kind`] of a failed call.
pub const KIND: &str = "x-error-kind";

/// The gRPC status of `err`, with its kind in the [`KIND`] metadata.
pub fn status(err: &ServiceError) -> Status {
    let code = match err.status() {
        503 => tonic::Code::Unavailable,
        400 | 413 | 415 | 422 => tonic::Code::InvalidArgument,
        404 => tonic::Code::NotFound,
        _ => tonic::Code::Internal,
    };
    let mut metadata = tonic::metadata::MetadataMap::new();
    metadata.insert(KIND, tonic::metadata::MetadataValue::from_static(err.kind()));
    Status::with_metadata(code, err.to_string(), metadata)
}

/// The `ServiceError` a failed call to `service` stands for: the variant its [`KIND`]
/// names, else (a peer that sends none, a transport failure) by its code.
pub fn service_error(s: &Status, service: &str) -> ServiceError {
    let kind = s.metadata().get(KIND).and_then(|v| v.to_str().ok());
    if let Some(err) = kind.and_then(|kind| ServiceError::from_kind(kind, s.message().to_owned(), service)) {
        return err;
    }
    match s.code() {
        tonic::Code::InvalidArgument => ServiceError::BadRequest(s.message().to_owned()),
        code => {
            tracing::warn!(?code, error = %s.message(), "{service} gRPC call failed");
            ServiceError::unavailable(service)
        }
    }
}

#[tonic::async_trait]
impl LogService for LogGrpc {
    async fn write_log(&self, req: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        let span = tracing::info_span!(
            "gRPC request",
            otel.name = "logs.LogService/WriteLog",
            otel.kind = "server",
            service = "logger",
            rpc.system = "grpc"
        );
        troupe_core::telemetry::adopt(&span, &MetadataExtractor(req.metadata()));
        self.write(req).instrument(span).await
    }
}

/// Request metadata as an OpenTelemetry extractor (for `traceparent`, `tracestate`).
struct MetadataExtractor<'a>(&'a tonic::metadata::MetadataMap);

impl opentelemetry::propagation::Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

impl LogGrpc {
    /// `WriteLog`, inside the call's span.
    async fn write(&self, req: Request<LogRequest>) -> Result<Response<LogResponse>, Status> {
        // Metadata Troupe cannot use (a malformed id, an over-long service) is ignored.
        let request_id = metadata(&req, "x-request-id").and_then(RequestId::parse);
        let service = metadata(&req, "x-service").filter(|s| s.len() <= MAX_FIELD_LEN).unwrap_or("grpc");
        let service = service.to_owned();
        let Some(Log { name, data }) = req.into_inner().log_entry else {
            return Err(Status::invalid_argument("missing logEntry"));
        };
        let entry = NewLogEntry::new(name, data)
            .and_then(|e| e.with_service(service))
            .map_err(|e| status(&e))?
            .with_request_id(request_id);
        let id = self
            .write
            .send(WriteLog(entry))
            .timeout(self.timeout)
            .await
            .map_err(|_| status(&ServiceError::unavailable("logger")))?
            .map_err(|e| status(&e))?;
        let mut res = Response::new(LogResponse { result: GRPC_RESULT.into() });
        if let Ok(v) = id.parse() {
            res.metadata_mut().insert("x-log-id", v);
        }
        Ok(res)
    }
}

/// Serve `logs.LogService` and gRPC health on `listener` until `shutdown` resolves (over TLS
/// only when the process has a certificate).
pub async fn serve(
    listener: TcpListener,
    write: Recipient<WriteLog>,
    timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<LogServiceServer<LogGrpc>>().await;
    // The body limit of the HTTP adapters, for the same reason.
    let logs =
        LogServiceServer::new(LogGrpc { write, timeout }).max_decoding_message_size(crate::api::BODY_LIMIT);
    let router = tonic::transport::Server::builder()
        .timeout(timeout * 2)
        .add_service(health_service)
        .add_service(logs);
    let tls = crate::tls::current();
    let Some(acceptor) = tls.acceptor(&[b"h2"]) else {
        let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
        return router.serve_with_incoming_shutdown(incoming, shutdown).await;
    };
    let (incoming, accepting) = crate::tls::incoming(listener, acceptor, tls.handshake_timeout());
    let served = router.serve_with_incoming_shutdown(incoming, shutdown).await;
    accepting.abort();
    served
}

/// Forwards [`WriteLog`] to a remote logger over gRPC: one long-lived channel (HTTP/2,
/// multiplexed, reconnected by tonic), a deadline per call.
pub struct GrpcLogProxy {
    client: LogServiceClient<Channel>,
    timeout: Duration,
}

impl GrpcLogProxy {
    /// A proxy to the logger's gRPC endpoint at `url` (connected lazily). Needs a Tokio
    /// runtime: the channel's worker is spawned on the current one.
    pub fn new(url: &Url, timeout: Duration) -> anyhow::Result<Self> {
        Ok(Self::lazy(Self::endpoint(url, timeout)?, timeout))
    }

    /// The endpoint at `url`, checked, with connect and call deadlines (no connection yet).
    /// For `https://`, TLS trusting TLS_CA_FILE ([`crate::tls::grpc_endpoint`]).
    pub fn endpoint(url: &Url, timeout: Duration) -> anyhow::Result<Endpoint> {
        crate::tls::grpc_endpoint(url, timeout)
    }

    /// A proxy over a channel to `endpoint`, connected on first use; its worker runs on the
    /// current runtime.
    pub fn lazy(endpoint: Endpoint, timeout: Duration) -> Self {
        Self { client: LogServiceClient::new(endpoint.connect_lazy()), timeout }
    }
}

impl Actor for GrpcLogProxy {
    type Context = Context<Self>;
}

impl Handler<WriteLog> for GrpcLogProxy {
    type Result = ResponseFuture<Result<String, ServiceError>>;

    fn handle(&mut self, WriteLog(entry): WriteLog, _: &mut Context<Self>) -> Self::Result {
        let mut client = self.client.clone();
        let log = Log { name: entry.name().to_owned(), data: entry.data().to_owned() };
        let mut req = Request::new(LogRequest { log_entry: Some(log) });
        req.set_timeout(self.timeout);
        let request_id = entry.request_id().map(RequestId::as_str);
        for (key, value) in [("x-request-id", request_id), ("x-service", Some(entry.service()))] {
            if let Some(v) = value.and_then(|v| v.parse().ok()) {
                req.metadata_mut().insert(key, v);
            }
        }
        let span = tracing::info_span!(parent: entry.span(), "gRPC client",
                                       otel.name = "logs.LogService/WriteLog", otel.kind = "client");
        for (key, value) in troupe_core::telemetry::carrier(&span).0 {
            if let (Ok(key), Ok(value)) = (key.parse::<tonic::metadata::AsciiMetadataKey>(), value.parse()) {
                req.metadata_mut().insert(key, value);
            }
        }
        Box::pin(
            async move {
                let res = client.write_log(req).await.map_err(|s| service_error(&s, "logger"))?;
                let id = res.metadata().get("x-log-id").and_then(|v| v.to_str().ok()).unwrap_or_default();
                Ok(id.to_owned())
            }
            .instrument(span),
        )
    }
}
