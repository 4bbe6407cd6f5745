//! A RabbitMQ node killed under load, seen from a client of the broker: every service a
//! `troupe serve` process on the 3-node cluster of `make services` (`RABBIT_URL` lists the
//! three nodes, the listener's queue a quorum queue); 32 clients send 10,000 `event` actions,
//! each with its own id and retried with the same id until it is answered 202; the node
//! holding the queue's leader is SIGKILLed after 3,000 of them. Every event ends stored exactly
//! once, read back through the broker's `GET /logs`.
//!
//! Not part of `make test` (`#[ignore]`): it takes about four minutes (the MongoDB-wire
//! stand-in stores the events at a few dozen a second once the collection has grown) and
//! kills a node of the cluster other tests use. `make chaos` runs it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::watch;
use troupe_testkit::rabbit_cluster;

use crate::cluster::{Cluster, admin_token, parts};

const EVENTS: usize = 10_000;
const KILL_AFTER: usize = 3_000;
const CLIENTS: usize = 32;
const NAME: &str = "failover";

/// What the clients saw: answers other than 202 (each retried), and the first 202 for a
/// request sent after the kill.
#[derive(Default)]
struct Seen {
    refused: AtomicUsize,
    killed_at: std::sync::Mutex<Option<Instant>>,
    recovered: std::sync::Mutex<Option<Duration>>,
}

/// Send event `n` until the broker answers 202 (the same id every time); at most 60 s.
async fn publish(cluster: &Cluster, n: usize, seen: &Seen) {
    let body = json!({"action": "event", "event": {"id": format!("{NAME}-{n}"), "name": NAME, "data": format!("event {n}")}});
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let started = Instant::now();
        let res = cluster.http.post(format!("{}/handle", cluster.url("broker"))).json(&body).send().await;
        if res.as_ref().is_ok_and(|r| r.status() == 202) {
            let killed = *seen.killed_at.lock().expect("lock");
            if let Some(at) = killed.filter(|at| started > *at) {
                seen.recovered.lock().expect("lock").get_or_insert_with(|| started - at);
            }
            return;
        }
        seen.refused.fetch_add(1, Ordering::SeqCst);
        assert!(Instant::now() < deadline, "event {n} not accepted within 60 s: {res:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How many times each event id is stored among the entries named [`NAME`] (every page);
/// `None` when a read was answered 503 (the MongoDB-wire stand-in, busy storing, answered a
/// page after the broker's deadline: the reader tries again, as a user would).
async fn stored(cluster: &Cluster) -> Option<HashMap<String, usize>> {
    let mut counts = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{}/logs", cluster.url("broker"))).expect("url");
        url.query_pairs_mut().append_pair("name", NAME).append_pair("limit", "500");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let res = cluster.http.get(url).bearer_auth(admin_token()).send().await.expect("the broker answers");
        let (status, body) = parts(res).await;
        if status == 503 {
            return None;
        }
        assert_eq!(status, 200, "{body}");
        for entry in body["data"]["entries"].as_array().expect("entries") {
            *counts.entry(entry["event_id"].as_str().unwrap_or_default().to_owned()).or_default() += 1;
        }
        match body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Some(counts),
        }
    }
}

#[actix_web::test]
#[ignore = "run by `make chaos` (about 4 min, and it kills a node of the shared cluster)"]
async fn ten_thousand_events_through_the_broker_survive_killing_the_quorum_leaders_node() {
    let cluster = Arc::new(Cluster::start_on_rabbit_cluster().await);
    let leader = rabbit_cluster::leader_of(&cluster.env["LISTENER_QUEUE"]).await;
    let (next, seen) = (Arc::new(AtomicUsize::new(0)), Arc::new(Seen::default()));
    let (acked_tx, mut acked) = watch::channel(0usize);
    let acked_tx = Arc::new(acked_tx);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (cluster, next, seen, acked_tx) =
                (cluster.clone(), next.clone(), seen.clone(), acked_tx.clone());
            actix_web::rt::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= EVENTS {
                        return;
                    }
                    publish(&cluster, n, &seen).await;
                    acked_tx.send_modify(|a| *a += 1);
                }
            })
        })
        .collect();
    let _ = acked.wait_for(|a| *a >= KILL_AFTER).await;
    *seen.killed_at.lock().expect("lock") = Some(Instant::now());
    rabbit_cluster::kill_node(&leader);
    for client in clients {
        client.await.expect("client task");
    }

    let published = Instant::now();
    let mut counts = stored(&cluster).await.unwrap_or_default();
    while counts.len() < EVENTS {
        if published.elapsed() > Duration::from_secs(900) {
            let queues = std::process::Command::new("rabbitmqctl")
                .args(["-q", "-n", "troupe3@localhost", "list_queues", "name", "leader", "messages_ready"])
                .args(["messages_unacknowledged", "consumers"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned());
            let metrics = cluster.http.get(format!("{}/metrics", cluster.url("listener"))).send().await;
            let metrics = match metrics {
                Ok(res) => res.text().await.unwrap_or_default(),
                Err(e) => e.to_string(),
            };
            let events: Vec<&str> = metrics.lines().filter(|l| l.starts_with("troupe_events")).collect();
            panic!(
                "{} of {EVENTS} events stored 900 s after the last was accepted\nqueues: {queues:?}\n\
                 listener metrics:\n{}\nthe listener said:\n{}",
                counts.len(),
                events.join("\n"),
                cluster.log("listener")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(now) = stored(&cluster).await {
            counts = now;
        }
    }
    eprintln!("all stored {:?} after the last was accepted", published.elapsed());
    let missing = (0..EVENTS).filter(|n| !counts.contains_key(&format!("{NAME}-{n}"))).count();
    let twice = counts.values().filter(|c| **c > 1).count();
    eprintln!(
        "broker failover: leader {leader} killed after {KILL_AFTER} events accepted; {} answers other than 202 \
         (each retried with its id); first 202 {:?} after the kill; {} stored, {} distinct, {missing} missing, \
         {twice} stored more than once",
        seen.refused.load(Ordering::SeqCst),
        seen.recovered.lock().expect("lock"),
        counts.values().sum::<usize>(),
        counts.len()
    );
    assert_eq!((counts.len(), missing, twice), (EVENTS, 0, 0), "every event stored exactly once");
}
