//! The event pipeline against a real RabbitMQ (127.0.0.1:5672, or TEST_RABBIT_URL): the
//! publisher and listener actors driven directly, exchange and queue unique per test.

// Tests read top to bottom as one story; the line limit is for the product code.
#![allow(clippy::too_many_lines)]

mod cluster;
mod dead;
mod helpers;

use std::collections::HashSet;
use std::time::Duration;

use actix::Addr;
use futures_util::StreamExt;
use helpers::*;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use secrecy::ExposeSecret;
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_core::health::Readiness;
use troupe_core::messages::{LogLevel, PublishEvent};

/// Publish with a fixed id until confirmed (a failed publish may have reached the queue,
/// so the retry reuses the id and the store keeps one).
async fn publish_until_confirmed(publisher: &Addr<PublisherActor>, id: String, n: usize) {
    let msg = PublishEvent {
        id: Some(id),
        name: "event".into(),
        data: format!("event {n}"),
        level: LogLevel::Info,
        request_id: None,
        span: tracing::Span::none(),
    };
    loop {
        match publisher.send(msg.clone()).await {
            Ok(Ok(_)) => return,
            // Unavailable while reconnecting: try again shortly.
            _ => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

async fn wait_ready(readiness: &Readiness) {
    eventually(Duration::from_secs(15), "publisher and listener connected", || async {
        readiness.is_ready().then_some(())
    })
    .await;
}

#[actix_rt::test]
async fn ten_thousand_events_survive_forced_connection_closes_exactly_once() {
    init_tracing();
    let names = Names::new();
    let probe = test_channel(&names).await;
    let readiness = Readiness::default();
    let store = Store::embedded();
    let (_listener, stats) = listener(&names, 0, store.recipient(), &readiness);
    let publisher = publisher(&names, &readiness);
    wait_ready(&readiness).await;

    const N: usize = 10_000;
    let ids: Vec<String> = (0..N).map(|_| uuid::Uuid::new_v4().to_string()).collect();
    // Paced at about 500 events/s, and held back at a gate before each forced close until
    // that close is done (each `rabbitmqctl` call takes ~2 s), so that every close happens
    // while events are still to come however slow the machine; load shaping, not timing.
    let gates = [N / 5, N / 3 + N / 10];
    let (closed, closes) = tokio::sync::watch::channel(0usize);
    let publishing = {
        let (publisher, ids) = (publisher.clone(), ids.clone());
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let paced = futures_util::stream::unfold(
                (tick, closes, ids.into_iter().enumerate()),
                move |(mut tick, mut closes, mut it)| async move {
                    tick.tick().await;
                    let (n, id) = it.next()?;
                    if let Some(round) = gates.iter().position(|gate| n == *gate) {
                        closes.wait_for(|done| *done > round).await.expect("the test runs");
                    }
                    Some(((n, id), (tick, closes, it)))
                },
            );
            paced
                .for_each_concurrent(256, |(n, id)| {
                    let publisher = publisher.clone();
                    async move { publish_until_confirmed(&publisher, id, n).await }
                })
                .await;
        })
    };

    for (round, threshold) in [N / 10, N / 3].into_iter().enumerate() {
        eventually(Duration::from_secs(60), "events flowing before a forced close", || async {
            let s = stats.snapshot();
            (s.acked >= threshold as u64 && s.reconnects > round as u64).then_some(())
        })
        .await;
        assert!(
            close_connections(&names).await >= 2,
            "closed the publisher's and the listener's connections"
        );
        assert!(stats.snapshot().acked < N as u64, "the close happened while events were flowing");
        closed.send_replace(round + 1);
    }
    publishing.await.expect("publishing finished");

    // Acks count redeliveries too, so wait for the store itself to hold every event. A
    // deadline, not a pace: on timeout, say where the listener stood.
    let all_stored = async {
        loop {
            let entries = store.event_ids().await;
            if entries.len() >= N && stats.snapshot().acked >= N as u64 {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let Ok(entries) = tokio::time::timeout(Duration::from_secs(180), all_stored).await else {
        let stored = store.event_ids().await.len();
        panic!("not all events stored and acked in 180 s: {stored} stored; listener {:?}", stats.snapshot());
    };
    assert_eq!(entries.len(), N, "exactly N entries stored");
    let stored: HashSet<String> = entries.into_iter().collect();
    let published: HashSet<String> = ids.into_iter().collect();
    assert_eq!(stored.len(), N, "no duplicate");
    assert_eq!(stored, published, "the stored events are the published ones");
    assert!(stats.snapshot().reconnects >= 3, "the listener reconnected: {:?}", stats.snapshot());
    cleanup(&probe, &names).await;
}

/// A listener whose MongoDB-wire store has been cut away, and `n` events published to it.
struct StoreDown {
    names: Names,
    probe: troupe_actors::events::publisher::AmqpChannel,
    store: Store,
    listener: Addr<troupe_actors::events::listener::ListenerActor>,
    stats: std::sync::Arc<troupe_actors::events::ListenerStats>,
}

async fn publish_while_the_store_is_down(n: usize) -> StoreDown {
    let names = Names::new();
    let probe = test_channel(&names).await;
    let readiness = Readiness::default();
    let store = Store::mongo_behind_proxy().await;
    let (listener, stats) = listener(&names, 0, store.recipient(), &readiness);
    let publisher = publisher(&names, &readiness);
    wait_ready(&readiness).await;
    store.proxy.as_ref().expect("proxy").cut();
    for i in 0..n {
        publish_until_confirmed(&publisher, uuid::Uuid::new_v4().to_string(), i).await;
    }
    StoreDown { names, probe, store, listener, stats }
}

#[actix_rt::test]
async fn events_wait_in_the_queue_while_the_store_is_down_and_are_all_stored_after() {
    let StoreDown { names, probe, store, listener: _listener, stats } =
        publish_while_the_store_is_down(500).await;
    let proxy = store.proxy.as_ref().expect("proxy");
    eventually(
        Duration::from_secs(15),
        "the listener retrying and the rest waiting in the queue",
        || async {
            let waiting = ready_in(&probe, &names.queue).await;
            (stats.snapshot().retries > 0 && waiting >= 500 - 64).then_some(())
        },
    )
    .await;
    assert_eq!(stats.snapshot().acked, 0, "nothing acked while the store is down");

    proxy.restore();
    eventually(Duration::from_secs(60), "all acked, queue empty", || async {
        (stats.snapshot().acked >= 500 && ready_in(&probe, &names.queue).await == 0).then_some(())
    })
    .await;
    let entries = store.event_ids().await;
    assert_eq!(entries.len(), 500, "each event stored once");
    assert_eq!(entries.iter().collect::<HashSet<_>>().len(), 500);
    cleanup(&probe, &names).await;
}

#[actix_rt::test]
async fn two_listeners_on_one_queue_split_the_work_and_store_each_event_once() {
    let names = Names::new();
    let probe = test_channel(&names).await;
    let readiness = Readiness::default();
    let store = Store::embedded();
    let logger = store.recipient();
    let (_l1, first) = listener(&names, 1, logger.clone(), &readiness);
    let (_l2, second) = listener(&names, 2, logger, &readiness);
    let publisher = publisher(&names, &readiness);
    wait_ready(&readiness).await;

    futures_util::stream::iter(0..2_000)
        .for_each_concurrent(128, |n| {
            let publisher = publisher.clone();
            async move { publish_until_confirmed(&publisher, uuid::Uuid::new_v4().to_string(), n).await }
        })
        .await;

    eventually(Duration::from_secs(30), "all 2000 stored and acked", || async {
        (first.snapshot().acked + second.snapshot().acked >= 2_000).then_some(())
    })
    .await;
    let entries = store.event_ids().await;
    assert_eq!(entries.len(), 2_000, "each event stored once");
    assert_eq!(entries.iter().collect::<HashSet<_>>().len(), 2_000);
    let (a, b) = (first.snapshot().acked, second.snapshot().acked);
    assert!(a > 0 && b > 0, "both listeners did work: {a} and {b}");
    cleanup(&probe, &names).await;
}

#[actix_rt::test]
async fn a_malformed_message_is_dead_lettered_and_the_listener_keeps_going() {
    let names = Names::new();
    let probe = test_channel(&names).await;
    let readiness = Readiness::default();
    let store = Store::embedded();
    let (_listener, stats) = listener(&names, 0, store.recipient(), &readiness);
    wait_ready(&readiness).await;

    let raw = |body: &'static [u8]| {
        let ch = probe.channel.clone();
        let ex = names.exchange.clone();
        async move {
            ch.basic_publish(
                ex.as_str().into(),
                "log.INFO".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            )
            .await
            .expect("published");
        }
    };
    raw(b"this is not JSON").await;
    // A Go-platform event: no id, no persistent flag.
    raw(br#"{"name":"event","data":"Some kind of data"}"#).await;

    eventually(Duration::from_secs(15), "the valid event stored", || async {
        (stats.snapshot().acked == 1).then_some(())
    })
    .await;
    let dlq = format!("{}.dead", names.queue);
    eventually(Duration::from_secs(15), "the malformed message in the dead-letter queue", || async {
        (ready_in(&probe, &dlq).await == 1).then_some(())
    })
    .await;
    let s = stats.snapshot();
    assert_eq!((s.dead_lettered, s.acked), (1, 1), "{s:?}");
    let ids = store.event_ids().await;
    assert_eq!(ids.len(), 1);
    assert!(ids[0].starts_with("anonymous-"), "a fresh id for an id-less event: {ids:?}");
    cleanup(&probe, &names).await;
}

#[actix_rt::test]
async fn an_unroutable_event_is_a_failure_not_a_success() {
    let names = Names::new();
    let probe = test_channel(&names).await;
    let readiness = Readiness::default();
    let publisher = publisher(&names, &readiness);
    wait_ready(&readiness).await;

    // No listener: no queue is bound to the exchange.
    let reply = publisher.send(PublishEvent::info("event", "nobody listens")).await.expect("mailbox open");
    assert!(reply.is_err(), "{reply:?}");
    cleanup(&probe, &names).await;
}

#[actix_rt::test]
async fn a_draining_listener_finishes_what_it_was_delivered_and_takes_nothing_more() {
    use lapin::options::BasicGetOptions;
    use troupe_actors::events::Drain;

    // The store is down: the listener holds a prefetch's worth of deliveries, retrying them.
    let StoreDown { names, probe, store, listener, stats } = publish_while_the_store_is_down(300).await;
    let proxy = store.proxy.as_ref().expect("proxy");
    eventually(Duration::from_secs(15), "a prefetch's worth in flight, the rest queued", || async {
        let s = stats.snapshot();
        (s.in_flight == 64 && s.retries > 0 && ready_in(&probe, &names.queue).await == 300 - 64).then_some(())
    })
    .await;

    // Shutdown starts; the store comes back while the listener drains.
    let drained = actix_rt::spawn(listener.send(Drain(Duration::from_secs(30))));
    proxy.restore();
    drained.await.expect("the drain task").expect("the listener answers");

    let s = stats.snapshot();
    assert_eq!(
        (s.in_flight, s.acked, s.delivered),
        (0, 64, 64),
        "what was delivered was stored and acked: {s:?}"
    );
    assert_eq!(store.event_ids().await.len(), 64);
    // The rest is still in the queue, never handed out: no redelivery for the next listener.
    let mut left = 0;
    while let Some(msg) = probe
        .channel
        .basic_get(names.queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .expect("basic.get")
    {
        assert!(!msg.delivery.redelivered, "a message was handed back half-done");
        left += 1;
    }
    assert_eq!(left, 300 - 64, "the draining listener took nothing more");
    cleanup(&probe, &names).await;
}

#[actix_rt::test]
async fn a_wrong_vhost_or_password_is_said_as_a_misconfiguration_not_retried_as_an_outage() {
    let names = Names::new();
    let base = rabbit_url().expose_secret().to_owned();
    let (scheme, rest) = base.split_once("://").expect("an amqp:// URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h).split('/').next().unwrap_or_default();
    let cases = [
        (format!("{scheme}://guest:guest@{host}/troupe-no-such-vhost"), "vhost in RABBIT_URL"),
        (format!("{scheme}://guest:not-the-password@{host}/%2f"), "user or password in RABBIT_URL"),
    ];
    for (url, reason) in cases {
        let readiness = Readiness::default();
        let config = PublisherConfig {
            url: url.into(),
            exchange: names.exchange.clone(),
            timeout: Duration::from_secs(5),
            backoff: backoff(),
            connection_name: format!("{}-misconfigured", names.tag),
        };
        let publisher = PublisherActor::start(config, &readiness);
        let error = misconfiguration(&readiness, "events.publisher").await;
        assert!(error.contains(reason) && !error.contains("guest"), "{error}");
        let refused = publisher.send(PublishEvent::info("event", "x")).await.expect("mailbox open");
        assert!(matches!(refused, Err(troupe_core::ServiceError::Unavailable(_))), "{refused:?}");
    }
}

#[actix_rt::test]
async fn a_queue_that_exists_as_the_other_type_is_a_misconfiguration_said_clearly() {
    let names = Names::new();
    let probe = test_channel(&names).await;
    let store = Store::embedded();
    let classic = Readiness::default();
    let (first, _) = listener(&names, 0, store.recipient(), &classic);
    wait_ready(&classic).await;
    drop(first);

    let readiness = Readiness::default();
    let config = troupe_actors::events::listener::ListenerConfig {
        url: rabbit_url(),
        exchange: names.exchange.clone(),
        queue: names.queue.clone(),
        queue_type: troupe_core::config::QueueType::Quorum,
        prefetch: 8,
        timeout: Duration::from_secs(5),
        backoff: backoff(),
        connection_name: format!("{}-quorum", names.tag),
    };
    let stats = troupe_actors::events::ListenerStats::new("rabbitmq", &names.queue);
    let sink = troupe_actors::events::Sink::new(store.recipient(), Duration::from_secs(5));
    let _quorum = troupe_actors::events::listener::ListenerActor::start(config, sink, stats, &readiness);
    let error = misconfiguration(&readiness, "events.listener").await;
    assert!(error.contains("LISTENER_QUEUE") && error.contains("Quorum"), "{error}");
    cleanup(&probe, &names).await;
}
