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
