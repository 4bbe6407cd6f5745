//! The console against `troupe up`: each button sends the Go page's payload and the Received
//! pane shows the broker's reply; the token from Test Auth rides along as a bearer; the
//! health view reads the broker's `/status`.

use serde_json::{Value, json};

use crate::helpers::{Browser, Platform};

/// The JSON shown in a pane.
async fn pane_json(b: &Browser, css: &str) -> Value {
    let text = b.text(css).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{css} is not pretty JSON ({e}): {text}"))
}

/// Click `button` and wait until the Received pane shows `message`; check what was sent.
async fn press(b: &Browser, button: &str, sent: Option<Value>, message: &str) -> Value {
    // Clear the pane first, so an earlier reply with the same message cannot satisfy the wait.
    b.js("document.getElementById('received').textContent = ''; return null").await;
    b.click(button).await;
    b.wait_text("#received", message).await;
    let received = pane_json(b, "#received").await;
    assert_eq!(received["message"], json!(message), "{button}: {received}");
    match sent {
        Some(payload) => assert_eq!(pane_json(b, "#payload").await, payload, "{button} sent"),
        None => assert_eq!(b.text("#payload").await, "(empty post request)"),
    }
    assert!(b.text("#received").await.contains("\n    \""), "the reply is pretty-printed");
    received
}

/// Record the Authorization header of every request the page makes from now on.
async fn record_requests(b: &Browser) {
    b.js(r#"
        window.__requests = [];
        const original = window.fetch;
        window.fetch = (url, options) => {
            const headers = (options && options.headers) || {};
            window.__requests.push({ url: String(url), authorization: headers.Authorization || null });
            return original(url, options);
        };
        return null;
    "#)
        .await;
}

#[actix_web::test]
async fn test_broker_and_test_auth_show_the_brokers_replies_and_keep_the_token() {
    let app = Platform::up().await;
    Browser::with(|b| async move {
        b.open(&app.frontend).await;
        record_requests(&b).await;

        press(&b, "#brokerBtn", None, "Hit the broker").await;
        let auth =
            json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
        let reply = press(&b, "#authBrokerBtn", Some(auth), "Authenticated!").await;
        assert_eq!(reply["data"]["email"], json!("admin@example.com"));
        assert!(reply["data"].get("password").is_none(), "no password in the reply");
        b.wait_text("#token-state", "signed in as admin@example.com").await;
        b.wait_text("#output", "Response from broker service: Authenticated!").await;

        press(&b, "#brokerBtn", None, "Hit the broker").await;
        let requests = b.js("return window.__requests").await;
        let requests = requests.as_array().cloned().unwrap_or_default();
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(requests.iter().all(|r| r["url"].as_str().is_some_and(|u| u.starts_with(&app.broker))));
        assert_eq!(requests[0]["authorization"], Value::Null, "no token before Test Auth");
        let bearer = requests[2]["authorization"].as_str().unwrap_or_default();
        assert!(bearer.starts_with("Bearer ey"), "the token is sent as a bearer: {bearer:?}");
        b.screenshot("console").await;
        b
    })
    .await;
}

#[actix_web::test]
async fn the_health_view_shows_the_platforms_services_from_the_brokers_status() {
    let app = Platform::up().await;
    Browser::with(|b| async move {
        b.open(&format!("{}/#health", app.frontend)).await;
        let cards = b.wait_text("#healthCards", "auth.database").await;
        for part in ["auth", "broker", "frontend", "ready"] {
            assert!(cards.contains(part), "{part} missing from {cards}");
        }
        assert!(!cards.contains("not ready"), "{cards}");
        b.screenshot("health").await;
        b
    })
    .await;
}

#[actix_web::test]
async fn a_mail_sent_through_the_page_arrives_in_the_inbox() {
    let app = Platform::up().await;
    Browser::with(|b| async move {
        b.open(&app.frontend).await;
        let mail = json!({"action": "mail", "mail": {
            "from": "me@example.com", "to": "you@there.com", "subject": "Test email", "message": "Hello world!",
        }});
        press(&b, "#mailBtn", Some(mail), "Message sent to you@there.com").await;

        b.click("#nav a[data-view=mail]").await;
        b.wait_text("#mailList", "Test email").await;
        assert!(b.text("#mailList").await.contains("you@there.com"));
        b.click("#mailList li:first-child a").await;
        b.wait_text("#mailSubject", "Test email").await;
        b.wait_text("#mailFrom", "me@example.com").await;
        let frame = b.client.find(fantoccini::Locator::Id("mailHtml")).await.expect("the HTML frame");
        let src = frame.attr("src").await.expect("attr").unwrap_or_default();
        assert!(src.starts_with(&app.catcher) && src.ends_with("/html"), "{src}");
        frame.enter_frame().await.expect("enter the frame");
        b.wait_text("body", "Hello world!").await;
        b.client.enter_parent_frame().await.expect("leave the frame");
        b.click(".tabs [data-part=text]").await;
        b.wait_text("#mailText", "Hello world!").await;
        b.click(".tabs [data-part=headers]").await;
        b.wait_text("#mailHeaders", "Subject").await;
        b.click(".tabs [data-part=html]").await;
        b.screenshot("mail").await;

        b.click("#mailDeleteAll").await;
        b.wait_text("#mailStatus", "The inbox is empty.").await;
        b
    })
    .await;
}

#[actix_web::test]
async fn logs_written_through_the_page_show_in_the_logs_view_and_a_script_stays_text() {
    let app = Platform::up().await;
    Browser::with(|b| async move {
        b.open(&app.frontend).await;
        press(&b, "#authBrokerBtn", Some(json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}})), "Authenticated!").await;
        let log = json!({"action": "log", "log": {"name": "event", "data": "Some kind of data"}});
        press(&b, "#logBtn", Some(log), "Processed payload via RPC: event").await;
        let grpc = json!({"action": "log", "log": {"name": "event", "data": "Some kind of gRPC data"}});
        press(&b, "#logGBtn", Some(grpc), "logged").await;

        b.js("document.getElementById('received').textContent = ''; return null").await;
        b.fill("#eventData", crate::fake::SCRIPT_DATA).await;
        b.click("#eventBtn").await;
        b.wait_text("#received", "\"error\": false").await;
        let event = json!({"action": "event", "event": {"name": "event", "data": crate::fake::SCRIPT_DATA, "level": "INFO"}});
        assert_eq!(pane_json(&b, "#payload").await, event);

        b.click("#nav a[data-view=logs]").await;
        for data in ["Some kind of data", "Some kind of gRPC data", crate::fake::SCRIPT_DATA] {
            // The listener stores events asynchronously: search again until the entry is there.
            crate::helpers::eventually(data, || async {
                b.click("#logSearch").await;
                b.wait_text("#logStatus", "entries").await;
                b.text("#logRows").await.contains(data).then_some(())
            })
            .await;
        }
        let clean = b.js("return window.__pwned === undefined && document.querySelector('main script') === null").await;
        assert_eq!(clean, json!(true), "the <script> entry ran");

        b.click("#nav a[data-view=console]").await;
        // Newest first: the event, then the gRPC log request; follow the latter's request id.
        b.click("#output div:nth-child(2) a").await;
        b.wait_text("#logStatus", "entries").await;
        let rows = b.text("#logRows").await;
        assert!(rows.contains("Some kind of gRPC data"), "the request's own entry: {rows}");
        assert!(!rows.contains("Some kind of data"), "only that request's entries: {rows}");

        // The login's request id leads to what the auth service recorded for it.
        b.click("#nav a[data-view=console]").await;
        b.click("#output div:nth-child(4) a").await;
        let rows = b.wait_text("#logRows", "authentication").await;
        assert!(rows.contains("auth") && rows.contains("admin@example.com"), "the login's audit entry: {rows}");
        assert!(!rows.contains("Some kind of"), "only that request's entries: {rows}");
        b.screenshot("logs-request").await;
        b
    })
    .await;
}
