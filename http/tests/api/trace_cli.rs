//! `troupe trace ID` (the real binary) against a running `troupe up`: a login's trace found by
//! its request id or its trace id prints the broker's and auth's spans as a waterfall; an
//! unknown id and an unreachable broker fail with exit code 1 and say why.

use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually};

/// `troupe trace <args>` with nothing of the test's environment that could redirect it.
async fn troupe_trace(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"))
        .arg("trace")
        .args(args)
        .env_remove("BROKER_URL")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(30), run).await.expect("troupe trace ends").expect("troupe runs")
}

/// `troupe up` with tracing on, as the binary sets it up.
async fn traced_platform() -> TestApp {
    troupe_core::telemetry::init(troupe_core::telemetry::LogFormat::Text, "troupe");
    TestApp::all_in_one().await
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Log in through the broker under `request_id`; the trace id from the reply's `traceresponse`.
async fn login(app: &TestApp, request_id: &str) -> String {
    let body = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let res = app
        .http
        .post(format!("{}/handle", app.broker))
        .header("x-request-id", request_id)
        .json(&body)
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 202);
    let header = res.headers().get("traceresponse").and_then(|v| v.to_str().ok()).unwrap_or_default();
    let parts: Vec<&str> = header.split('-').collect();
    assert!(parts.len() == 4 && parts[1].len() == 32, "a traceresponse header: {header:?}");
    parts[1].to_owned()
}

#[actix_rt::test]
async fn troupe_trace_prints_a_logins_broker_and_auth_spans_found_by_its_request_id() {
    let app = traced_platform().await;
    let trace_id = login(&app, "trace-cli-login-1").await;
    // The services record their spans as they finish, the broker's root after its reply went
    // out: wait until auth's span and the broker's root are both there.
    eventually(Duration::from_secs(10), "auth's span and the broker's root in the trace", || async {
        let res = app.http.get(format!("{}/traces/{trace_id}", app.broker)).send().await.ok()?;
        let body: Value = res.json().await.ok()?;
        let spans = body["data"]["spans"].as_array()?.clone();
        let root = spans.iter().any(|s| s["service"] == "broker" && s["parent_span_id"].is_null());
        (root && spans.iter().any(|s| s["service"] == "auth")).then_some(())
    })
    .await;

    let out = troupe_trace(&["trace-cli-login-1", "--url", &app.broker]).await;
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with(&format!("trace {trace_id} · POST /handle · ")), "{stdout}");
    assert!(lines.contains(&"request trace-cli-login-1"), "{stdout}");
    let spans: Vec<&str> = lines.iter().copied().filter(|l| l.contains('|')).collect();
    let first = spans.first().copied().unwrap_or_default();
    // The root's bar starts at the trace's start; the login's `auth` event may be consumed
    // after the reply went out, so the trace can end after the root does.
    assert!(first.contains("|█") && first.contains("|  broker"), "the broker's root first: {stdout}");
    assert!(first.trim_start().starts_with("0.00 "), "the root starts at 0 ms: {stdout}");
    let auth: Vec<&str> = spans.iter().copied().filter(|l| l.contains("|  auth ")).collect();
    assert!(!auth.is_empty(), "auth's spans: {stdout}");
    assert!(
        auth.iter().all(|l| l.contains("└─ ") || l.contains("├─ ")),
        "auth's spans sit under the broker's: {stdout}"
    );
    for line in &spans {
        let numbers: Vec<f64> = line.split_whitespace().take(2).filter_map(|n| n.parse().ok()).collect();
        assert_eq!(numbers.len(), 2, "offset and duration in ms: {line}");
        assert!(numbers.iter().all(|n| *n >= 0.0), "{line}");
    }

    // The same trace by its trace id, and as JSON.
    let out = troupe_trace(&[&trace_id, "--url", &app.broker, "--json"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let trace: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(trace["trace_id"], json!(trace_id));
    let services: Vec<&str> =
        trace["spans"].as_array().into_iter().flatten().filter_map(|s| s["service"].as_str()).collect();
    assert!(services.contains(&"broker") && services.contains(&"auth"), "{trace}");
}

#[actix_rt::test]
async fn troupe_trace_of_an_unknown_id_or_an_unreachable_broker_fails_and_says_why() {
    let app = traced_platform().await;
    for id in ["no-such-request", "0123456789abcdef0123456789abcdef"] {
        let out = troupe_trace(&[id, "--url", &app.broker]).await;
        assert_eq!(out.status.code(), Some(1), "{id}");
        assert_eq!(text(&out.stderr).trim(), format!("troupe trace: no trace {id}"));
        assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    }

    let nowhere = format!("http://127.0.0.1:{}", troupe_testkit::free_port());
    let out = troupe_trace(&["some-request", "--url", &nowhere]).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with(&format!("troupe trace: cannot reach {nowhere}/traces?")), "{stderr}");
}
