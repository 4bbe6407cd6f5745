//! The console's live views against `troupe up`: the Logs view following new entries
//! (server-sent events through the broker) without a reload, paused and resumed.

use serde_json::json;

use crate::helpers::{Browser, Platform};

/// Write an entry through the broker, as another client would.
async fn log(app: &Platform, name: &str, data: &str) {
    let res = reqwest::Client::new()
        .post(format!("{}/handle", app.broker))
        .json(&json!({"action": "log", "log": {"name": name, "data": data}}))
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 202, "log {data}");
}

#[actix_web::test]
async fn the_logs_view_following_shows_entries_written_after_it_opened_without_a_reload() {
    let app = Platform::up().await;
    Browser::with(|b| async move {
        b.open(&format!("{}/#logs", app.frontend)).await;
        b.wait_text("#logStatus", "").await;
        b.fill("#f-name", "live-tail").await;
        b.click("#logSearch").await;
        b.wait_text("#logStatus", "No entries match.").await;
        b.js("window.__sameDocument = true; return null").await;

        b.click("#logFollow").await;
        b.wait_text("#followState", "Following").await;
        log(&app, "live-tail", "written after the view opened").await;
        log(&app, "other-name", "filtered out").await;
        b.wait_text("#logRows", "written after the view opened").await;
        assert_eq!(b.text("#logFollow").await, "Pause");

        // Paused, nothing arrives; resumed, what was written meanwhile does.
        b.click("#logFollow").await;
        b.wait_text("#followState", "Paused.").await;
        log(&app, "live-tail", "written while paused").await;
        assert!(!b.text("#logRows").await.contains("written while paused"), "a paused view stays still");
        b.click("#logFollow").await;
        b.wait_text("#logRows", "written while paused").await;
        b.wait_text("#followState", "Following").await;
        log(&app, "live-tail", "written after resuming").await;
        let rows = b.wait_text("#logRows", "written after resuming").await;
        assert!(!rows.contains("filtered out"), "the name filter holds for followed entries: {rows}");
        assert_eq!(rows.matches("written while paused").count(), 1, "each entry once: {rows}");
        let same = b.js("return window.__sameDocument === true").await;
        assert_eq!(same, json!(true), "the page was reloaded");
        b.screenshot("logs-follow").await;
        b
    })
    .await;
}

/// Put `event` among the bus's dead letters, as refused for good by an earlier run (say, a
/// logger with stricter limits) whose cause has since been fixed.
async fn refused_earlier(app: &Platform, event: &serde_json::Value, reason: &str) {
    use sqlx::Connection as _;
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(app.data_dir().join("events.db"))
        .busy_timeout(std::time::Duration::from_secs(5));
    let mut db = sqlx::SqliteConnection::connect_with(&options).await.expect("the bus's queue opens");
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query(
        "INSERT INTO dead_letters (event_id, body, reason, queued_ms, dead_ms) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(event["id"].as_str())
    .bind(event.to_string())
    .bind(reason)
    .bind(now)
    .bind(now)
    .execute(&mut db)
    .await
    .expect("a dead letter is written");
    db.close().await.expect("closes");
}

async fn broker_json(app: &Platform, path: &str) -> serde_json::Value {
    let res = reqwest::get(format!("{}{path}", app.broker)).await.expect("broker answers");
    res.json().await.expect("an envelope")
}

#[actix_web::test]
async fn a_dead_lettered_event_is_replayed_from_the_console_and_then_stored() {
    let app = Platform::up().await;
    // One refused by the running pipeline (a mail job with no valid address: refused again
    // on replay), one refused earlier whose cause is gone (stored on replay).
    let bad_mail = json!({"action": "event", "event": {"name": "mail", "data": "not a mail at all"}});
    let res = reqwest::Client::new()
        .post(format!("{}/handle", app.broker))
        .json(&bad_mail)
        .send()
        .await
        .expect("broker answers");
    assert_eq!(res.status(), 202);
    crate::helpers::eventually("the bad mail job dead-lettered", || async {
        let body = broker_json(&app, "/dead-letters").await;
        (body["data"].as_array().map(Vec::len) == Some(1)).then_some(())
    })
    .await;
    let event = json!({"id": "refused-earlier-1", "name": "replayed-entry", "data": "stored at last", "level": "WARNING"});
    refused_earlier(&app, &event, "store: invalid \"name\": too long for the logger of then").await;

    Browser::with(|b| async move {
        b.open(&format!("{}/#dead", app.frontend)).await;
        let rows = b.wait_text("#deadRows", "replayed-entry").await;
        for part in ["too long for the logger of then", "stored at last", "mail", "job: "] {
            assert!(rows.contains(part), "{part} missing from {rows}");
        }
        b.wait_text("#deadStatus", "2 dead letters").await;
        b.screenshot("dead-letters").await;

        // Replay one: it is delivered, stored, and leaves the list.
        let seq = b.js("return document.querySelector('#deadRows tr:first-child').dataset.seq").await;
        b.click("#deadRows tr:first-child button.replay").await;
        b.wait_text("#deadStatus", "1 events queued again.").await;
        let stored = crate::helpers::eventually("the replayed event stored", || async {
            let body = broker_json(&app, "/logs?name=replayed-entry").await;
            body["data"]["entries"].as_array().filter(|e| !e.is_empty()).cloned()
        })
        .await;
        assert_eq!(stored.len(), 1, "{stored:?}");
        assert_eq!(
            (stored[0]["data"].as_str(), stored[0]["level"].as_str()),
            (Some("stored at last"), Some("WARNING"))
        );
        assert_eq!(stored[0]["event_id"], "refused-earlier-1");
        b.click("#deadRefresh").await;
        let rows = b.wait_text("#deadStatus", "1 dead letter").await;
        assert!(!b.text("#deadRows").await.contains("replayed-entry"), "{rows}");
        assert_ne!(b.js("return document.querySelector('#deadRows tr:first-child').dataset.seq").await, seq);

        // Replay all: the mail job is refused again and comes back with a new place.
        b.click("#deadReplayAll").await;
        b.wait_text("#deadStatus", "1 events queued again.").await;
        crate::helpers::eventually("the mail job refused again", || async {
            let body = broker_json(&app, "/dead-letters").await;
            let letters = body["data"].as_array().cloned().unwrap_or_default();
            (letters.len() == 1
                && letters[0]["event"]["name"] == "mail"
                && letters[0]["seq"].as_i64() > Some(2))
            .then_some(())
        })
        .await;
        b
    })
    .await;
}
