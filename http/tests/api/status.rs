//! The broker's `GET /status`: every service's readiness, read in-process by `troupe up` and
//! from each service's `/readyz` in split mode.

use serde_json::Value;

use crate::helpers::{TestApp, fresh_pg_database, parts};

async fn status(app: &TestApp) -> Value {
    let res = app.http.get(format!("{}/status", app.broker)).send().await.expect("broker answers");
    let (code, body) = parts(res).await;
    assert_eq!(code, 200, "{body}");
    body["data"]["services"].clone()
}

#[actix_web::test]
async fn status_in_one_process_lists_every_service_with_its_backends() {
    let app = TestApp::all_in_one().await;
    let services = status(&app).await;
    for name in ["broker", "auth", "mailer", "frontend"] {
        assert!(services.get(name).is_some(), "{name} missing from {services}");
    }
    assert_eq!(services["auth"]["ready"], true, "{services}");
    assert_eq!(services["auth"]["backends"]["auth.database"]["state"], "ready", "{services}");
}

#[actix_web::test]
async fn status_in_split_mode_asks_each_service_and_reports_an_unreachable_one() {
    let app = TestApp::split(&fresh_pg_database().await).await;
    let services = status(&app).await;
    assert_eq!(services["auth"]["ready"], true, "{services}");
    assert_eq!(services["auth"]["backends"]["auth.database"]["state"], "ready", "{services}");
    // The split helper points the broker's MAILER_URL at a closed port.
    assert_eq!(services["mailer"]["ready"], false, "{services}");
    assert_eq!(services["mailer"]["error"], "unreachable", "{services}");
    assert_eq!(services["broker"]["ready"], true, "{services}");
}
