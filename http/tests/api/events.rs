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

/// The listener's counters.
async fn listener_status(app: &TestApp) -> Option<Value> {
    let body: Value =
        app.http.get(format!("{}/status", app.listener)).send().await.ok()?.json().await.ok()?;
    Some(body["data"].clone())
}

/// Mail the built-in catcher holds with `subject`.
async fn caught_with_subject(app: &TestApp, subject: &str) -> Option<Vec<Value>> {
    assert!(!app.catcher.is_empty(), "the built-in catcher runs in `troupe up` without MAIL_HOST");
    let body: Value =
        app.http.get(format!("{}/api/messages", app.catcher)).send().await.ok()?.json().await.ok()?;
    let found: Vec<Value> =
        body["data"].as_array()?.iter().filter(|m| m["subject"] == subject).cloned().collect();
    (!found.is_empty()).then_some(found)
}

async fn publish(app: &TestApp, name: &str, data: Value) -> String {
    let (status, body) =
        parts(app.post_handle(&json!({"action": "event", "event": {"name": name, "data": data}})).await)
            .await;
    assert_eq!(status, 202, "{body}");
    body["data"]["id"].as_str().expect("an event id").to_owned()
}

#[actix_rt::test]
async fn a_mail_event_is_mailed_through_the_mailer_to_the_catcher() {
    let app = TestApp::all_in_one().await;
    // As a JSON string (the Go platform's `data`) and as an object.
    let as_text = json!({"from": "", "to": "you@there.com", "subject": "Job as text", "message": "Hi"});
    publish(&app, "mail", Value::String(as_text.to_string())).await;
    let as_object =
        json!({"from": "me@here.com", "to": "you@there.com", "subject": "Job as object", "message": "Hi"});
    publish(&app, "mail", as_object).await;

    let found = eventually(Duration::from_secs(15), "the text mail job in the catcher", || {
        caught_with_subject(&app, "Job as text")
    })
    .await;
    assert_eq!(found.len(), 1, "mailed once: {found:?}");
    assert_eq!(found[0]["to"], json!(["you@there.com"]));
    let found = eventually(Duration::from_secs(15), "the object mail job in the catcher", || {
        caught_with_subject(&app, "Job as object")
    })
    .await;
    assert_eq!(found[0]["from"], "me@here.com");
}

#[actix_rt::test]
async fn an_invalid_mail_job_is_dead_lettered_and_later_events_still_run() {
    let app = TestApp::all_in_one().await;
    let bad = json!({"to": "not an address", "subject": "Never", "message": "x"});
    publish(&app, "mail", Value::String(bad.to_string())).await;
    publish(&app, "mail", Value::String("not json at all".into())).await;
    let good = json!({"to": "you@there.com", "subject": "After the bad ones", "message": "x"});
    publish(&app, "mail", Value::String(good.to_string())).await;

    eventually(Duration::from_secs(15), "the good mail after the bad ones", || {
        caught_with_subject(&app, "After the bad ones")
    })
    .await;
    // The good job is acked after the catcher has it: wait for that ack too.
    let stats =
        eventually(Duration::from_secs(15), "both bad jobs dead-lettered, the good one acked", || async {
            let s = listener_status(&app).await?;
            (s["dead_lettered"].as_u64() == Some(2) && s["acked"].as_u64() >= Some(1)).then_some(s)
        })
        .await;
    assert_eq!(stats["acked"], 1, "{stats}");
    assert!(caught_with_subject(&app, "Never").await.is_none(), "an invalid job sends nothing");

    // The refused events are kept, with the reason, and listed by the listener.
    let res = app.http.get(format!("{}/dead-letters", app.listener)).send().await.expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!(status, 200, "{body}");
    let letters = body["data"].as_array().cloned().unwrap_or_default();
    assert_eq!(letters.len(), 2, "{body}");
    for letter in &letters {
        assert_eq!(letter["event"]["name"], "mail", "{letter}");
        assert!(letter["reason"].as_str().is_some_and(|r| r.starts_with("job: ")), "{letter}");
    }
}

#[actix_rt::test]
async fn a_retried_write_with_the_same_id_or_idempotency_key_is_stored_once() {
    let app = TestApp::all_in_one().await;
    let post = |body: Value, key: Option<&'static str>| {
        let mut req = app.http.post(format!("{}/handle", app.broker)).json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        async move { parts(req.send().await.expect("broker answers")).await }
    };
    let by_id = json!({"action": "event", "event": {"id": "client-7", "name": "retried", "data": "by id"}});
    let by_key = json!({"action": "event", "event": {"name": "retried", "data": "by key"}});
    let log = json!({"action": "log", "log": {"name": "retried-log", "data": "by key"}});
    for _ in 0..2 {
        let (status, body) = post(by_id.clone(), None).await;
        assert_eq!((status, body["data"]["id"].as_str()), (202, Some("client-7")), "{body}");
        let (status, body) = post(by_key.clone(), Some("key-8")).await;
        assert_eq!((status, body["data"]["id"].as_str()), (202, Some("key-8")), "{body}");
        let (status, body) = post(log.clone(), Some("key-9")).await;
        assert_eq!(status, 202, "{body}");
    }
    let (status, body) = post(by_key.clone(), Some("a key with spaces")).await;
    assert_eq!(status, 422, "{body}");

    // Four events delivered (two of them repeats), two entries stored.
    eventually(Duration::from_secs(15), "the four deliveries done", || async {
        let s = listener_status(&app).await?;
        (s["acked"].as_u64() == Some(4) && s["queued"].as_u64() == Some(0)).then_some(())
    })
    .await;
    for (name, expected) in [("retried", 2), ("retried-log", 1)] {
        let url = format!("{}/logs?name={name}", app.broker);
        let (status, body) = parts(app.http.get(&url).send().await.expect("broker answers")).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["entries"].as_array().map(Vec::len), Some(expected), "{name}: {body}");
    }
}

#[actix_rt::test]
async fn a_login_publishes_an_auth_event_stored_once_as_an_audit_entry() {
    let app = TestApp::all_in_one().await;
    let (status, _) = parts(app.login("admin@example.com", "wrong password").await).await;
    assert_eq!(status, 401);

    // The event went through the bus and was stored by the listener...
    eventually(Duration::from_secs(15), "the auth event acked by the listener", || async {
        let s = listener_status(&app).await?;
        (s["acked"].as_u64() == Some(1)).then_some(())
    })
    .await;
    // ...as the login's one audit entry.
    let url = format!("{}/logs?name=authentication", app.broker);
    let (status, body) = parts(app.http.get(&url).send().await.expect("broker answers")).await;
    assert_eq!(status, 200, "{body}");
    let entries = body["data"]["entries"].as_array().cloned().unwrap_or_default();
    assert_eq!(entries.len(), 1, "one audit entry per login: {entries:?}");
    let entry = &entries[0];
    assert_eq!((entry["service"].as_str(), entry["level"].as_str()), (Some("auth"), Some("WARNING")));
    let data = entry["data"].as_str().unwrap_or_default();
    assert!(data.contains("admin@example.com") && data.contains("failed"), "{data}");
    assert!(!data.contains("wrong password"), "never the password: {data}");
}
