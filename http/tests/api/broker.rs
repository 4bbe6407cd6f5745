//! The broker's contract (docs/compat.md) in both run modes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, fresh_pg_database, parts};

/// What both modes must do for `auth`.
async fn assert_auth_contract(app: &TestApp) {
    let (status, body) = parts(app.login("admin@example.com", "verysecret").await).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["error"], false);
    assert_eq!(body["message"], "Authenticated!");
    let user = &body["data"];
    assert_eq!(user["email"], "admin@example.com");
    assert_eq!(user["first_name"], "Admin");
    assert_eq!(user["last_name"], "User");
    assert_eq!(user["active"], 1);
    for field in ["id", "created_at", "updated_at"] {
        assert!(!user[field].is_null(), "user.{field} missing: {user}");
    }
    assert!(user.get("password").is_none(), "password leaked: {user}");
    assert!(!body.to_string().contains("$2"), "a hash leaked: {body}");
    assert_eq!(body["token"]["token_type"], "Bearer");

    let (status, body) = parts(app.login("admin@example.com", "wrong-password").await).await;
    let expected = json!({"error": true, "message": "invalid credentials", "kind": "invalid_credentials"});
    assert_eq!((status, body), (401, expected));

    let (status, body) = parts(app.login("nobody@example.com", "verysecret").await).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("invalid credentials")));
}

#[actix_web::test]
async fn all_in_one_authenticates_the_seeded_user_on_sqlite() {
    assert_auth_contract(&TestApp::all_in_one().await).await;
}

#[actix_web::test]
async fn split_mode_authenticates_the_seeded_user_on_postgres() {
    let dsn = fresh_pg_database().await;
    assert_auth_contract(&TestApp::split(&dsn).await).await;
}

#[actix_web::test]
async fn split_mode_accepts_the_go_platforms_key_value_dsn() {
    let url = url::Url::parse(&fresh_pg_database().await).expect("url");
    let dsn = format!(
        "host={} port={} user=postgres password='' dbname={} sslmode=disable timezone=UTC connect_timeout=5",
        url.host_str().unwrap_or("127.0.0.1"),
        url.port().unwrap_or(5432),
        url.path().trim_start_matches('/')
    );
    let app = TestApp::split(&dsn).await;
    assert_eq!(app.login("admin@example.com", "verysecret").await.status(), 202);
}

#[actix_web::test]
async fn hit_the_broker_and_ping() {
    let app = TestApp::all_in_one().await;
    let res = app.http.post(format!("{}/", app.broker)).send().await.expect("answer");
    assert_eq!(parts(res).await, (200, json!({"error": false, "message": "Hit the broker"})));

    let res = app.http.get(format!("{}/ping", app.broker)).send().await.expect("answer");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.ok().as_deref(), Some("."));
}

#[actix_web::test]
async fn bad_requests_get_clear_errors_in_the_envelope() {
    let app = TestApp::all_in_one().await;
    let handle = format!("{}/handle", app.broker);
    let big = format!(r#"{{"action":"auth","pad":"{}"}}"#, "x".repeat(1_048_576));
    let cases: Vec<(&str, Option<&str>, String, u16, &str)> = vec![
        ("unknown action", None, r#"{"action":"dance"}"#.into(), 400, "unknown action"),
        ("missing action", None, r#"{"auth":{}}"#.into(), 400, "unknown action"),
        ("not JSON", None, r#"{"action":"#.into(), 400, "malformed JSON"),
        ("not an object", None, "[1,2]".into(), 400, "expected an object"),
        ("missing auth", None, r#"{"action":"auth"}"#.into(), 400, "missing \"auth\""),
        ("wrong types", None, r#"{"action":"auth","auth":{"email":1}}"#.into(), 400, "invalid \"auth\""),
        ("oversize", None, big, 413, "larger than"),
        ("xml", Some("application/xml"), "<a/>".into(), 415, "JSON"),
    ];
    for (case, content_type, body, status, needle) in cases {
        let mut req = app.http.post(&handle).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let (got, reply) = parts(req.send().await.expect("answer")).await;
        assert_eq!(got, status, "{case}: {reply}");
        assert_eq!(reply["error"], true, "{case}");
        let message = reply["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{case}: {message}");
    }
    // Unknown fields are accepted; curl's default form content type is read as JSON.
    let res = app
        .http
        .post(&handle)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            r#"{"action":"auth","extra":true,"auth":{"email":"admin@example.com","password":"verysecret"}}"#,
        )
        .send()
        .await
        .expect("answer");
    assert_eq!(res.status(), 202);
    // Still serving after all that.
    assert_eq!(app.login("admin@example.com", "verysecret").await.status(), 202);
}

#[actix_web::test]
async fn unknown_routes_are_404_in_the_envelope() {
    let app = TestApp::all_in_one().await;
    let res = app.http.get(format!("{}/nope", app.broker)).send().await.expect("answer");
    assert_eq!(parts(res).await, (404, json!({"error": true, "message": "not found", "kind": "not_found"})));
}

#[actix_web::test]
async fn cors_allows_only_the_configured_origins() {
    let app = TestApp::all_in_one().await;
    let preflight = |origin: &'static str| {
        app.http
            .request(reqwest::Method::OPTIONS, format!("{}/handle", app.broker))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let ok = preflight("http://console.test").await.expect("answer");
    assert_eq!(
        ok.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"http://console.test"[..])
    );
    let denied = preflight("http://evil.test").await.expect("answer");
    assert!(denied.headers().get("access-control-allow-origin").is_none());
    for header in ["x-content-type-options", "referrer-policy"] {
        assert!(ok.headers().contains_key(header), "{header} on every reply: {:?}", ok.headers());
    }
}

#[actix_web::test]
async fn a_simple_cross_site_post_from_a_disallowed_origin_is_refused_before_it_acts() {
    let app = TestApp::all_in_one().await;
    // What a page on another site can send without a preflight: a text/plain POST.
    let post = |origin: &'static str, name: &'static str| {
        let body = json!({"action": "log", "log": {"name": name, "data": "x"}}).to_string();
        app.http
            .post(format!("{}/handle", app.broker))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(body)
            .send()
    };
    let (status, body) = parts(post("http://evil.test", "cross-site").await.expect("answer")).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"], true);
    assert!(body["message"].as_str().is_some_and(|m| m.contains("http://evil.test")), "{body}");
    let (status, body) = parts(post("http://console.test", "same-site").await.expect("answer")).await;
    assert_eq!(status, 202, "an allowed page keeps working: {body}");

    let stored = |name: &'static str| {
        let (http, url) = (app.http.clone(), format!("{}/logs?name={name}", app.broker));
        async move { parts(http.get(url).send().await.expect("answer")).await.1["data"]["entries"].clone() }
    };
    assert_eq!(stored("same-site").await.as_array().map(Vec::len), Some(1));
    assert_eq!(stored("cross-site").await.as_array().map(Vec::len), Some(0), "nothing stored");
}

#[actix_web::test]
async fn health_endpoints_report_the_backend() {
    let app = TestApp::all_in_one().await;
    for base in [&app.broker, &app.auth] {
        let res = app.http.get(format!("{base}/healthz")).send().await.expect("answer");
        assert_eq!(res.status(), 200);
    }
    let ready = crate::helpers::eventually(Duration::from_secs(10), "auth ready", || async {
        let res = app.http.get(format!("{}/readyz", app.auth)).send().await.ok()?;
        (res.status() == 200).then_some(res)
    })
    .await;
    let body: Value = ready.json().await.expect("json");
    assert_eq!(body["data"]["auth.database"]["state"], "ready");
}

#[actix_web::test]
async fn metrics_are_exposed_for_prometheus() {
    let app = TestApp::all_in_one().await;
    app.http.post(format!("{}/", app.broker)).send().await.expect("answer");
    let res = app.http.get(format!("{}/metrics", app.broker)).send().await.expect("answer");
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap_or_default();
    assert!(
        text.lines()
            .any(|l| l.starts_with("troupe_http_requests_total{") && l.contains(r#"service="broker""#)),
        "{text}"
    );
}

#[actix_web::test]
async fn responses_carry_a_request_id_adopted_from_the_caller_when_well_formed() {
    let app = TestApp::all_in_one().await;
    let echoed = |res: &reqwest::Response| {
        res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let res = app.http.post(format!("{}/", app.broker)).send().await.expect("answer");
    let fresh = echoed(&res);
    assert!(uuid::Uuid::parse_str(&fresh).is_ok(), "a UUID: {fresh:?}");

    let res = app.http.post(format!("{}/", app.broker)).header("x-request-id", "checkout-42").send().await;
    assert_eq!(echoed(&res.expect("answer")), "checkout-42");

    for bad in ["has spaces in it", &"x".repeat(129)] {
        let res = app.http.post(format!("{}/", app.broker)).header("x-request-id", bad).send().await;
        let id = echoed(&res.expect("answer"));
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "{bad:?} is replaced by a UUID, got {id:?}");
    }
}

#[actix_web::test]
async fn the_request_id_reaches_the_login_audit_entry_and_the_event_it_published() {
    let app = TestApp::all_in_one().await;
    let id = format!("req-{}", uuid::Uuid::new_v4().simple());
    for body in [
        json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}),
        json!({"action": "event", "event": {"name": "traced", "data": "x"}}),
    ] {
        let res = app.http.post(format!("{}/handle", app.broker)).header("x-request-id", &id).json(&body);
        assert_eq!(res.send().await.expect("answer").status(), 202, "{body}");
    }

    let names = eventually(Duration::from_secs(10), "both entries under the request id", || async {
        let res = app.http.get(format!("{}/logs?request_id={id}", app.broker)).send().await.ok()?;
        let (_, body) = parts(res).await;
        let mut names: Vec<String> = body["data"]["entries"]
            .as_array()?
            .iter()
            .map(|e| format!("{}/{}", e["service"].as_str().unwrap_or(""), e["name"].as_str().unwrap_or("")))
            .collect();
        names.sort();
        (names.len() >= 2).then_some(names)
    })
    .await;
    assert_eq!(names, ["auth/authentication", "listener/traced"], "one audit entry, one event");
}

#[actix_web::test]
async fn an_unreachable_auth_service_is_503_within_the_deadline() {
    // Nothing listens on this port: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let broker = TestApp::spawn_broker(url::Url::parse(&format!("http://127.0.0.1:{port}")).expect("url"));
    let app = TestApp { broker: format!("http://127.0.0.1:{broker}"), ..TestApp::all_in_one().await };
    let started = Instant::now();
    let (status, body) = parts(app.login("admin@example.com", "verysecret").await).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("auth unavailable")));
    assert!(started.elapsed() < Duration::from_secs(4), "took {:?}", started.elapsed());
}
