//! A 3-node RabbitMQ cluster on loopback (`scripts/services.d/25-rabbitmq-cluster.sh`,
//! nodes `troupe1..3@localhost` on 127.0.0.1:5701-5703) and a quorum queue: 10,000 events
//! published with confirms while the node holding the queue's leader is killed (SIGKILL)
//! mid-stream. The publisher and the listener fail over to the other nodes (`RABBIT_URL`
//! lists all three); a publish that failed is retried with the same id; every event ends
//! stored exactly once. The killed node is started again by the next run (or
//! `make services`).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use tokio::sync::watch;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::{ListenerStats, Sink};
use troupe_core::config::QueueType;
use troupe_core::health::Readiness;
use troupe_core::messages::PublishEvent;
use troupe_testkit::rabbit_cluster;

use crate::helpers::{Names, Store, backoff, eventually, init_tracing};

const EVENTS: usize = 10_000;
const KILL_AFTER: usize = 3_000;
const PUBLISHERS: usize = 32;

fn cluster_url() -> SecretString {
    rabbit_cluster::url().into()
}

#[actix_rt::test]
async fn a_quorum_queue_loses_nothing_when_the_leaders_node_is_killed_mid_stream() {
    init_tracing();
    rabbit_cluster::require();
    let names = Names::new();
    let store = Store::embedded();
    let readiness = Readiness::default();
    let listener = ListenerActor::start(
        ListenerConfig {
            url: cluster_url(),
            exchange: names.exchange.clone(),
            queue: names.queue.clone(),
            queue_type: QueueType::Quorum,
            prefetch: 256,
            timeout: Duration::from_secs(5),
            backoff: backoff(),
            connection_name: format!("{}-listener", names.tag),
        },
        Sink::new(store.recipient(), Duration::from_secs(5)),
        ListenerStats::new("rabbitmq", &names.queue),
        &readiness,
    );
    let publisher = PublisherActor::start(
        PublisherConfig {
            url: cluster_url(),
            exchange: names.exchange.clone(),
            timeout: Duration::from_secs(5),
            backoff: backoff(),
            connection_name: format!("{}-publisher", names.tag),
        },
        &readiness,
    );
    tokio::time::timeout(Duration::from_secs(30), readiness.wait_ready()).await.expect("connected");
    let leader = rabbit_cluster::leader_of(&names.queue).await;

    let next = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    let (acked_tx, mut acked) = watch::channel(0usize);
    let acked_tx = Arc::new(acked_tx);
    let killed_at: Arc<std::sync::Mutex<Option<Instant>>> = Arc::default();
    let recovered: Arc<std::sync::Mutex<Option<Duration>>> = Arc::default();
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let (publisher, next, failures) = (publisher.clone(), next.clone(), failures.clone());
        let (acked_tx, killed_at, recovered) = (acked_tx.clone(), killed_at.clone(), recovered.clone());
        tasks.push(actix_rt::spawn(async move {
            loop {
                let n = next.fetch_add(1, Ordering::SeqCst);
                if n >= EVENTS {
                    return;
                }
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let started = Instant::now();
                    let msg = PublishEvent {
                        id: Some(format!("cluster-{n}")),
                        ..PublishEvent::info("cluster", format!("event {n}"))
                    };
                    // A publish in flight when the connection dies is answered by a dropped
                    // reply (the actor restarts): a failure like any other.
                    match publisher
                        .send(msg)
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                    {
                        Ok(_) => {
                            let killed = *killed_at.lock().expect("lock");
                            if let Some(at) = killed.filter(|at| started > *at) {
                                recovered.lock().expect("lock").get_or_insert_with(|| started - at);
                            }
                            acked_tx.send_modify(|a| *a += 1);
                            break;
                        }
                        Err(err) => {
                            if failures.fetch_add(1, Ordering::SeqCst) % 500 == 0 {
                                tracing::warn!(error = %err, "publish failed; retrying with the same id");
                            }
                            assert!(Instant::now() < deadline, "event {n} not published within 60 s");
                            // The same id again: stored once however often it is resent.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
            }
        }));
    }
    let _ = acked.wait_for(|a| *a >= KILL_AFTER).await;
    *killed_at.lock().expect("lock") = Some(Instant::now());
    rabbit_cluster::kill_node(&leader);
    for task in tasks {
        task.await.expect("publisher task");
    }

    let stored = eventually(Duration::from_secs(120), "all 10,000 events stored", || async {
        let ids = store.event_ids().await;
        (ids.len() >= EVENTS).then_some(ids)
    })
    .await;
    let distinct: HashSet<&String> = stored.iter().collect();
    let missing = (0..EVENTS).filter(|n| !distinct.contains(&format!("cluster-{n}"))).count();
    eprintln!(
        "cluster failover: leader {leader} killed after {KILL_AFTER} acks; {} failed publishes retried; \
         first publish confirmed {:?} after the kill; {} stored, {} distinct, {missing} missing",
        failures.load(Ordering::SeqCst),
        recovered.lock().expect("lock"),
        stored.len(),
        distinct.len()
    );
    assert_eq!(
        (stored.len(), distinct.len(), missing),
        (EVENTS, EVENTS, 0),
        "every event stored exactly once"
    );
    drop(listener);
}
