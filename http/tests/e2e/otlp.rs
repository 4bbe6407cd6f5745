//! OTLP export in split mode: an OTLP/gRPC receiver built from the `opentelemetry-proto`
//! definitions runs in the test, every process gets `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at
//! it, and one login through the broker (audited by the auth process through RabbitMQ to the
//! listener process) arrives as one trace from several services.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use serde_json::json;

use crate::cluster::Cluster;

/// One span as received: its service (`service.name` of its resource) and ids in hex.
#[derive(Debug, Clone)]
struct Received {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

/// An OTLP/gRPC trace receiver that keeps every span it is sent.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Received>>>);

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut got = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .map(|v| match v {
                    AnyValue::StringValue(s) => s.clone(),
                    other => format!("{other:?}"),
                })
                .unwrap_or_default();
            for span in resource_spans.scope_spans.into_iter().flat_map(|s| s.spans) {
                got.push(Received {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Receiver {
    /// Listen on a free loopback port; returns the receiver and its endpoint URL.
    async fn start() -> (Receiver, String) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the receiver");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        let receiver = Receiver::default();
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(async move {
            let incoming = tonic::transport::server::TcpIncoming::from(listener);
            let _ =
                tonic::transport::Server::builder().add_service(service).serve_with_incoming(incoming).await;
        });
        (receiver, endpoint)
    }

    fn trace(&self, id: &str) -> Vec<Received> {
        let got = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        got.iter().filter(|s| s.trace_id == id).cloned().collect()
    }
}

/// The spans whose parent is not among them.
fn roots(spans: &[Received]) -> Vec<&Received> {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    spans.iter().filter(|s| !ids.contains(s.parent_span_id.as_str())).collect()
}

/// Wait until the receiver holds spans of trace `id` from every service in `services`, all
/// of them arrived (one root: no span waits for its parent).
async fn trace_from(receiver: &Receiver, id: &str, services: &[&str]) -> Vec<Received> {
    let complete = |spans: &[Received]| {
        let have: HashSet<&str> = spans.iter().map(|s| s.service.as_str()).collect();
        services.iter().all(|s| have.contains(s)) && roots(spans).len() == 1
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let spans = receiver.trace(id);
        if complete(&spans) {
            return spans;
        }
        if tokio::time::Instant::now() >= deadline {
            let all = receiver.0.lock().unwrap_or_else(PoisonError::into_inner).clone();
            panic!("spans of {id} from {services:?}: got {spans:#?}\nall: {all:#?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The spans form one tree: each one's parent is another of them, except one root, whose
/// parent is `root_parent` (the caller's span, or none: all zeros / empty).
fn assert_one_tree(spans: &[Received], root_parent: &str) {
    let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(ids.len(), spans.len(), "span ids are unique: {spans:#?}");
    let roots = roots(spans);
    assert_eq!(roots.len(), 1, "one root: {roots:#?}\nof {spans:#?}");
    let parent = roots[0].parent_span_id.trim_start_matches('0');
    assert_eq!(parent, root_parent.trim_start_matches('0'), "the root's parent: {roots:#?}");
    assert_eq!((roots[0].service.as_str(), roots[0].name.as_str()), ("broker", "POST /handle"));
}

fn trace_of(res: &reqwest::Response) -> String {
    let header = res.headers().get("traceresponse").and_then(|v| v.to_str().ok()).unwrap_or_default();
    header.split('-').nth(1).unwrap_or_default().to_owned()
}

#[actix_web::test]
async fn a_login_reaches_the_otlp_receiver_as_one_trace_from_broker_auth_and_listener() {
    let (receiver, endpoint) = Receiver::start().await;
    let mut cluster = Cluster::start().await;
    // The processes that serve a login, started again with the exporter on (the SIGTERM
    // also runs the last stop stage, the flush, with nothing to send).
    cluster.env.insert("OTEL_EXPORTER_OTLP_ENDPOINT".into(), endpoint);
    cluster.env.insert("OTEL_BSP_SCHEDULE_DELAY".into(), "200".into());
    for name in ["listener", "auth", "broker"] {
        cluster.terminate(name).await;
        cluster.spawn(name);
        cluster.wait_ready(name).await;
    }
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});

    // A caller's trace is kept: every span joins it, under the caller's span.
    let (caller_trace, caller_span) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let res = cluster
        .http
        .post(format!("{}/handle", cluster.url("broker")))
        .header("traceparent", format!("00-{caller_trace}-{caller_span}-01"))
        .json(&login)
        .send()
        .await
        .expect("the broker answers");
    assert_eq!(res.status(), 202);
    assert_eq!(trace_of(&res), caller_trace);
    let spans = trace_from(&receiver, caller_trace, &["broker", "auth", "listener"]).await;
    assert_one_tree(&spans, caller_span);
    let by_service: HashMap<&str, Vec<&str>> = spans.iter().fold(HashMap::new(), |mut m, s| {
        m.entry(s.service.as_str()).or_default().push(s.name.as_str());
        m
    });
    assert!(by_service["auth"].contains(&"Authenticate"), "{by_service:?}");
    assert!(by_service["listener"].contains(&"consume event"), "{by_service:?}");

    // Without one, the broker starts the trace and names it on the reply.
    let res = cluster.handle(&login).await;
    assert_eq!(res.status(), 202);
    let id = trace_of(&res);
    assert_eq!(id.len(), 32, "a traceresponse names the trace");
    assert_ne!(id, caller_trace);
    let spans = trace_from(&receiver, &id, &["broker", "auth", "listener"]).await;
    assert_one_tree(&spans, "");
}
