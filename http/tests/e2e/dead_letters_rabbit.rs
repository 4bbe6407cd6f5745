//! Dead letters in split mode over RabbitMQ: the broker asks the listener process at
//! LISTENER_URL, which reads RabbitMQ's `<queue>.dead`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, admin_token, eventually, parts};

async fn dead_letters(cluster: &Cluster) -> Vec<Value> {
    let url = format!("{}/dead-letters", cluster.url("broker"));
    let res = cluster.http.get(url).bearer_auth(admin_token()).send().await.expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!(status, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[actix_web::test]
async fn a_mail_job_the_mailer_refuses_is_listed_and_replayed_through_the_broker_from_the_dead_queue() {
    let cluster = Cluster::start().await;
    let queue = cluster.env["LISTENER_QUEUE"].clone();
    let mail = json!({"to": "not an address", "subject": "Never", "message": "x"});
    let event = json!({"action": "event", "event": {"name": "mail", "data": mail.to_string()}});
    let req = cluster.http.post(format!("{}/handle", cluster.url("broker"))).bearer_auth(admin_token());
    let (status, body) = parts(req.json(&event).send().await.expect("the broker answers")).await;
    assert_eq!(status, 202, "{body}");

    let letters = eventually(Duration::from_secs(20), "the refused job in .dead", || async {
        Some(dead_letters(&cluster).await).filter(|l| l.len() == 1)
    })
    .await;
    assert_eq!(letters[0]["event"]["name"], "mail", "{letters:?}");
    assert_eq!(letters[0]["reason"], format!("rejected in {queue}"), "{letters:?}");

    let url = format!("{}/dead-letters/replay", cluster.url("broker"));
    let req = cluster.http.post(url).bearer_auth(admin_token()).json(&json!({"seq": letters[0]["seq"]}));
    let (status, body) = parts(req.send().await.expect("the broker answers")).await;
    assert_eq!((status, body["data"]["replayed"].as_u64()), (200, Some(1)), "{body}");
    // Refused again by the mailer: back in .dead, its second death counted.
    let again = eventually(Duration::from_secs(20), "the replayed job refused again", || async {
        Some(dead_letters(&cluster).await).filter(|l| l.len() == 1 && l[0]["seq"] != letters[0]["seq"])
    })
    .await;
    assert_eq!(again[0]["reason"], format!("rejected in {queue} (2 times)"), "{again:?}");
    assert_eq!(again[0]["event"]["id"], letters[0]["event"]["id"], "the same event");
}
