//! Every `ServiceError` crosses split mode intact: a real logger server (HTTP and gRPC) whose
//! store answers the variant asked for, and the broker's proxies mapping the reply back.

use std::time::Duration;

use actix::{Actor, Context, Handler};
use troupe_core::ServiceError;
use troupe_core::health::Readiness;
use troupe_core::messages::{GetLog, NewLogEntry, QueryLogs, WriteLog};
use troupe_http::api::{self, ServerOptions};
use troupe_http::grpc::{self, GrpcLogProxy};
use troupe_http::logger::{self, LogClients};
use troupe_http::proxy::LoggerProxy;
use url::Url;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A logger store that fails every write with the variant whose kind is the entry's name.
struct Failing;

impl Actor for Failing {
    type Context = Context<Self>;
}

impl Handler<WriteLog> for Failing {
    type Result = Result<String, ServiceError>;

    fn handle(&mut self, WriteLog(entry): WriteLog, _: &mut Context<Self>) -> Self::Result {
        let asked = ServiceError::every_variant().into_iter().find(|e| e.kind() == entry.name());
        Err(asked.unwrap_or(ServiceError::Internal))
    }
}

impl Handler<QueryLogs> for Failing {
    type Result = Result<troupe_core::messages::LogPage, ServiceError>;

    fn handle(&mut self, _: QueryLogs, _: &mut Context<Self>) -> Self::Result {
        Err(ServiceError::Internal)
    }
}

impl Handler<GetLog> for Failing {
    type Result = Result<troupe_core::messages::LogEntry, ServiceError>;

    fn handle(&mut self, _: GetLog, _: &mut Context<Self>) -> Self::Result {
        Err(ServiceError::Internal)
    }
}

fn asking_for(err: &ServiceError) -> WriteLog {
    WriteLog(NewLogEntry::new(err.kind(), "d").expect("a valid entry"))
}

#[actix_web::test]
async fn every_service_error_survives_the_http_proxy() {
    let store = Failing.start();
    let clients = LogClients {
        write: store.clone().recipient(),
        write_grpc: store.clone().recipient(),
        query: store.clone().recipient(),
        get: store.recipient(),
        tail: troupe_http::tail::LogTail::off(),
        timeout: TIMEOUT,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let opts = ServerOptions {
        cors_origins: vec![],
        shutdown_timeout: TIMEOUT,
        readiness: Readiness::default(),
        workers: 1,
        limits: troupe_http::limits::ClientLimits::default(),
    };
    let server = api::serve("logger", listener, opts, logger::routes(clients)).expect("serves");
    let base = Url::parse(&format!("http://127.0.0.1:{}/", server.port)).expect("url");
    actix_web::rt::spawn(server.run_until_stopped());
    let proxy = LoggerProxy::new(&base, TIMEOUT).expect("proxy").start();
    for err in ServiceError::every_variant() {
        let got = proxy.send(asking_for(&err)).await.expect("proxy answers");
        assert_eq!(got, Err(err));
    }
}

#[actix_web::test]
async fn every_service_error_survives_the_grpc_proxy() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let write = Failing.start().recipient();
    actix_web::rt::spawn(grpc::serve(listener, write, TIMEOUT, std::future::pending()));
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let proxy = GrpcLogProxy::new(&url, TIMEOUT).expect("proxy").start();
    for err in ServiceError::every_variant() {
        let got = proxy.send(asking_for(&err)).await.expect("proxy answers");
        assert_eq!(got, Err(err));
    }
}
