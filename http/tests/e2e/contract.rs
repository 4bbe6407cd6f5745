//! The COMPAT.md contract driven through the broker process, with each side effect checked
//! where it lands (users in PostgreSQL, mail in the SMTP server's Maildir; logs and events as
//! those services join).

use std::time::Duration;

use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};

use crate::cluster::{Cluster, SERVICES, delivered, eventually, maildir, parts};

#[actix_web::test]
async fn every_process_answers_ping_healthz_and_readyz() {
    let cluster = Cluster::start().await;
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
        // TODO(logger): {"action":"log"} with the logger process killed -> 503.
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
    let cluster = Cluster::start().await;
    for case in error_cases() {
        let req = cluster.http.post(format!("{}/handle", cluster.url("broker")));
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
    let cluster = Cluster::start().await;
    let res = cluster.http.post(cluster.url("broker")).send().await.expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, body), (200, json!({"error": false, "message": "Hit the broker"})));
}

#[actix_web::test]
async fn the_auth_action_authenticates_the_seeded_user_stored_in_postgres() {
    let cluster = Cluster::start().await;
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
    // TODO(logger): the attempt is stored as an audit entry named `authentication`.
}

// TODO(logger): `log` action -> 202 `Processed payload via RPC: <name>`, then the entry is
//   readable through the logger (GET /logs) and stored in MongoDB; `POST /log-grpc` -> 202 `logged`.
#[actix_web::test]
async fn the_mail_action_delivers_through_the_mailer_process_to_the_smtp_server() {
    let cluster = Cluster::start().await;
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

// TODO(events): an event published through the broker is consumed by the listener process and
//   stored through the logger.

#[actix_web::test]
async fn the_console_points_its_page_at_the_broker_and_the_broker_allows_it() {
    let cluster = Cluster::start().await;
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
