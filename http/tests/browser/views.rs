//! The logs, mail and health views against the scripted stand-in ([`crate::fake`]): what they
//! ask for, what they show, and that hostile text stays text.

use std::time::Duration;

use fantoccini::Locator;
use serde_json::{Value, json};
use troupe_core::config::FrontendSettings;
use troupe_http::platform;
use url::Url;

use crate::fake::{Fake, IMG_NAME, REQUEST, SCRIPT_DATA};
use crate::helpers::{Browser, common, eventually};

/// The console served with both its broker and catcher URLs pointing at a fresh stand-in.
fn console_on(fake: &Fake) -> String {
    let url = Url::parse(&fake.url).expect("url");
    let settings = FrontendSettings { frontend_port: 0, broker_url: url.clone(), catcher_url: url };
    let p = platform::serve_frontend(&common(), &settings).expect("console starts");
    let base = format!("http://127.0.0.1:{}", p.port("frontend").expect("console port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    base
}

async fn nothing_ran(b: &Browser) {
    let pwned = b
        .js("return window.__pwned === undefined && document.querySelector('main script, main img') === null")
        .await;
    assert_eq!(pwned, json!(true), "markup from the data was interpreted");
}

#[actix_web::test]
async fn the_logs_view_shows_hostile_entries_as_text_pages_filters_and_follows_a_request() {
    let fake = Fake::start();
    let console = console_on(&fake);
    Browser::with(|b| async move {
        b.open(&format!("{console}/#logs")).await;

        let rows = b.wait_text("#logRows", SCRIPT_DATA).await;
        assert!(rows.contains(IMG_NAME), "{rows}");
        nothing_ran(&b).await;
        b.screenshot("logs").await;

        b.click("#logMore").await;
        b.wait_text("#logRows", "the oldest entry").await;
        assert!(b.text("#logRows").await.contains(SCRIPT_DATA), "older entries are appended");
        assert!(fake.log_queries().last().is_some_and(|q| q.contains("cursor=page2")));

        b.fill("#f-name", "event").await;
        b.fill("#f-level", "ERROR").await;
        b.fill("#f-service", "listener").await;
        b.js("document.getElementById('f-since').value = '2026-11-24T04:00:00'; return null").await;
        b.click("#logSearch").await;
        let query = eventually("a filtered query", || async {
            fake.log_queries().into_iter().find(|q| q.contains("service=listener"))
        })
        .await;
        for part in ["name=event", "level=ERROR", "since=2026-11-2", "limit=50"] {
            assert!(query.contains(part), "{part} missing from {query}");
        }
        assert!(!query.contains("cursor="), "a new search starts at the newest entry: {query}");

        b.click("#logRows tr:first-child td:last-child a").await;
        b.wait_text("#logRows", "admin@example.com logged in").await;
        let value = b.js("return document.getElementById('f-request').value").await;
        assert_eq!(value, json!(REQUEST));
        let last = fake.log_queries().last().cloned().unwrap_or_default();
        assert!(last.contains(&format!("request_id={REQUEST}")) && !last.contains("service="), "{last}");
        for service in ["broker", "auth", "mailer"] {
            assert!(b.text("#logRows").await.contains(service), "{service} missing from the request's trail");
        }

        b.click("#logRows tr:first-child td:nth-child(4) a").await;
        b.wait_text("#logDetail", "\"request_id\"").await;
        nothing_ran(&b).await;
        b
    })
    .await;
}

#[actix_web::test]
async fn the_mail_view_lists_opens_in_a_sandbox_and_deletes_messages() {
    let fake = Fake::start();
    let console = console_on(&fake);
    Browser::with(|b| async move {
        b.open(&format!("{console}/#mail")).await;
        b.wait_text("#mailList", "Test email m1 <script>").await;

        b.click("#mailList li:first-child a").await;
        b.wait_text("#mailSubject", "Test email m1").await;
        let frame = b.client.find(Locator::Id("mailHtml")).await.expect("the HTML frame");
        assert_eq!(frame.attr("sandbox").await.expect("attr"), Some(String::new()), "fully sandboxed");
        let src = frame.attr("src").await.expect("attr").unwrap_or_default();
        assert!(src.ends_with("/api/messages/m1/html"), "{src}");
        frame.clone().enter_frame().await.expect("enter the frame");
        let marker =
            b.client.wait().at_most(crate::helpers::PATIENCE).for_element(Locator::Id("marker")).await;
        assert_eq!(marker.expect("the HTML body").text().await.expect("text"), "Hello world!");
        let ran = b.js("return document.body.dataset.ran || null").await;
        assert_eq!(ran, Value::Null, "a script in the mail ran");
        b.client.enter_parent_frame().await.expect("leave the frame");
        nothing_ran(&b).await;
        b.screenshot("mail-escaped").await;

        b.click(".tabs [data-part=text]").await;
        b.wait_text("#mailText", "Hello world! <script>").await;
        b.click(".tabs [data-part=headers]").await;
        b.wait_text("#mailHeaders", "<b>bold?</b>").await;
        nothing_ran(&b).await;

        b.click("#mailDelete").await;
        eventually("m1 to be deleted", || async { (fake.mail_ids() == ["m2"]).then_some(()) }).await;
        eventually("the list to drop m1", || async {
            let list = b.text("#mailList").await;
            (!list.contains("Test email m1") && list.contains("Test email m2")).then_some(())
        })
        .await;
        b
    })
    .await;
}

#[actix_web::test]
async fn the_health_view_shows_each_service_and_backend_and_fits_a_phone() {
    let fake = Fake::start();
    let console = console_on(&fake);
    Browser::with(|b| async move {
        b.open(&format!("{console}/#health")).await;
        let cards = b.wait_text("#healthCards", "logger.store").await;
        for part in ["auth", "auth.database", "broker", "not ready", "connecting", "4 failed attempts"] {
            assert!(cards.contains(part), "{part} missing from {cards}");
        }
        let down =
            b.js("return document.querySelector('[data-service=logger]').classList.contains('down')").await;
        assert_eq!(down, json!(true));
        b.screenshot("health-degraded").await;

        b.client.set_window_size(390, 844).await.expect("phone-sized window");
        for view in ["console", "logs", "mail", "dead", "health"] {
            b.open(&format!("{console}/#{view}")).await;
            b.client
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(&format!("#view-{view}:not([hidden])")))
                .await
                .expect("the view shows");
            let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth").await;
            assert_eq!(fits, json!(true), "the {view} view scrolls sideways on a phone");
        }
        b.open(&format!("{console}/#console")).await;
        b.screenshot("phone-console").await;
        b
    })
    .await;
}
