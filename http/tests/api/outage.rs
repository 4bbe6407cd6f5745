//! Supervision against a real PostgreSQL outage: the database is cut away behind a TCP
//! proxy while broker and auth keep running, then restored.

use std::time::{Duration, Instant};

use crate::helpers::{TcpProxy, TestApp, eventually, fresh_pg_database, parts};

#[actix_web::test]
async fn auth_survives_a_database_outage_and_serves_again_in_the_same_process() {
    let url = url::Url::parse(&fresh_pg_database().await).expect("url");
    let upstream = format!("{}:{}", url.host_str().unwrap_or("127.0.0.1"), url.port().unwrap_or(5432));
    let proxy = TcpProxy::start(upstream.parse().expect("socket address")).await;
    let mut via_proxy = url.clone();
    via_proxy.set_port(Some(proxy.port)).expect("port");
    let app = TestApp::split(via_proxy.as_str()).await;

    // Up: logins work.
    eventually(Duration::from_secs(10), "first login", || async {
        (app.login("admin@example.com", "verysecret").await.status() == 202).then_some(())
    })
    .await;

    // Cut: within a bounded time every login is 503, and readiness says so.
    proxy.cut();
    let started = Instant::now();
    let (status, body) = parts(app.login("admin@example.com", "verysecret").await).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("auth unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "first 503 took {:?}", started.elapsed());
    eventually(Duration::from_secs(10), "readyz reports the outage", || async {
        let res = app.http.get(format!("{}/readyz", app.auth)).send().await.ok()?;
        (res.status() == 503).then_some(())
    })
    .await;
    let started = Instant::now();
    assert_eq!(app.login("admin@example.com", "verysecret").await.status(), 503);
    assert!(started.elapsed() < Duration::from_secs(1), "503 while down took {:?}", started.elapsed());

    // Restore: the same running processes reconnect and serve logins again.
    proxy.restore();
    eventually(Duration::from_secs(20), "login after the database returned", || async {
        (app.login("admin@example.com", "verysecret").await.status() == 202).then_some(())
    })
    .await;
    let res = app.http.get(format!("{}/readyz", app.auth)).send().await.expect("answer");
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn a_dsn_naming_a_missing_database_is_reported_as_a_misconfiguration_with_the_reason() {
    let mut url = url::Url::parse(&fresh_pg_database().await).expect("url");
    url.set_path(&format!("troupe_missing_{}", uuid::Uuid::new_v4().simple()));
    let app = TestApp::split_parts_with_auth(TestApp::spawn_auth(url.as_str()));
    let backend = eventually(Duration::from_secs(10), "readyz names the misconfiguration", || async {
        let res = app.http.get(format!("{}/readyz", app.auth)).send().await.ok()?;
        let (status, body) = parts(res).await;
        let backend = body["data"]["auth.database"].clone();
        (status == 503 && backend["state"] == "misconfigured").then_some(backend)
    })
    .await;
    assert_eq!(backend["error"], "the database named in DSN does not exist (SQLSTATE 3D000)", "{backend}");
    let login = serde_json::json!({"email": "admin@example.com", "password": "verysecret"});
    let res = app.http.post(format!("{}/authenticate", app.auth)).json(&login).send().await.expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("auth unavailable")), "{body}");
}
