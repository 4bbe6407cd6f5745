//! The broker's dead-letter routes for the console: from the in-process bus in `troupe up`,
//! forwarded to the listener at LISTENER_URL in split mode, and a clear 404 where there are
//! none to reach.

use std::time::Duration;

use serde_json::{Value, json};
use troupe_core::config::{LoggerUpstream, MailAuth, UpstreamSettings};
use url::Url;

use crate::helpers::{TestApp, eventually, parts};

async fn get(app: &TestApp, base: &str) -> (u16, Value) {
    parts(app.http.get(format!("{base}/dead-letters")).send().await.expect("answers")).await
}

async fn replay(app: &TestApp, base: &str, body: &str) -> (u16, Value) {
    let req = app.http.post(format!("{base}/dead-letters/replay")).body(body.to_owned());
    parts(req.send().await.expect("answers")).await
}

/// A split-mode broker whose LISTENER_URL is `listener` (None: unset).
fn broker_with_listener(listener: Option<&str>) -> String {
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let upstream = UpstreamSettings {
        auth_url: nowhere.clone(),
        mailer_url: nowhere.clone(),
        logger: LoggerUpstream { logger_url: nowhere.clone(), logger_grpc_url: nowhere },
        listener_url: listener.map(|l| Url::parse(l).expect("url")),
        mail_auth: MailAuth::Auto,
    };
    format!("http://127.0.0.1:{}", TestApp::spawn_broker_with(upstream))
}

#[actix_rt::test]
async fn the_broker_lists_and_replays_dead_letters_in_both_run_modes() {
    let app = TestApp::all_in_one().await;
    let res =
        app.post_handle(&json!({"action": "event", "event": {"name": "mail", "data": "not a mail"}})).await;
    assert_eq!(res.status(), 202);
    let letters = eventually(Duration::from_secs(15), "the bad mail job dead-lettered", || async {
        let (status, body) = get(&app, &app.broker).await;
        (status == 200).then(|| body["data"].as_array().cloned()).flatten().filter(|l| l.len() == 1)
    })
    .await;
    assert!(letters[0]["reason"].as_str().is_some_and(|r| r.starts_with("job: ")), "{letters:?}");

    // Split mode: the same, forwarded to the listener.
    let split = broker_with_listener(Some(&app.listener));
    let (status, body) = get(&app, &split).await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(1)), "{body}");
    let seq = letters[0]["seq"].as_i64().expect("a seq");
    let (status, body) = replay(&app, &split, &json!({"seq": seq}).to_string()).await;
    assert_eq!((status, body["data"]["replayed"].as_u64()), (200, Some(1)), "{body}");
    let (status, body) = replay(&app, &app.broker, "").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = replay(&app, &app.broker, "{\"seq\": \"x\"}").await;
    assert_eq!((status, body["kind"].as_str()), (400, Some("bad_request")), "{body}");

    let (status, body) = get(&app, &broker_with_listener(None)).await;
    assert_eq!((status, body["kind"].as_str()), (404, Some("not_found")), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("LISTENER_URL")), "{body}");
    let (status, body) = get(&app, &broker_with_listener(Some("http://127.0.0.1:9"))).await;
    assert_eq!((status, body["kind"].as_str()), (503, Some("unavailable")), "{body}");
}
