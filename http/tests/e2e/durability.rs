//! A 202 from the logger means the entry is on disk. Writes arriving together are committed
//! in multi-row batches (one statement, one fsync per batch); an entry is answered only once
//! its batch is committed, so every entry acknowledged before the logger process is killed
//! (SIGKILL: no shutdown, no drain) is found after it starts again on the same data directory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Client;
use serde_json::json;
use tokio::sync::watch;

use crate::cluster::{Processes, eventually, free_port, parts, troupe_serve};

/// Writers in flight at once: enough that batches hold many entries.
const WRITERS: usize = 64;
/// Acknowledged entries to wait for before the kill.
const ACKED_BEFORE_KILL: usize = 300;

fn logger_env(data: &std::path::Path) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = [("BIND_ADDRESS", "127.0.0.1"), ("RUST_LOG", "warn")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    env.insert("TROUPE_DATA_DIR".into(), data.display().to_string());
    for var in ["LOGGER_PORT", "LOGGER_GRPC_PORT", "LOGGER_RPC_PORT"] {
        env.insert(var.into(), free_port().to_string());
    }
    env
}

async fn ready(http: &Client, url: &str) {
    eventually(Duration::from_secs(30), &format!("the logger ready at {url}"), || async {
        let res = http.get(format!("{url}/readyz")).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

/// Write entries from `WRITERS` loops until the logger stops answering; every id answered
/// 202 goes into `acked`, and `count` says how many there are.
fn write_until_gone(http: &Client, url: &str, acked: &Arc<Mutex<Vec<String>>>, count: &watch::Sender<usize>) {
    for writer in 0..WRITERS {
        let (http, url, acked, count) =
            (http.clone(), format!("{url}/log"), Arc::clone(acked), count.clone());
        tokio::spawn(async move {
            for n in 0.. {
                let body = json!({"name": "durable", "data": format!("writer {writer} entry {n}")});
                let Ok(res) = http.post(&url).json(&body).send().await else { return };
                let (status, reply) = parts(res).await;
                if status != 202 {
                    return;
                }
                let id = reply["data"]["id"].as_str().expect("a 202 carries the entry's id").to_owned();
                let mut ids = acked.lock().expect("ids");
                ids.push(id);
                count.send_replace(ids.len());
            }
        });
    }
}

#[actix_web::test]
async fn every_entry_answered_202_is_found_after_the_logger_is_killed_under_load() {
    let (data, logs) = (tempfile::tempdir().expect("data dir"), tempfile::tempdir().expect("log dir"));
    let env = logger_env(data.path());
    let url = format!("http://127.0.0.1:{}", env["LOGGER_PORT"]);
    let http = Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
    let mut logger = Processes(vec![troupe_serve("logger", &env, &logs.path().join("first.log"))]);
    ready(&http, &url).await;

    let acked = Arc::new(Mutex::new(Vec::new()));
    let (count, mut counted) = watch::channel(0);
    write_until_gone(&http, &url, &acked, &count);
    counted.wait_for(|n| *n >= ACKED_BEFORE_KILL).await.expect("the writers run");
    // Killed with writes in flight: those not yet answered may or may not be stored, but
    // none answered 202 may be missing.
    logger.0[0].kill().expect("SIGKILL the logger");
    logger.0[0].wait().expect("reap the logger");
    let acked: Vec<String> = acked.lock().expect("ids").clone();

    let _again = Processes(vec![troupe_serve("logger", &env, &logs.path().join("second.log"))]);
    ready(&http, &url).await;
    let mut missing = Vec::new();
    for id in &acked {
        let res = http.get(format!("{url}/logs/{id}")).send().await.expect("the logger answers");
        if res.status() != 200 {
            missing.push(id.clone());
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged entries lost: {missing:?}",
        missing.len(),
        acked.len()
    );
}
