//! The logger service over every ingress path (HTTP, gRPC, JSON-RPC, the broker's `log`
//! action and `/log-grpc`), its read API, bad input on each adapter, split mode on MongoDB,
//! a store outage, and auth's audit entries.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use troupe_core::config::LoggerSettings;
use troupe_http::grpc::pb::log_service_client::LogServiceClient;
use troupe_http::grpc::pb::{Log, LogRequest};
use troupe_http::platform;
use url::Url;

use crate::helpers::{TcpProxy, TestApp, common, eventually, parts};

/// Where the test MongoDB-wire server is (SecantusDB from `make services`).
fn mongo_addr() -> String {
    std::env::var("TEST_MONGO_ADDR").unwrap_or_else(|_| "127.0.0.1:27017".into())
}

/// Settings for a logger on a fresh MongoDB database at `addr`; fails loudly without one.
async fn mongo_logger(addr: &str) -> LoggerSettings {
    TcpStream::connect(mongo_addr()).await.unwrap_or_else(|e| {
        panic!("a MongoDB-wire server is required on {} ({e}); run `make services`", mongo_addr())
    });
    let mut s = LoggerSettings::embedded("/nonexistent");
    s.mongo_url = format!("mongodb://{addr}/?directConnection=true").as_str().into();
    s.mongo_database = format!("troupe_test_{}", uuid::Uuid::new_v4().simple());
    s.log_store_timeout = Duration::from_secs(1);
    s
}

/// `troupe serve logger` with `settings`; fills the app's logger fields.
fn spawn_logger(app: &mut TestApp, settings: &LoggerSettings) {
    let p = platform::serve_logger(&common(), settings).expect("logger starts");
    app.set_logger(&p);
    actix_web::rt::spawn(p.run_until(std::future::pending()));
}

/// A logger on MongoDB and a broker reaching it over HTTP and gRPC (split mode).
async fn split_on_mongo(mongo: &str) -> TestApp {
    let settings = mongo_logger(mongo).await;
    let mut app = TestApp::split_parts();
    spawn_logger(&mut app, &settings);
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let logger = Url::parse(&app.logger).expect("url");
    let grpc = Url::parse(&format!("http://127.0.0.1:{}", app.logger_grpc)).expect("url");
    let port = TestApp::spawn_broker_with_logger(nowhere, logger, grpc);
    app.broker = format!("http://127.0.0.1:{port}");
    app.wait_ready(&app.logger.clone()).await;
    app
}

async fn logs(app: &TestApp, base: &str, query: &str) -> (u16, Value) {
    parts(app.http.get(format!("{base}/logs?{query}")).send().await.expect("answers")).await
}

/// Entries named `name` as the broker lists them.
async fn entries_named(app: &TestApp, name: &str) -> Vec<Value> {
    let (status, body) = logs(app, &app.broker, &format!("name={name}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["entries"].as_array().cloned().unwrap_or_default()
}

async fn post_log(app: &TestApp, body: &Value) -> (u16, Value) {
    parts(app.http.post(format!("{}/log", app.logger)).json(body).send().await.expect("answers")).await
}

async fn grpc_write(app: &TestApp, name: &str, data: &str) -> Result<String, tonic::Status> {
    let mut client = LogServiceClient::connect(format!("http://127.0.0.1:{}", app.logger_grpc))
        .await
        .expect("gRPC connects");
    let req = LogRequest { log_entry: Some(Log { name: name.into(), data: data.into() }) };
    client.write_log(req).await.map(|r| r.into_inner().result)
}

/// A raw JSON-RPC connection: write lines, read replies.
struct RpcConn {
    reader: BufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
}

impl RpcConn {
    async fn open(port: u16) -> RpcConn {
        let (r, w) = TcpStream::connect(("127.0.0.1", port)).await.expect("JSON-RPC connects").into_split();
        RpcConn { reader: BufReader::new(r), writer: w }
    }

    async fn call_raw(&mut self, line: &str) -> Option<Value> {
        self.writer.write_all(format!("{line}\n").as_bytes()).await.ok()?;
        let mut reply = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut reply))
            .await
            .ok()?
            .ok()?;
        (n > 0).then(|| serde_json::from_str(&reply).expect("a JSON reply"))
    }

    /// Send raw bytes as one line (e.g. not UTF-8); the reply, if any.
    async fn call_bytes(&mut self, line: &[u8]) -> Option<Value> {
        self.writer.write_all(&[line, b"\n"].concat()).await.ok()?;
        let mut reply = String::new();
        let read = tokio::time::timeout(Duration::from_secs(10), self.reader.read_line(&mut reply));
        let n = read.await.ok()?.ok()?;
        (n > 0).then(|| serde_json::from_str(&reply).expect("a JSON reply"))
    }

    async fn log_info(&mut self, id: Value, name: &str, data: &str) -> Value {
        let req = json!({"method": "RPCServer.LogInfo", "params": [{"Name": name, "Data": data}], "id": id});
        self.call_raw(&req.to_string()).await.expect("a reply")
    }
}

/// Bytes sent as they are, as the body of one gRPC message (what a broken client sends).
#[derive(Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        tonic_prost::prost::bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(&mut self, buf: &mut tonic::codec::DecodeBuf<'_>) -> Result<Option<Vec<u8>>, tonic::Status> {
        use tonic_prost::prost::bytes::Buf;
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Call `WriteLog` on the logger's gRPC port with `body` as the message.
async fn grpc_raw(port: u16, body: Vec<u8>) -> Result<Vec<u8>, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("gRPC connects");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/logs.LogService/WriteLog");
    grpc.unary(tonic::Request::new(body), path, RawCodec).await.map(tonic::Response::into_inner)
}

/// Every ingress path stores an entry that `GET /logs` returns, with its service.
async fn assert_every_path_is_stored(app: &TestApp) {
    let (status, body) = post_log(app, &json!({"name": "via-http", "data": "h"})).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("logged")), "{body}");

    let (status, body) =
        parts(app.post_handle(&json!({"action": "log", "log": {"name": "via-broker", "data": "b"}})).await)
            .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body, json!({"error": false, "message": "Processed payload via RPC: via-broker"}));

    let res = app
        .http
        .post(format!("{}/log-grpc", app.broker))
        .json(&json!({"action": "log", "log": {"name": "via-log-grpc", "data": "g"}}))
        .send()
        .await
        .expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("logged")), "{body}");

    assert_eq!(grpc_write(app, "via-grpc", "r").await.expect("gRPC write"), "logged!");

    let mut rpc = RpcConn::open(app.logger_rpc).await;
    for n in 0..3 {
        let reply = rpc.log_info(json!(n), "via-jsonrpc", &format!("call {n}")).await;
        assert_eq!(
            reply,
            json!({"id": n, "result": "Processed payload via RPC: via-jsonrpc", "error": null})
        );
    }

    for (name, service) in [
        ("via-http", "logger"),
        ("via-broker", "broker"),
        ("via-log-grpc", "broker"),
        ("via-grpc", "grpc"),
        ("via-jsonrpc", "rpc"),
    ] {
        let found = entries_named(app, name).await;
        assert!(!found.is_empty(), "{name} not stored");
        let e = &found[0];
        assert_eq!(e["service"], service, "{e}");
        for field in ["id", "name", "data", "level", "created_at", "updated_at"] {
            assert!(!e[field].is_null(), "{field} missing in {e}");
        }
        for field in ["request_id", "event_id"] {
            assert!(e.get(field).is_some(), "{field} absent (must be present, maybe null) in {e}");
        }
    }
    assert_eq!(entries_named(app, "via-jsonrpc").await.len(), 3);
    let broker_entry = &entries_named(app, "via-broker").await[0];
    assert!(broker_entry["request_id"].as_str().is_some_and(|r| !r.is_empty()), "{broker_entry}");
}

#[actix_web::test]
async fn all_in_one_stores_an_entry_from_every_ingress_path() {
    assert_every_path_is_stored(&TestApp::all_in_one().await).await;
}

#[actix_web::test]
async fn split_mode_on_mongodb_stores_an_entry_from_every_ingress_path() {
    assert_every_path_is_stored(&split_on_mongo(&mongo_addr()).await).await;
}

#[actix_web::test]
async fn logs_are_listed_newest_first_filtered_paged_and_fetched_by_id() {
    let app = TestApp::all_in_one().await;
    for n in 0..5 {
        let level = if n == 4 { "ERROR" } else { "INFO" };
        let (status, _) =
            post_log(&app, &json!({"name": "paged", "data": n.to_string(), "level": level})).await;
        assert_eq!(status, 202);
    }
    let (status, body) = logs(&app, &app.broker, "name=paged&limit=2").await;
    assert_eq!(status, 200, "{body}");
    let first = body["data"]["entries"].as_array().expect("entries").clone();
    assert_eq!(first.iter().map(|e| e["data"].clone()).collect::<Vec<_>>(), [json!("4"), json!("3")]);
    let cursor = body["data"]["next_cursor"].as_str().expect("a next cursor").to_owned();
    let (_, body) = logs(&app, &app.broker, &format!("name=paged&limit=2&cursor={cursor}")).await;
    assert_eq!(body["data"]["entries"][0]["data"], "2");
    let (_, body) = logs(&app, &app.logger, "name=paged&limit=50").await;
    assert_eq!(body["data"]["entries"].as_array().map(Vec::len), Some(5));
    assert_eq!(body["data"]["next_cursor"], Value::Null);

    let (_, body) = logs(&app, &app.broker, "name=paged&level=error").await;
    assert_eq!(body["data"]["entries"].as_array().map(Vec::len), Some(1));
    let (_, body) =
        logs(&app, &app.broker, "name=paged&since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z").await;
    assert_eq!(body["data"]["entries"].as_array().map(Vec::len), Some(0));

    let id = first[0]["id"].as_str().expect("id");
    let (status, body) =
        parts(app.http.get(format!("{}/logs/{id}", app.broker)).send().await.expect("answers")).await;
    assert_eq!((status, &body["data"]["data"]), (200, &json!("4")), "{body}");
    let (status, body) =
        parts(app.http.get(format!("{}/logs/65a1b2c3d4e5f60718293a4b", app.broker)).send().await.expect("a"))
            .await;
    assert_eq!((status, body["error"].as_bool()), (404, Some(true)), "{body}");
}

#[actix_web::test]
async fn bad_input_on_every_adapter_gets_a_clear_error_and_the_server_keeps_serving() {
    let app = TestApp::all_in_one().await;
    let post = |body: String| {
        app.http
            .post(format!("{}/log", app.logger))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let big = json!({"name": "big", "data": "x".repeat(1_100_000)}).to_string();
    for (body, status) in [
        ("{not json".to_owned(), 400),
        (json!({"name": "n", "data": 5}).to_string(), 400),
        (json!({"data": "no name"}).to_string(), 400),
        (json!({"name": "n", "data": "d", "level": "LOUD"}).to_string(), 422),
        (json!({"name": "x".repeat(300), "data": "d"}).to_string(), 422),
        (big, 413),
    ] {
        let (got, reply) = parts(post(body).await.expect("answers")).await;
        assert_eq!(got, status, "{reply}");
        assert_eq!(reply["error"], true, "{reply}");
    }
    for query in ["limit=abc", "limit=0", "since=yesterday", "cursor=garbage", "level=LOUD"] {
        let (status, body) = logs(&app, &app.logger, query).await;
        assert_eq!((status, body["error"].as_bool()), (400, Some(true)), "{query}: {body}");
    }
    for body in [json!({"action": "log"}), json!({"action": "log", "log": {"name": 1, "data": "d"}})] {
        let (status, reply) = parts(app.post_handle(&body).await).await;
        assert_eq!((status, reply["error"].as_bool()), (400, Some(true)), "{reply}");
    }
    let res = app.http.post(format!("{}/log-grpc", app.broker)).body("][").send().await.expect("answers");
    assert_eq!(res.status(), 400);

    // gRPC: a request without an entry is rejected, the next one is served.
    let mut client =
        LogServiceClient::connect(format!("http://127.0.0.1:{}", app.logger_grpc)).await.expect("c");
    let err = client.write_log(LogRequest { log_entry: None }).await.expect_err("rejected");
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(grpc_write(&app, "after-bad-grpc", "ok").await.expect("served"), "logged!");
    // A payload that is not a LogRequest at all is the client's fault too.
    let err = grpc_raw(app.logger_grpc, b"\xff\xff\xff\xff garbage".to_vec()).await.expect_err("rejected");
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
    assert_eq!(grpc_write(&app, "after-garbage-grpc", "ok").await.expect("served"), "logged!");

    // JSON-RPC: garbage, wrong method, wrong params each get an error; the connection serves on.
    let mut rpc = RpcConn::open(app.logger_rpc).await;
    for line in [
        "this is not json",
        r#"{"method":"RPCServer.Nope","params":[{}],"id":1}"#,
        r#"{"method":"RPCServer.LogInfo","params":[{"Name":5}],"id":2}"#,
        r#"{"method":"RPCServer.LogInfo","params":[],"id":"three"}"#,
    ] {
        let reply = rpc.call_raw(line).await.expect("an error reply");
        assert!(reply["error"].is_string(), "{line}: {reply}");
        assert_eq!(reply["result"], Value::Null);
    }
    let ok = rpc.log_info(json!(7), "after-bad-rpc", "ok").await;
    assert_eq!(ok["result"], "Processed payload via RPC: after-bad-rpc");
    // Lines that are not UTF-8 each get an error too, and the valid call after them is answered.
    for garbage in [&b"\xff\xfe not utf-8"[..], &b"{\"method\":\"\xc3\x28\"}"[..]] {
        let reply = rpc.call_bytes(garbage).await.expect("an error reply, not a closed connection");
        assert_eq!(reply["error"], "invalid request: not UTF-8", "{reply}");
    }
    let ok = rpc.log_info(json!(8), "after-not-utf8", "ok").await;
    assert_eq!(ok["result"], "Processed payload via RPC: after-not-utf8");
    // An over-long line is answered with an error and the connection closed; others serve on.
    let mut long = RpcConn::open(app.logger_rpc).await;
    let reply = long.call_raw(&"x".repeat(1_100_000)).await.expect("an error reply");
    assert!(reply["error"].is_string());
    assert_eq!(long.call_raw("{}").await, None, "closed after an over-long line");
    let ok = RpcConn::open(app.logger_rpc).await.log_info(json!(0), "after-long", "ok").await;
    assert_eq!(ok["error"], Value::Null);

    let (status, _) = post_log(&app, &json!({"name": "still-serving", "data": "ok"})).await;
    assert_eq!(status, 202);
}

#[actix_web::test]
async fn a_store_outage_is_503_within_the_deadline_and_the_same_process_recovers() {
    let proxy = TcpProxy::start(mongo_addr().parse().expect("socket address")).await;
    let mut app = split_on_mongo(&format!("127.0.0.1:{}", proxy.port)).await;
    let write = |n: u32| json!({"action": "log", "log": {"name": "outage", "data": n.to_string()}});
    eventually(Duration::from_secs(10), "first write", || async {
        (app.post_handle(&write(0)).await.status() == 202).then_some(())
    })
    .await;

    proxy.cut();
    let started = Instant::now();
    let (status, body) = parts(app.post_handle(&write(1)).await).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("logger unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "503 took {:?}", started.elapsed());
    let (status, _) = post_log(&app, &json!({"name": "outage", "data": "direct"})).await;
    assert_eq!(status, 503);

    proxy.restore();
    eventually(Duration::from_secs(20), "a write after the store returned", || async {
        (app.post_handle(&write(2)).await.status() == 202).then_some(())
    })
    .await;
    let stored: Vec<_> = entries_named(&app, "outage").await.iter().map(|e| e["data"].clone()).collect();
    assert!(stored.contains(&json!("2")), "{stored:?}");

    // A logger that is gone altogether: the broker answers 503 within its deadline.
    app.logger = "http://127.0.0.1:9".into();
    let port = TestApp::spawn_broker_with_logger(
        Url::parse("http://127.0.0.1:9").expect("url"),
        Url::parse("http://127.0.0.1:9").expect("url"),
        Url::parse("http://127.0.0.1:9").expect("url"),
    );
    app.broker = format!("http://127.0.0.1:{port}");
    let (status, _) = parts(app.post_handle(&write(3)).await).await;
    assert_eq!(status, 503);
    let res =
        app.http.post(format!("{}/log-grpc", app.broker)).json(&write(4)).send().await.expect("answers");
    assert_eq!(res.status(), 503);
}

#[actix_web::test]
async fn every_login_attempt_is_audited_without_the_password() {
    let app = TestApp::all_in_one().await;
    assert_eq!(app.login("admin@example.com", "verysecret").await.status(), 202);
    assert_eq!(app.login("admin@example.com", "wrong-password-123").await.status(), 401);
    let audit = eventually(Duration::from_secs(10), "two audit entries", || async {
        let found = entries_named(&app, "authentication").await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    let levels: Vec<_> = audit.iter().map(|e| e["level"].as_str().unwrap_or_default().to_owned()).collect();
    assert!(levels.contains(&"INFO".into()) && levels.contains(&"WARNING".into()), "{levels:?}");
    let text = serde_json::to_string(&audit).unwrap_or_default();
    assert!(!text.contains("verysecret") && !text.contains("wrong-password-123"), "{text}");
    assert!(text.contains("admin@example.com"));
}

#[actix_web::test]
async fn a_login_that_cannot_be_audited_is_refused_and_no_token_is_handed_out() {
    // `troupe serve auth` without RABBIT_URL records logins through a logger that is down.
    let dsn = crate::helpers::fresh_pg_database().await;
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let auth_port = TestApp::spawn_auth_with_audit(&dsn, &nowhere);
    let app = TestApp::split_parts_with_auth(auth_port);
    app.wait_ready(&app.auth).await;
    let res = app
        .http
        .post(format!("{}/authenticate", app.auth))
        .json(&json!({"email": "admin@example.com", "password": "verysecret"}))
        .send()
        .await
        .expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("login audit unavailable")), "{body}");
    assert!(body.get("token").is_none_or(Value::is_null) && body["data"].is_null(), "{body}");
}

#[actix_web::test]
async fn json_rpc_connections_over_the_limit_are_told_the_server_is_busy() {
    let dir = tempfile::tempdir().expect("dir");
    let settings = LoggerSettings { logger_rpc_max_connections: 2, ..LoggerSettings::embedded(dir.path()) };
    let mut app = TestApp::split_parts();
    spawn_logger(&mut app, &settings);
    app.wait_ready(&app.logger.clone()).await;

    let mut first = RpcConn::open(app.logger_rpc).await;
    let mut second = RpcConn::open(app.logger_rpc).await;
    assert_eq!(first.log_info(json!(1), "rpc-a", "a").await["error"], Value::Null);
    assert_eq!(second.log_info(json!(2), "rpc-b", "b").await["error"], Value::Null);

    let mut third = RpcConn::open(app.logger_rpc).await;
    let refused = third.log_info(json!(3), "rpc-c", "c").await;
    assert!(refused["error"].as_str().is_some_and(|e| e.starts_with("server busy")), "{refused}");
    assert_eq!(third.call_raw("{}").await, None, "the refused connection is closed");

    // A place frees when a connection closes; the held ones keep working meanwhile.
    drop(first);
    let reply = eventually(Duration::from_secs(10), "a freed place", || async {
        let mut conn = RpcConn::open(app.logger_rpc).await;
        let reply = conn.log_info(json!(4), "rpc-d", "d").await;
        reply["error"].is_null().then_some(reply)
    })
    .await;
    assert_eq!(reply["result"], "Processed payload via RPC: rpc-d");
    assert_eq!(second.log_info(json!(5), "rpc-e", "e").await["error"], Value::Null);
}
