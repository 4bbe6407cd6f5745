//! The recent traces (`GET /traces`, `GET /traces/{id}`), the `traceresponse` header and the
//! `trace_id` of log entries, against the real platform with tracing on (the process's own
//! subscriber, as `troupe` installs it).

use std::time::Duration;

use serde_json::{Value, json};
use troupe_core::telemetry::{self, LogFormat};
use url::Url;

use crate::helpers::{TestApp, eventually, fresh_pg_database, parts};

/// Tracing on, as the binary sets it up (a no-op when another test of this process did).
fn traced() {
    telemetry::init(LogFormat::Text, "troupe");
}

/// The trace id a reply's `traceresponse` header names (`00-<trace>-<span>-<flags>`).
fn trace_of(res: &reqwest::Response) -> String {
    let header = res.headers().get("traceresponse").and_then(|v| v.to_str().ok()).expect("a traceresponse");
    let parts: Vec<&str> = header.split('-').collect();
    assert_eq!(parts.len(), 4, "{header}");
    assert_eq!((parts[0], parts[1].len(), parts[2].len()), ("00", 32, 16), "{header}");
    parts[1].to_owned()
}

/// `GET base/traces/{id}` until its spans satisfy `done`.
async fn trace_until(app: &TestApp, base: &str, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let url = format!("{base}/traces/{id}");
    eventually(Duration::from_secs(10), &format!("the trace at {url}"), || async {
        let (status, body) = parts(app.http.get(&url).send().await.ok()?).await;
        (status == 200 && done(&body["data"])).then_some(body["data"].clone())
    })
    .await
}

fn services(trace: &Value) -> Vec<&str> {
    trace["spans"].as_array().into_iter().flatten().filter_map(|s| s["service"].as_str()).collect()
}

fn span<'t>(trace: &'t Value, name: &str) -> &'t Value {
    let spans = trace["spans"].as_array().expect("spans");
    spans.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no span {name:?} in {trace}"))
}

#[actix_web::test]
async fn a_login_through_the_broker_is_one_trace_of_broker_and_auth_spans_with_timings() {
    traced();
    let app = TestApp::all_in_one().await;

    let res = app
        .http
        .post(format!("{}/handle", app.broker))
        .header("x-request-id", "trace-login-1")
        .json(&json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}))
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 202);
    let id = trace_of(&res);

    // The audit entry goes through the event bus to the logger: the trace grows until then.
    let trace = trace_until(&app, &app.broker, &id, |t| {
        let s = services(t);
        s.contains(&"broker") && s.contains(&"auth") && s.contains(&"logger")
    })
    .await;
    assert_eq!(trace["trace_id"], id.as_str());
    assert_eq!(trace["missing"], json!([]));
    let root = span(&trace, "POST /handle");
    assert_eq!((root["service"].as_str(), root["kind"].as_str()), (Some("broker"), Some("server")));
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(root["attributes"]["request_id"], "trace-login-1");
    assert_eq!(root["attributes"]["http.status_code"], "202");
    let action = span(&trace, "action auth");
    assert_eq!(action["parent_span_id"], root["span_id"]);
    let login = span(&trace, "Authenticate");
    assert_eq!((login["service"].as_str(), &login["parent_span_id"]), (Some("auth"), &action["span_id"]));
    for s in [root, action, login] {
        assert_eq!(s["status"], "ok", "{s}");
        assert!(s["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{s}");
        assert!(s["start_unix_ms"].as_f64().is_some_and(|t| t > 1.7e12), "{s}");
    }
    // bcrypt at cost 12 takes a while: the login's span holds it.
    assert!(login["duration_ms"].as_f64() >= Some(10.0), "{login}");
    let starts: Vec<f64> =
        trace["spans"].as_array().into_iter().flatten().filter_map(|s| s["start_unix_ms"].as_f64()).collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by start: {starts:?}");

    // Found by its request id, with a summary of the whole trace.
    let (status, body) = parts(
        app.http
            .get(format!("{}/traces?request_id=trace-login-1", app.broker))
            .send()
            .await
            .expect("answers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let found = body["data"].as_array().expect("a list");
    assert_eq!(found.len(), 1, "{body}");
    assert_eq!(found[0]["trace_id"], id.as_str());
    assert_eq!(
        (found[0]["name"].as_str(), found[0]["service"].as_str()),
        (Some("POST /handle"), Some("broker"))
    );
    assert_eq!(found[0]["request_id"], "trace-login-1");
    assert_eq!(found[0]["error"], false);
    assert!(found[0]["spans"].as_u64() >= Some(3), "{body}");

    // The audit entry the login wrote carries the trace id, and is found by it.
    let (status, body) =
        parts(app.http.get(format!("{}/logs?trace_id={id}", app.broker)).send().await.expect("answers"))
            .await;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1, "{body}");
    assert_eq!(
        (entries[0]["name"].as_str(), entries[0]["trace_id"].as_str()),
        (Some("authentication"), Some(id.as_str()))
    );
    assert_eq!(entries[0]["request_id"], "trace-login-1");
}

#[actix_web::test]
async fn a_callers_traceparent_is_adopted_and_a_failed_login_is_marked_in_its_trace() {
    traced();
    let app = TestApp::all_in_one().await;
    let caller = "4bf92f3577b34da6a3ce929d0e0e4736";
    let res = app
        .http
        .post(format!("{}/handle", app.broker))
        .header("traceparent", format!("00-{caller}-00f067aa0ba902b7-01"))
        .json(&json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "wrong"}}))
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 401);
    assert_eq!(trace_of(&res), caller, "the caller's trace is kept");

    let trace = trace_until(&app, &app.broker, caller, |t| services(t).contains(&"auth")).await;
    let root = span(&trace, "POST /handle");
    assert_eq!(root["parent_span_id"], "00f067aa0ba902b7", "a child of the caller's span");
    assert_eq!(root["attributes"]["http.status_code"], "401");
}

#[actix_web::test]
async fn malformed_and_unknown_trace_ids_are_answered_in_the_envelope() {
    traced();
    let app = TestApp::all_in_one().await;
    for (path, status) in [
        ("/traces/nothex", 400),
        ("/traces/4BF92F3577B34DA6A3CE929D0E0E4736", 400),
        ("/traces/00000000000000000000000000000000", 400),
        ("/traces/0123456789abcdef0123456789abcdef", 404),
        ("/traces?limit=0", 400),
        ("/traces?limit=many", 400),
    ] {
        for base in [&app.broker, &app.auth, &app.logger] {
            let (got, body) =
                parts(app.http.get(format!("{base}{path}")).send().await.expect("answers")).await;
            assert_eq!(got, status, "{base}{path}: {body}");
            assert_eq!(body["error"], true, "{body}");
            assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{body}");
        }
    }
    // Reading the traces makes none, nor do probes: the list stays as it was.
    let (status, body) =
        parts(app.http.get(format!("{}/traces?limit=5", app.broker)).send().await.expect("answers")).await;
    assert_eq!(status, 200);
    let listed = body["data"].as_array().expect("a list");
    assert!(listed.iter().all(|t| !t["name"].as_str().unwrap_or("").contains("/traces")), "{body}");
}

#[actix_web::test]
async fn a_split_mode_broker_merges_the_services_traces_and_names_those_it_cannot_reach() {
    traced();
    let dsn = fresh_pg_database().await;
    let auth_port = TestApp::spawn_auth(&dsn);
    let auth_url = Url::parse(&format!("http://127.0.0.1:{auth_port}")).expect("url");
    // The logger and the mailer are configured where nothing listens.
    let broker_port = TestApp::spawn_broker(auth_url);
    let mut app = TestApp::split_parts_with_auth(auth_port);
    app.broker = format!("http://127.0.0.1:{broker_port}");
    app.wait_ready(&app.auth).await;

    let res = app.login("admin@example.com", "verysecret").await;
    assert_eq!(res.status(), 202);
    let id = trace_of(&res);
    let trace = trace_until(&app, &app.broker, &id, |t| {
        let names: Vec<&str> =
            t["spans"].as_array().into_iter().flatten().filter_map(|s| s["name"].as_str()).collect();
        names.contains(&"Authenticate") && names.contains(&"POST /authenticate")
    })
    .await;
    assert_eq!(trace["missing"], json!(["logger", "mailer"]), "{trace}");
    // The auth service's own server span is a child of the broker's client span.
    let spans = trace["spans"].as_array().expect("spans");
    let server = spans
        .iter()
        .find(|s| s["name"] == "POST /authenticate" && s["kind"] == "server")
        .expect("auth server span");
    let client = spans
        .iter()
        .find(|s| s["name"] == "POST /authenticate" && s["kind"] == "client")
        .expect("broker client span");
    assert_eq!(server["parent_span_id"], client["span_id"]);
    let ids: std::collections::HashSet<&str> = spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
    assert_eq!(ids.len(), spans.len(), "each span once, though both stores hold it");

    let (status, body) =
        parts(app.http.get(format!("{}/traces?limit=50", app.broker)).send().await.expect("answers")).await;
    assert_eq!(status, 200, "{body}");
    let summaries: Vec<&Value> =
        body["data"].as_array().into_iter().flatten().filter(|t| t["trace_id"] == id.as_str()).collect();
    assert_eq!(summaries.len(), 1, "one summary per trace: {body}");
    assert_eq!(summaries[0]["name"], "POST /handle");
}
