//! `GET /metrics` carries the platform's families with their labels, and the broker's
//! `GET /metrics/history` gives each service's series, in both run modes and with a service
//! down.

use std::time::Duration;

use serde_json::{Value, json};
use troupe_core::config::LoggerSettings;
use troupe_core::metrics::MetricsMode;
use troupe_http::platform;
use url::Url;

use crate::helpers::{TestApp, common, eventually, parts, up_args};

async fn metrics(app: &TestApp, base: &str) -> String {
    let res = app.http.get(format!("{base}/metrics")).send().await.expect("answers");
    assert_eq!(res.status(), 200);
    res.text().await.expect("text")
}

/// The value of the sample `line_start` (name and labels exactly as printed), if present.
fn value(text: &str, line_start: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(line_start)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn history(app: &TestApp, base: &str) -> Value {
    let (status, body) =
        parts(app.http.get(format!("{base}/metrics/history")).send().await.expect("answers")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["error"], false);
    body["data"].clone()
}

async fn log(app: &TestApp, n: usize) {
    for i in 0..n {
        let res = app
            .post_handle(&json!({"action": "log", "log": {"name": "metrics", "data": format!("#{i}")}}))
            .await;
        assert_eq!(res.status(), 202);
    }
}

#[actix_rt::test]
async fn metrics_count_each_broker_action_once_with_its_outcome_beside_the_stores_and_backends() {
    let app = TestApp::all_in_one().await;
    log(&app, 3).await;
    let res = app.post_handle(&json!({"action": "dance"})).await;
    assert_eq!(res.status(), 400);

    let text = metrics(&app, &app.broker).await;
    let action = |a: &str, o: &str| {
        value(&text, &format!("troupe_broker_actions_total{{action=\"{a}\",outcome=\"{o}\"}}"))
    };
    assert_eq!(action("log", "ok"), Some(3.0), "{text}");
    assert_eq!(action("log", "server_error"), Some(0.0));
    assert_eq!(action("unknown", "client_error"), Some(1.0));
    assert_eq!(value(&text, "troupe_broker_action_duration_seconds_count{action=\"log\"}"), Some(3.0));
    assert_eq!(value(&text, "troupe_broker_actions_in_flight{action=\"log\"}"), Some(0.0));
    let batches = value(&text, "troupe_log_store_batch_size_sum").expect("batch sizes");
    assert_eq!(batches, 3.0, "every entry in some batch, once");
    assert!(value(&text, "troupe_log_store_commit_seconds_count").is_some_and(|n| n >= 1.0));
    assert_eq!(value(&text, "troupe_backend_up{backend=\"logger.store\"}"), Some(1.0));
    assert_eq!(value(&text, "troupe_actor_restarts_total{actor=\"logger.store\"}"), Some(0.0));
    assert_eq!(value(&text, "troupe_actor_in_flight{actor=\"logger\"}"), Some(0.0));
    // Every server of the process shares the registry, each under its own service label.
    assert!(text.contains(
        "troupe_http_requests_total{endpoint=\"/handle\",method=\"POST\",service=\"broker\",status=\"202\"} 3"
    ));
    assert!(text.contains("service=\"auth\""), "auth's /readyz probes are in the broker's /metrics");
    assert_eq!(text.matches("# TYPE troupe_broker_actions_total counter").count(), 1, "one family");
    assert_eq!(metrics(&app, &app.logger).await.matches("# TYPE troupe_broker_actions_total").count(), 1);
}

#[actix_rt::test]
async fn an_event_dead_lettered_and_a_published_one_show_in_their_counters() {
    let app = TestApp::all_in_one().await;
    let bad = json!({"action": "event", "event": {"name": "mail", "data": "not a mail"}});
    assert_eq!(app.post_handle(&bad).await.status(), 202);
    let ok = json!({"action": "event", "event": {"name": "metrics", "data": "fine"}});
    assert_eq!(app.post_handle(&ok).await.status(), 202);
    let text = eventually(Duration::from_secs(15), "one event dead-lettered, the other stored", || async {
        let text = metrics(&app, &app.broker).await;
        let dead = value(&text, "troupe_events_dead_lettered_total") == Some(1.0);
        (dead && value(&text, "troupe_events_acked_total") == Some(1.0)).then_some(text)
    })
    .await;
    assert_eq!(value(&text, "troupe_events_total{stage=\"published\"}"), Some(2.0), "{text}");
    assert_eq!(value(&text, "troupe_events_total{stage=\"confirmed\"}"), Some(2.0));
    assert_eq!(value(&text, "troupe_events_total{stage=\"returned\"}"), Some(0.0));
    assert!(value(&text, "troupe_events_delivered_total").is_some_and(|n| n >= 2.0));
    assert!(value(&text, "troupe_events_queue_depth").is_some(), "the embedded queue's depth");
    assert_eq!(value(&text, "troupe_broker_actions_total{action=\"event\",outcome=\"ok\"}"), Some(2.0));
}

#[actix_rt::test]
async fn the_history_gives_each_service_a_bounded_series_that_follows_the_load() {
    let app = TestApp::all_in_one().await;
    log(&app, 5).await;
    let data = eventually(Duration::from_secs(15), "a broker point with requests", || async {
        let data = history(&app, &app.broker).await;
        let points = data["services"]["broker"]["points"].as_array()?;
        points.iter().any(|p| p["rate"].as_f64() > Some(0.0)).then_some(data)
    })
    .await;
    assert_eq!(data["interval_ms"], 1000);
    assert_eq!(data["window_ms"], 900_000);
    let broker = &data["services"]["broker"];
    assert_eq!(broker["up"], true);
    let point = broker["points"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["rate"].as_f64() > Some(0.0)))
        .expect("point");
    assert!(point["t"].as_i64().is_some_and(|t| t > 1_700_000_000_000), "{point}");
    assert!(point["p99_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{point}");
    assert_eq!(point["error_rate"].as_f64(), Some(0.0), "{point}");
    for name in ["auth", "logger", "mailer"] {
        assert_eq!(data["services"][name]["up"], true, "{name} sampled: {data}");
    }
    let bound = 900_000 / 1000;
    for (name, s) in data["services"].as_object().expect("services") {
        assert!(s["points"].as_array().is_some_and(|p| p.len() <= bound), "{name} bounded");
    }
    let events = data["events"]["points"].as_array().expect("events series");
    let last = events.last().expect("an events point");
    assert_eq!(
        (last["queue_depth"].as_f64().is_some(), last["dead_letters"].as_f64()),
        (true, Some(0.0)),
        "{last}"
    );
}

#[actix_rt::test]
async fn in_split_mode_the_broker_scrapes_each_service_and_one_down_says_so() {
    let dir = tempfile::tempdir().expect("temp dir");
    let logger =
        platform::serve_logger(&common(), &LoggerSettings::embedded(dir.path())).expect("logger starts");
    let logger_url =
        Url::parse(&format!("http://127.0.0.1:{}", logger.port("logger").expect("port"))).expect("url");
    let grpc =
        Url::parse(&format!("http://127.0.0.1:{}", logger.port("logger-grpc").expect("port"))).expect("url");
    actix_web::rt::spawn(logger.run_until(std::future::pending()));
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let mut app = TestApp::split_parts();
    let broker = TestApp::spawn_broker_with_logger(nowhere, logger_url.clone(), grpc);
    app.broker = format!("http://127.0.0.1:{broker}");
    app.wait_ready(&app.broker).await;
    app.wait_ready(logger_url.as_str().trim_end_matches('/')).await;
    log(&app, 4).await;

    let data = eventually(Duration::from_secs(15), "the logger's scraped requests", || async {
        let data = history(&app, &app.broker).await;
        let points = data["services"]["logger"]["points"].as_array()?;
        points.iter().any(|p| p["rate"].as_f64() > Some(0.0)).then_some(data)
    })
    .await;
    assert_eq!(data["services"]["logger"]["up"], true, "{data}");
    let auth = &data["services"]["auth"];
    assert_eq!((auth["up"].as_bool(), auth["error"].as_str()), (Some(false), Some("unreachable")), "{auth}");
    let last = auth["points"].as_array().and_then(|p| p.last()).expect("a point for the down service");
    assert!(last["rate"].is_null() && last["p99_ms"].is_null(), "nothing measured: {last}");
    assert!(data["services"]["broker"]["points"].as_array().is_some_and(|p| !p.is_empty()));
}

#[actix_rt::test]
async fn with_troupe_metrics_off_only_the_route_metrics_remain() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = up_args(dir.path());
    args.common.metrics.mode = MetricsMode::Off;
    let p = platform::up(&args).expect("platform starts");
    let broker = format!("http://127.0.0.1:{}", p.port("broker").expect("port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let mut app = TestApp::split_parts();
    app.broker = broker.clone();
    app.wait_ready(&broker).await;
    log(&app, 2).await;
    let text = metrics(&app, &broker).await;
    assert!(text.contains("troupe_http_requests_total{"), "{text}");
    for family in
        ["troupe_broker_actions_total", "troupe_log_store_batch_size", "troupe_backend_up", "troupe_events_"]
    {
        assert!(!text.contains(family), "{family} is off: {text}");
    }
    eventually(Duration::from_secs(15), "the history still follows the load", || async {
        let data = history(&app, &broker).await;
        data["services"]["broker"]["points"]
            .as_array()?
            .iter()
            .any(|p| p["rate"].as_f64() > Some(0.0))
            .then_some(())
    })
    .await;
}
