//! `troupe up` on embedded defaults (no servers): `202 Event published` means the event is
//! on disk in TROUPE_DATA_DIR. Events acknowledged while the log store is held busy (another
//! connection holding SQLite's write lock on `logs.db`), and events acknowledged under a
//! steady stream, are all stored exactly once after the process is killed (SIGKILL: no
//! drain) and started again on the same data directory.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Client;
use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};
use tokio::sync::watch;

use crate::cluster::{Processes, eventually, free_port, parts, troupe};

/// Publishers in flight at once.
const PUBLISHERS: usize = 32;

fn up_env(data: &Path) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [
        ("BIND_ADDRESS", "127.0.0.1"),
        ("RUST_LOG", "warn"),
        ("BACKOFF_MIN", "50ms"),
        ("BACKOFF_MAX", "500ms"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    env.insert("TROUPE_DATA_DIR".into(), data.display().to_string());
    for var in [
        "BROKER_PORT",
        "AUTH_PORT",
        "LOGGER_PORT",
        "LOGGER_GRPC_PORT",
        "LOGGER_RPC_PORT",
        "MAILER_PORT",
        "LISTENER_PORT",
        "FRONTEND_PORT",
        "CATCHER_HTTP_PORT",
        "CATCHER_SMTP_PORT",
    ] {
        env.insert(var.into(), free_port().to_string());
    }
    env
}

async fn ready(http: &Client, broker: &str) {
    eventually(Duration::from_secs(30), "troupe up ready", || async {
        let res = http.get(format!("{broker}/readyz")).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

/// Publish events named `name` from [`PUBLISHERS`] loops until `stop` or the broker stops
/// answering; the `data` of every event answered 202 goes into `acked`, counted by `count`.
fn publish_until_gone(
    http: &Client,
    broker: &str,
    name: &str,
    acked: &Arc<Mutex<Vec<String>>>,
    count: &watch::Sender<usize>,
    stop: usize,
) {
    for publisher in 0..PUBLISHERS {
        let (http, url, name) = (http.clone(), format!("{broker}/handle"), name.to_owned());
        let (acked, count) = (Arc::clone(acked), count.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let data = format!("publisher {publisher} event {n}");
                let body = json!({"action": "event", "event": {"name": name, "data": data}});
                let Ok(res) = http.post(&url).json(&body).send().await else { return };
                let (status, reply) = parts(res).await;
                if status != 202 {
                    return;
                }
                assert!(reply["data"]["id"].is_string(), "a 202 carries the event's id: {reply}");
                let mut all = acked.lock().expect("acked");
                if all.len() >= stop {
                    return;
                }
                all.push(data);
                count.send_replace(all.len());
            }
        });
    }
}

/// How many times each `data` is stored among the entries named `name` (read through the
/// broker, every page).
async fn stored(http: &Client, broker: &str, name: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = reqwest::Url::parse(&format!("{broker}/logs")).expect("url");
        url.query_pairs_mut().append_pair("name", name).append_pair("limit", "500");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let (status, body) = parts(http.get(url).send().await.expect("the broker answers")).await;
        assert_eq!(status, 200, "{body}");
        for entry in body["data"]["entries"].as_array().expect("entries") {
            let data = entry["data"].as_str().expect("data").to_owned();
            *counts.entry(data).or_default() += 1;
        }
        match body["data"]["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return counts,
        }
    }
}

/// Acknowledge `target` events (with the log store locked when `hold_store`), SIGKILL
/// `troupe up`, start it again, and check every acknowledged event is stored exactly once.
async fn acknowledged_events_survive_a_kill(name: &str, target: usize, hold_store: bool) {
    let (data, logs) = (tempfile::tempdir().expect("data dir"), tempfile::tempdir().expect("log dir"));
    let env = up_env(data.path());
    let broker = format!("http://127.0.0.1:{}", env["BROKER_PORT"]);
    let http = Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
    let mut up = Processes(vec![troupe(&["up"], &env, &logs.path().join("first.log"))]);
    ready(&http, &broker).await;

    // Another connection takes the log store's write lock: the logger cannot store.
    let mut holder = match hold_store {
        true => {
            let url = format!("sqlite://{}", data.path().join("logs.db").display());
            let mut conn = SqliteConnection::connect(&url).await.expect("open logs.db");
            sqlx::query("BEGIN IMMEDIATE").execute(&mut conn).await.expect("take the write lock");
            Some(conn)
        }
        false => None,
    };
    let acked = Arc::new(Mutex::new(Vec::new()));
    let (count, mut counted) = watch::channel(0);
    publish_until_gone(&http, &broker, name, &acked, &count, target);
    let waited = tokio::time::timeout(Duration::from_secs(120), counted.wait_for(|n| *n >= target));
    assert!(
        matches!(waited.await, Ok(Ok(_))),
        "{} of {target} events acknowledged",
        acked.lock().expect("acked").len()
    );
    if hold_store {
        let (status, body) =
            parts(http.get(format!("{broker}/logs?name={name}")).send().await.expect("answers")).await;
        assert_eq!(
            (status, body["data"]["entries"].as_array().map(Vec::len)),
            (200, Some(0)),
            "none stored while the store is held: {body}"
        );
    }
    up.0[0].kill().expect("SIGKILL troupe up");
    up.0[0].wait().expect("reap troupe up");
    if let Some(conn) = holder.take() {
        conn.close().await.expect("release the write lock");
    }
    let acked: Vec<String> = acked.lock().expect("acked").clone();

    let _again = Processes(vec![troupe(&["up"], &env, &logs.path().join("second.log"))]);
    ready(&http, &broker).await;
    // Delivered from the queue after the restart: read until every one is there, or say
    // how many are missing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let counts = loop {
        let counts = stored(&http, &broker, name).await;
        let missing = acked.iter().filter(|d| !counts.contains_key(*d)).count();
        if missing == 0 {
            break counts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{missing} of {} acknowledged events lost",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "{} events stored more than once: {twice:?}", twice.len());
    let status: Value = parts(
        http.get(format!("http://127.0.0.1:{}/status", env["LISTENER_PORT"])).send().await.expect("status"),
    )
    .await
    .1;
    assert_eq!(status["data"]["dead_lettered"], 0, "{status}");
}

#[actix_web::test]
async fn two_thousand_events_acknowledged_while_the_store_is_held_are_all_stored_once_after_a_kill() {
    acknowledged_events_survive_a_kill("held-store", 2_000, true).await;
}

#[actix_web::test]
async fn events_acknowledged_under_a_steady_stream_are_all_stored_once_after_a_kill() {
    acknowledged_events_survive_a_kill("steady-stream", 1_000, false).await;
}
