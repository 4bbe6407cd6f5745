//! The docs/compat.md contract driven through the broker process, with each side effect checked
//! where it lands: users in PostgreSQL, mail in the SMTP server's Maildir, log entries and
//! consumed events in MongoDB (read back through the broker's `GET /logs`, which asks the
//! logger process).

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

use crate::cluster::{Cluster, SERVICES, admin_token, delivered, eventually, maildir, parts};

/// The whole contract on `cluster`, in the order of this file (the TLS test runs it on a
/// cluster with every hop on TLS; each test here runs its part on a plain one).
pub async fn all_on(cluster: &Cluster) {
    every_process_answers_ping_healthz_and_readyz_on(cluster).await;
    the_broker_answers_every_error_of_the_contract_in_the_envelope_on(cluster).await;
    hit_the_broker_through_its_process_on(cluster).await;
    the_auth_action_authenticates_the_seeded_user_stored_in_postgres_on(cluster).await;
    the_log_action_and_log_grpc_store_through_the_logger_process_into_mongodb_on(cluster).await;
    the_mail_action_delivers_through_the_mailer_process_to_the_smtp_server_on(cluster).await;
    an_event_published_through_the_broker_is_consumed_and_stored_by_the_listener_process_on(cluster).await;
    the_console_points_its_page_at_the_broker_and_the_broker_allows_it_on(cluster).await;
}

#[actix_web::test]
async fn every_process_answers_ping_healthz_and_readyz() {
    every_process_answers_ping_healthz_and_readyz_on(&Cluster::start().await).await;
}

pub async fn every_process_answers_ping_healthz_and_readyz_on(cluster: &Cluster) {
    for service in SERVICES {
        let base = cluster.url(service.name);
        let res = cluster.http.get(format!("{base}/ping")).send().await.expect("ping answers");
        assert_eq!(res.status(), 200, "{} /ping", service.name);
        assert!(res.headers()[CONTENT_TYPE].to_str().unwrap_or_default().starts_with("text/plain"));
        assert_eq!(res.text().await.expect("body"), ".", "{} /ping", service.name);
        for path in ["/healthz", "/readyz"] {
            let (status, body) =
                parts(cluster.http.get(format!("{base}{path}")).send().await.expect("answer")).await;
            assert_eq!((status, &body["error"]), (200, &json!(false)), "{} {path}: {body}", service.name);
        }
    }

    // The broker's `/status` asks every service it knows (the listener through LISTENER_URL).
    let (status, body) = parts(
        cluster
            .http
            .get(format!("{}/status", cluster.url("broker")))
            .bearer_auth(admin_token())
            .send()
            .await
            .expect("broker answers"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    for name in ["broker", "auth", "logger", "mailer", "listener"] {
        assert_eq!(body["data"]["services"][name]["ready"], true, "{name} in the broker's /status: {body}");
    }
}

/// One request to the broker and the reply it must get.
struct Case {
    what: &'static str,
    body: Body,
    status: u16,
    message: &'static str,
}

enum Body {
    Json(Value),
    Raw(&'static str, Vec<u8>),
}

fn error_cases() -> Vec<Case> {
    let login = |email: &str, password: &str| json!({"action": "auth", "auth": {"email": email, "password": password}});
    vec![
        Case {
            what: "wrong password",
            body: Body::Json(login("admin@example.com", "wrong-password")),
            status: 401,
            message: "invalid credentials",
        },
        Case {
            what: "unknown user",
            body: Body::Json(login("nobody@example.com", "verysecret")),
            status: 401,
            message: "invalid credentials",
        },
        Case {
            what: "unknown action",
            body: Body::Json(json!({"action": "teleport"})),
            status: 400,
            message: "unknown action",
        },
        Case { what: "missing action", body: Body::Json(json!({})), status: 400, message: "unknown action" },
        Case {
            what: "malformed JSON",
            body: Body::Raw("application/json", b"{\"action\":".to_vec()),
            status: 400,
            message: "",
        },
        Case {
            what: "wrong content type",
            body: Body::Raw("application/xml", b"<action>auth</action>".to_vec()),
            status: 415,
            message: "",
        },
        Case {
            what: "body over 1 MiB",
            body: Body::Raw("application/json", over_one_mebibyte()),
            status: 413,
            message: "",
        },
        // `log` with the logger process killed (503) is in `resilience`.
        Case {
            what: "event with an unknown level",
            body: Body::Json(
                json!({"action": "event", "event": {"name": "x", "data": "y", "level": "LOUD"}}),
            ),
            status: 422,
            message: "",
        },
        Case {
            what: "event without a name",
            body: Body::Json(json!({"action": "event", "event": {"name": " ", "data": "y"}})),
            status: 422,
            message: "",
        },
        Case {
            what: "mail to an invalid address",
            body: Body::Json(
                json!({"action": "mail", "mail": {"from": "me@example.com", "to": "not an address",
                                                              "subject": "x", "message": "y"}}),
            ),
            status: 422,
            message: "",
        },
    ]
}

fn over_one_mebibyte() -> Vec<u8> {
    let data = "x".repeat(1_048_576);
    serde_json::to_vec(&json!({"action": "log", "log": {"name": "big", "data": data}})).expect("json")
}

#[actix_web::test]
async fn the_broker_answers_every_error_of_the_contract_in_the_envelope() {
    the_broker_answers_every_error_of_the_contract_in_the_envelope_on(&Cluster::start().await).await;
}

pub async fn the_broker_answers_every_error_of_the_contract_in_the_envelope_on(cluster: &Cluster) {
    for case in error_cases() {
        // As a signed-in sender: mail needs a token here (MAIL_HOST is set), and the contract's
        // errors are what a sender who has one gets.
        let req = cluster.http.post(format!("{}/handle", cluster.url("broker"))).bearer_auth(admin_token());
        let req = match &case.body {
            Body::Json(v) => req.json(v),
            Body::Raw(ct, bytes) => req.header(CONTENT_TYPE, *ct).body(bytes.clone()),
        };
        let (status, body) = parts(req.send().await.expect("the broker answers")).await;
        assert_eq!(status, case.status, "{}: {body}", case.what);
        assert_eq!(body["error"], true, "{}: not an error envelope: {body}", case.what);
        if !case.message.is_empty() {
            assert_eq!(body["message"], case.message, "{}", case.what);
        }
        assert!(!body.to_string().contains("127.0.0.1"), "{}: an internal address leaked: {body}", case.what);
    }
}

#[actix_web::test]
async fn hit_the_broker_through_its_process() {
    hit_the_broker_through_its_process_on(&Cluster::start().await).await;
}

pub async fn hit_the_broker_through_its_process_on(cluster: &Cluster) {
    let res = cluster.http.post(cluster.url("broker")).send().await.expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, body), (200, json!({"error": false, "message": "Hit the broker"})));
}

#[actix_web::test]
async fn the_auth_action_authenticates_the_seeded_user_stored_in_postgres() {
    the_auth_action_authenticates_the_seeded_user_stored_in_postgres_on(&Cluster::start().await).await;
}

pub async fn the_auth_action_authenticates_the_seeded_user_stored_in_postgres_on(cluster: &Cluster) {
    let (status, body) = parts(
        cluster
            .handle(
                &json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}}),
            )
            .await,
    )
    .await;
    assert_eq!((status, &body["message"]), (202, &json!("Authenticated!")), "{body}");
    let user = &body["data"];
    assert!(user.get("password").is_none(), "password leaked: {user}");
    assert_eq!(body["token"]["token_type"], "Bearer");

    // Side effect: the user that signed in is the row the auth process migrated and seeded
    // in the database compose would give it.
    let mut db = PgConnection::connect(&cluster.dsn).await.expect("users database");
    let row = sqlx::query("SELECT id, first_name, last_name, user_active FROM users WHERE email = $1")
        .bind("admin@example.com")
        .fetch_one(&mut db)
        .await
        .expect("the seeded user is in PostgreSQL");
    assert_eq!(user["id"], json!(row.get::<i32, _>("id")));
    assert_eq!(user["first_name"], json!(row.get::<String, _>("first_name")));
    assert_eq!(user["last_name"], json!(row.get::<String, _>("last_name")));
    assert_eq!(user["active"], json!(row.get::<i32, _>("user_active")));

    // Side effect: the auth process audited the attempt through the logger process.
    let audit = eventually(Duration::from_secs(20), "the login's `authentication` audit entry", || async {
        cluster
            .logs_named("authentication")
            .await
            .into_iter()
            .find(|e| e["data"].as_str().is_some_and(|d| d.contains("admin@example.com")))
    })
    .await;
    assert_eq!(audit["service"], "auth", "{audit}");
    assert!(!audit.to_string().contains("verysecret"), "the password reached the audit log: {audit}");
}

#[actix_web::test]
async fn the_log_action_and_log_grpc_store_through_the_logger_process_into_mongodb() {
    the_log_action_and_log_grpc_store_through_the_logger_process_into_mongodb_on(&Cluster::start().await)
        .await;
}

pub async fn the_log_action_and_log_grpc_store_through_the_logger_process_into_mongodb_on(cluster: &Cluster) {
    // `log` (the Go broker's RPC path): 202, then readable through the broker.
    let name = format!("e2e-log-{}", uuid::Uuid::new_v4().simple());
    let (status, body) =
        parts(cluster.handle(&json!({"action": "log", "log": {"name": name, "data": "via rpc"}})).await)
            .await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (202, &json!(false), &json!(format!("Processed payload via RPC: {name}"))),
        "{body}"
    );
    let entry = cluster.stored(&name).await;
    assert_eq!(
        (&entry["data"], &entry["service"], &entry["level"]),
        (&json!("via rpc"), &json!("broker"), &json!("INFO"))
    );
    assert!(entry["id"].as_str().is_some_and(|id| id.len() == 24), "an ObjectId: {entry}");

    // The entry is also readable by id, from the logger process directly.
    let id = entry["id"].as_str().expect("id");
    let (status, by_id) = parts(
        cluster
            .http
            .get(format!("{}/logs/{id}", cluster.url("logger")))
            .send()
            .await
            .expect("logger answers"),
    )
    .await;
    assert_eq!((status, &by_id["data"]["name"]), (200, &json!(name)), "{by_id}");

    // `POST /log-grpc`: 202 `logged`, stored over the logger's gRPC port.
    let name = format!("e2e-grpc-{}", uuid::Uuid::new_v4().simple());
    let res = cluster
        .http
        .post(format!("{}/log-grpc", cluster.url("broker")))
        .json(&json!({"log": {"name": name, "data": "via grpc"}}))
        .send()
        .await
        .expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, &body["error"], &body["message"]), (202, &json!(false), &json!("logged")), "{body}");
    let entry = cluster.stored(&name).await;
    assert_eq!(entry["data"], "via grpc", "{entry}");
}

#[actix_web::test]
async fn the_mail_action_delivers_through_the_mailer_process_to_the_smtp_server() {
    the_mail_action_delivers_through_the_mailer_process_to_the_smtp_server_on(&Cluster::start().await).await;
}

pub async fn the_mail_action_delivers_through_the_mailer_process_to_the_smtp_server_on(cluster: &Cluster) {
    let subject = format!("E2E {}", uuid::Uuid::new_v4().simple());
    let mail = json!({"from": "me@example.com", "to": "you@there.com", "subject": subject, "message": "Hello world!"});
    let (status, body) = parts(cluster.handle(&json!({"action": "mail", "mail": mail})).await).await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (202, &json!(false), &json!("Message sent to you@there.com"))
    );

    // Side effect: the SMTP server received it, with both parts rendered from `message`.
    let maildir = maildir();
    let raw = eventually(Duration::from_secs(20), "the mail in the SMTP server's Maildir", || async {
        delivered(&maildir, &subject)
    })
    .await;
    let m = mail_parser::MessageParser::default().parse(&raw[..]).expect("a parseable mail");
    assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("you@there.com"));
    let from = m.from().and_then(|a| a.first()).expect("a From header");
    assert_eq!(
        (from.address(), from.name()),
        (Some("me@example.com"), Some("Troupe E2E")),
        "FROM_NAME from the env"
    );
    assert_eq!((m.text_body_count(), m.html_body_count()), (1, 1), "a plain-text and an HTML part");
    assert_eq!(m.body_text(0).as_deref().map(str::trim_end), Some("Hello world!"));
}

#[actix_web::test]
async fn an_event_published_through_the_broker_is_consumed_and_stored_by_the_listener_process() {
    an_event_published_through_the_broker_is_consumed_and_stored_by_the_listener_process_on(
        &Cluster::start().await,
    )
    .await;
}

pub async fn an_event_published_through_the_broker_is_consumed_and_stored_by_the_listener_process_on(
    cluster: &Cluster,
) {
    let name = format!("e2e-event-{}", uuid::Uuid::new_v4().simple());
    let event = json!({"name": name, "data": {"answer": 42}, "level": "warning"});
    let (status, body) = parts(cluster.handle(&json!({"action": "event", "event": event})).await).await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (202, &json!(false), &json!(format!("Event published: {name}"))),
        "{body}"
    );
    let id = body["data"]["id"].as_str().unwrap_or_else(|| panic!("an event id: {body}")).to_owned();

    // Side effect: RabbitMQ delivered it to the listener process, which stored it in MongoDB.
    let entry = cluster.stored(&name).await;
    assert_eq!(
        (&entry["level"], &entry["service"], &entry["event_id"]),
        (&json!("WARNING"), &json!("listener"), &json!(id)),
        "{entry}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(entry["data"].as_str().expect("data")).ok(),
        Some(json!({"answer": 42}))
    );

    // The listener's own routes report it.
    let listener = cluster.url("listener");
    let res = cluster.http.get(format!("{listener}/readyz")).send().await.expect("listener answers");
    assert_eq!(res.status(), 200);
    let status = eventually(Duration::from_secs(20), "the listener's /status counts the ack", || async {
        let res = cluster.http.get(format!("{listener}/status")).send().await.expect("listener answers");
        let (code, body) = parts(res).await;
        assert_eq!((code, &body["error"]), (200, &json!(false)), "{body}");
        (body["data"]["acked"].as_u64() >= Some(1)).then_some(body)
    })
    .await;
    let data = &status["data"];
    assert_eq!(
        (&data["transport"], &data["queue"], &data["dead_lettered"]),
        (&json!("rabbitmq"), &json!(cluster.env["LISTENER_QUEUE"]), &json!(0)),
        "{status}"
    );
}

#[actix_web::test]
async fn the_console_points_its_page_at_the_broker_and_the_broker_allows_it() {
    the_console_points_its_page_at_the_broker_and_the_broker_allows_it_on(&Cluster::start().await).await;
}

pub async fn the_console_points_its_page_at_the_broker_and_the_broker_allows_it_on(cluster: &Cluster) {
    let res = cluster.http.get(cluster.url("frontend")).send().await.expect("the console answers");
    assert_eq!(res.status(), 200);
    let page = res.text().await.expect("page");
    let broker_port = cluster.ports["broker"].to_string();
    assert!(page.contains("data-broker=") && page.contains(&broker_port), "BROKER_URL not in the page");

    // The browser's preflight from the console's origin is allowed by the broker.
    let origin = cluster.url("frontend");
    let res = cluster
        .http
        .request(reqwest::Method::OPTIONS, format!("{}/handle", cluster.url("broker")))
        .header("Origin", &origin)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("preflight answered");
    assert!(res.status().is_success(), "preflight: {}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], origin.as_str());
}
