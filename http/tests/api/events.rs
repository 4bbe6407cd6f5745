//! The broker's `event` action and the listener's status, in `troupe up` on the in-process
//! bus with the real logger (the RabbitMQ pipeline itself is tested in `troupe-actors`).

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{TestApp, eventually, parts};

#[actix_rt::test]
async fn a_published_event_is_confirmed_with_its_id_and_lands_in_the_log() {
    let app = TestApp::all_in_one().await;

    let res = app
        .post_handle(&json!({"action": "event", "event": {"name": "event", "data": "Some kind of data"}}))
        .await;
    let (status, body) = parts(res).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["message"], "Event published: event");
    let id = body["data"]["id"].as_str().expect("an event id").to_owned();

    let status_url = format!("{}/status", app.listener);
    let stats: Value = eventually(Duration::from_secs(10), "the event stored and acked", || async {
        let body: Value = app.http.get(&status_url).send().await.ok()?.json().await.ok()?;
        (body["data"]["acked"].as_u64() >= Some(1)).then_some(body)
    })
    .await;
    assert_eq!(stats["data"]["transport"], "in-process");
    assert!(!id.is_empty());
}

#[actix_rt::test]
async fn bad_events_are_refused_in_the_envelope() {
    let app = TestApp::all_in_one().await;
    let cases = [
        (json!({"action": "event", "event": {"name": " ", "data": "x"}}), 422),
        (json!({"action": "event", "event": {"name": "e", "data": "x", "level": "LOUD"}}), 422),
        (json!({"action": "event"}), 400),
    ];
    for (body, expected) in cases {
        let (status, reply) = parts(app.post_handle(&body).await).await;
        assert_eq!(status, expected, "{body} -> {reply}");
        assert_eq!(reply["error"], true);
    }
}
