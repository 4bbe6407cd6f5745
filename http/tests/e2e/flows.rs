//! Flows that cross several processes: one request id from the broker through the auth
//! process, RabbitMQ, the listener process and the mailer process; the auth process's
//! `auth` event and a `mail` job travelling over RabbitMQ.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, admin_token, delivered, eventually, maildir, parts};

/// `POST /handle` on the broker carrying `x-request-id: id`; returns the reply's status,
/// body and echoed request id.
async fn handle_as(cluster: &Cluster, id: &str, body: &Value) -> (u16, Value, String) {
    let res = cluster
        .http
        .post(format!("{}/handle", cluster.url("broker")))
        .header("x-request-id", id)
        .bearer_auth(admin_token())
        .json(body)
        .send()
        .await
        .expect("the broker answers");
    let echoed = res.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (status, body) = parts(res).await;
    (status, body, echoed)
}

/// `service/name` of every entry stored under request id `id`, read through the broker.
async fn entries_of_request(cluster: &Cluster, id: &str) -> Vec<String> {
    let url = format!("{}/logs?request_id={id}", cluster.url("broker"));
    let res = cluster.http.get(url).bearer_auth(admin_token()).send().await.expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!(status, 200, "{body}");
    let mut found: Vec<String> = body["data"]["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| format!("{}/{}", e["service"].as_str().unwrap_or(""), e["name"].as_str().unwrap_or("")))
        .collect();
    found.sort();
    found
}

/// The listener's `acked` counter.
async fn listener_acked(cluster: &Cluster) -> u64 {
    let url = format!("{}/status", cluster.url("listener"));
    let (_, body) = parts(cluster.http.get(url).send().await.expect("the listener answers")).await;
    body["data"]["acked"].as_u64().unwrap_or(0)
}

#[actix_web::test]
async fn a_login_and_a_mail_job_carry_one_request_id_through_rabbitmq_to_every_process() {
    let cluster = Cluster::start().await;
    let id = format!("e2e-{}", uuid::Uuid::new_v4().simple());

    // A login: the auth process audits it by publishing an `auth` event on RabbitMQ, which
    // the listener process consumes (nothing else has been published yet).
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let (status, body, echoed) = handle_as(&cluster, &id, &login).await;
    assert_eq!((status, echoed.as_str()), (202, id.as_str()), "{body}");
    eventually(Duration::from_secs(20), "the listener acked the login's auth event", || async {
        (listener_acked(&cluster).await >= 1).then_some(())
    })
    .await;

    // A mail job: broker → RabbitMQ → listener process → MAILER_URL → mailer process → SMTP.
    let subject = format!("E2E job {}", uuid::Uuid::new_v4().simple());
    let mail = json!({"to": "you@there.com", "subject": subject, "message": "Sent by a job"});
    let event = json!({"action": "event", "event": {"name": "mail", "data": mail}});
    let (status, body, _) = handle_as(&cluster, &id, &event).await;
    assert_eq!(status, 202, "{body}");
    let raw = eventually(Duration::from_secs(20), "the job's mail at the SMTP server", || async {
        delivered(&maildir(), &subject)
    })
    .await;
    let m = mail_parser::MessageParser::default().parse(&raw[..]).expect("a parseable mail");
    assert_eq!(m.body_text(0).as_deref().map(str::trim_end), Some("Sent by a job"));

    // Everything the request caused is found by its id: the audit entry (once) and the
    // stored mail event.
    let found = eventually(Duration::from_secs(20), "both entries under the request id", || async {
        let found = entries_of_request(&cluster, &id).await;
        (found.len() >= 2).then_some(found)
    })
    .await;
    assert_eq!(found, ["auth/authentication", "listener/mail"]);

    // And every process that served it logged it under the same id.
    for process in ["broker", "auth", "mailer"] {
        let log = cluster.log(process);
        assert!(log.contains(&id), "the {process} process's log has no line for {id}:\n{log}");
    }
}
