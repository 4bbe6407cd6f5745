//! The live log tail, `GET /logs/stream`: entries written after a client subscribed arrive
//! as server-sent events with the filters of `GET /logs`, a reconnect with `Last-Event-ID`
//! gets what it missed, and the broker serves it in both run modes.

use std::time::Duration;

use reqwest::Response;
use serde_json::{Value, json};
use troupe_core::config::LoggerSettings;
use url::Url;

use crate::helpers::{TestApp, common};

/// How long one event may take to arrive.
const WITHIN: Duration = Duration::from_secs(10);

/// A server-sent event stream being read.
struct Events {
    res: Response,
    buffer: String,
}

impl Events {
    /// Subscribe to `base`'s stream with `query` (and `last_id`); the reply's headers mean
    /// the subscription is in place.
    async fn open(app: &TestApp, base: &str, query: &str, last_id: Option<&str>) -> Events {
        let mut req = app.http.get(format!("{base}/logs/stream?{query}"));
        if let Some(id) = last_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = req.send().await.expect("the stream answers");
        assert_eq!(res.status(), 200, "{base}/logs/stream");
        let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
        assert_eq!(kind, "text/event-stream");
        Events { res, buffer: String::new() }
    }

    /// The next event carrying data: its `id` and its JSON (comments and `retry:` skipped).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let field = |name: &str| {
                    frame.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned())
                };
                if let (Some(id), Some(data)) = (field("id:"), field("data:")) {
                    return (id, serde_json::from_str(&data).expect("JSON data"));
                }
                continue;
            }
            let chunk = tokio::time::timeout(WITHIN, self.res.chunk()).await;
            let chunk =
                chunk.expect("an event in time").expect("the stream reads").expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

async fn log_through_broker(app: &TestApp, name: &str, data: &str) {
    let res = app.post_handle(&json!({"action": "log", "log": {"name": name, "data": data}})).await;
    assert_eq!(res.status(), 202, "log {name}");
}

#[actix_rt::test]
async fn the_broker_streams_entries_written_after_subscribing_with_the_filters_of_get_logs() {
    let app = TestApp::all_in_one().await;
    let mut events = Events::open(&app, &app.broker, "name=tail-test&service=broker", None).await;

    log_through_broker(&app, "not-followed", "filtered out").await;
    log_through_broker(&app, "tail-test", "first").await;
    let (first_id, entry) = events.next().await;
    assert_eq!((entry["name"].as_str(), entry["data"].as_str()), (Some("tail-test"), Some("first")));
    assert!(first_id.ends_with(entry["id"].as_str().unwrap_or("?")), "{first_id} is the entry's cursor");
    drop(events);

    // Written while nobody follows: a reconnect with the last id it saw gets it first.
    log_through_broker(&app, "tail-test", "missed").await;
    let mut events = Events::open(&app, &app.broker, "name=tail-test", Some(&first_id)).await;
    log_through_broker(&app, "tail-test", "live").await;
    assert_eq!(events.next().await.1["data"], "missed");
    assert_eq!(events.next().await.1["data"], "live");

    let res = app.http.get(format!("{}/logs/stream?level=LOUD", app.broker)).send().await.expect("answers");
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.expect("an envelope");
    assert_eq!((body["error"].as_bool(), body["kind"].as_str()), (Some(true), Some("bad_request")), "{body}");
}

#[actix_rt::test]
async fn a_split_mode_broker_forwards_the_loggers_stream() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut app = TestApp::split_parts();
    let p = troupe_http::platform::serve_logger(&common(), &LoggerSettings::embedded(dir.path()))
        .expect("logger starts");
    app.set_logger(&p);
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let logger = Url::parse(&app.logger).expect("url");
    let grpc = Url::parse(&format!("http://127.0.0.1:{}", app.logger_grpc)).expect("url");
    app.broker = format!("http://127.0.0.1:{}", TestApp::spawn_broker_with_logger(nowhere, logger, grpc));
    app.wait_ready(&app.logger.clone()).await;

    let mut events = Events::open(&app, &app.broker, "request_id=split-tail-1", None).await;
    let res = app
        .http
        .post(format!("{}/handle", app.broker))
        .header("x-request-id", "split-tail-1")
        .json(&json!({"action": "log", "log": {"name": "split-tail", "data": "through the proxy"}}))
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 202);
    let (_, entry) = events.next().await;
    assert_eq!(
        (entry["name"].as_str(), entry["request_id"].as_str()),
        (Some("split-tail"), Some("split-tail-1"))
    );
}

/// A writer the test can read while `troupe logs --follow` writes to it.
#[derive(Clone, Default)]
struct Screen(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Screen {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Screen {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
            .into_owned()
    }
}

#[actix_rt::test]
async fn troupe_logs_follow_prints_the_last_entries_then_new_ones_of_one_request() {
    use clap::Parser as _;
    let app = TestApp::all_in_one().await;
    log_through_broker(&app, "before", "written before following").await;
    let written = |id: &'static str, data: &'static str| {
        let req = app.http.post(format!("{}/handle", app.broker)).header("x-request-id", id);
        let body = json!({"action": "log", "log": {"name": "cli", "data": data}});
        async move { assert_eq!(req.json(&body).send().await.expect("answers").status(), 202) }
    };
    written("cli-req-1", "first of the request").await;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        logs: troupe_http::follow::LogsArgs,
    }
    let args =
        Cli::parse_from(["troupe", "--follow", "--request-id", "cli-req-1", "--url", &app.broker]).logs;
    let screen = Screen::default();
    let mut out = screen.clone();
    let running = actix_web::rt::spawn(async move { troupe_http::follow::run(&args, &mut out).await });
    crate::helpers::eventually(WITHIN, "the last entries printed", || async {
        screen.text().contains("first of the request").then_some(())
    })
    .await;
    written("cli-req-1", "second of the request").await;
    written("cli-req-2", "another request").await;
    let text = crate::helpers::eventually(WITHIN, "the new entry printed", || async {
        let text = screen.text();
        text.contains("second of the request").then_some(text)
    })
    .await;
    running.abort();
    assert!(!text.contains("another request") && !text.contains("written before"), "{text}");
    assert_eq!(text.matches("first of the request").count(), 1, "{text}");
    let line = text.lines().find(|l| l.contains("second")).unwrap_or_default();
    assert!(
        line.contains("INFO")
            && line.contains("broker")
            && line.contains("cli: ")
            && line.ends_with("[cli-req-1]"),
        "{line}"
    );
}

#[actix_rt::test]
async fn a_logger_restart_ends_the_forwarded_stream_and_a_reconnect_gets_what_it_missed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings =
        LoggerSettings { logger_port: troupe_testkit::free_port(), ..LoggerSettings::embedded(dir.path()) };
    let start = |settings: &LoggerSettings| {
        let p = troupe_http::platform::serve_logger(&common(), settings).expect("logger starts");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = actix_web::rt::spawn(p.run_until(async move { drop(stopped.await) }));
        (stop, running)
    };
    let (stop, running) = start(&settings);
    let mut app = TestApp::split_parts();
    app.logger = format!("http://127.0.0.1:{}", settings.logger_port);
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let logger = Url::parse(&app.logger).expect("url");
    app.broker =
        format!("http://127.0.0.1:{}", TestApp::spawn_broker_with_logger(nowhere.clone(), logger, nowhere));
    app.wait_ready(&app.logger.clone()).await;

    let mut events = Events::open(&app, &app.broker, "name=restart", None).await;
    log_through_broker(&app, "restart", "before the restart").await;
    let (last_id, _) = events.next().await;

    // The logger stops: its streams end at once (not after SHUTDOWN_TIMEOUT), and so does
    // the broker's, which is what makes a browser reconnect.
    let _ = stop.send(());
    tokio::time::timeout(WITHIN, running)
        .await
        .expect("the logger stops in time")
        .expect("joins")
        .expect("stops cleanly");
    let ended = tokio::time::timeout(WITHIN, async {
        loop {
            match events.res.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    });
    ended.await.expect("the broker's stream ends with the logger's");

    let (_stop, _running) = start(&settings);
    app.wait_ready(&app.logger.clone()).await;
    log_through_broker(&app, "restart", "after the restart").await;
    let mut events = Events::open(&app, &app.broker, "name=restart", Some(&last_id)).await;
    assert_eq!(events.next().await.1["data"], "after the restart");
}
