//! Benchmark of the event pipeline against the same RabbitMQ, in one run (`make bench-events`):
//!
//! 1. raw: a bare lapin program publishing N persistent messages with confirms (all in
//!    flight) to a fresh durable queue while a consumer acks each one; the rate is N over
//!    the time until the last ack.
//! 2. pipeline: N `PublishEvent`s through the publisher actor (256 concurrent callers), the
//!    listener actor consuming and storing each through the real logger actor (embedded
//!    store, batched writes); the rate is N over the time until the last event is acked
//!    after being stored.
//!
//! `RABBIT_URL` (default amqp://guest:guest@127.0.0.1:5672/%2f), `BENCH_EVENTS` (default 20000).

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::{ListenerStats, Sink};
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::PublishEvent;

async fn raw(url: &str, n: usize) -> anyhow::Result<f64> {
    let conn = Connection::connect(url, ConnectionProperties::default()).await?;
    let (pubch, subch) = (conn.create_channel().await?, conn.create_channel().await?);
    let queue = format!("troupe-bench-raw-{}", uuid::Uuid::new_v4().simple());
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    pubch.queue_declare(queue.as_str().into(), durable, FieldTable::default()).await?;
    pubch.confirm_select(ConfirmSelectOptions::default()).await?;
    subch.basic_qos(64, BasicQosOptions::default()).await?;
    let mut consumer = subch
        .basic_consume(
            queue.as_str().into(),
            "bench".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let body =
        br#"{"id":"00000000-0000-0000-0000-000000000000","name":"event","data":"benchmark","level":"INFO"}"#;
    let start = Instant::now();
    let consuming = tokio::spawn(async move {
        let mut got = 0;
        while got < n {
            let Some(Ok(d)) = consumer.next().await else { break };
            let _ = d.acker.ack(BasicAckOptions::default()).await;
            got += 1;
        }
        got
    });
    let opts = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let mut confirms = Vec::with_capacity(n);
    for _ in 0..n {
        let props = BasicProperties::default().with_delivery_mode(2);
        confirms.push(pubch.basic_publish("".into(), queue.as_str().into(), opts, body, props).await?);
    }
    for c in confirms {
        anyhow::ensure!(c.await?.is_ack(), "nacked");
    }
    let got = consuming.await?;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(got == n, "consumed {got} of {n}");
    pubch.queue_delete(queue.as_str().into(), QueueDeleteOptions::default()).await?;
    Ok(n as f64 / secs)
}

async fn pipeline(url: &str, n: usize) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let backoff = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_secs(2) };
    let readiness = Readiness::default();
    let logger = LoggerActor::start(LoggerConfig::embedded(dir.path(), backoff), &readiness);
    let tag = format!("troupe-bench-{}", uuid::Uuid::new_v4().simple());
    let exchange = format!("{tag}.ex");
    let queue = format!("{tag}.q");
    let stats = ListenerStats::new("rabbitmq", &queue);
    let _listener = ListenerActor::start(
        ListenerConfig {
            url: url.to_owned().into(),
            exchange: exchange.clone(),
            queue: queue.clone(),
            queue_type: troupe_core::config::QueueType::Classic,
            prefetch: 256,
            timeout: Duration::from_secs(5),
            backoff,
            connection_name: format!("{tag}-listener"),
        },
        Sink::new(logger.recipient(), Duration::from_secs(10)),
        stats.clone(),
        &readiness,
    );
    let publisher = PublisherActor::start(
        PublisherConfig {
            url: url.to_owned().into(),
            exchange,
            timeout: Duration::from_secs(10),
            backoff,
            connection_name: format!("{tag}-publisher"),
        },
        &readiness,
    );
    tokio::time::timeout(Duration::from_secs(20), readiness.wait_ready())
        .await
        .map_err(|_| anyhow::anyhow!("pipeline not ready"))?;
    let start = Instant::now();
    let failures = futures_util::stream::iter(0..n)
        .map(|i| publisher.send(PublishEvent::info("event", format!("benchmark {i}"))))
        .buffer_unordered(256)
        .filter(|r| std::future::ready(!matches!(r, Ok(Ok(_)))))
        .count()
        .await;
    anyhow::ensure!(failures == 0, "{failures} publishes failed");
    until_acked(&stats, n).await?;
    let secs = start.elapsed().as_secs_f64();
    delete_queues(url, &queue).await;
    Ok(n as f64 / secs)
}

/// Wait (polling the counters, as a benchmark may) until `n` deliveries were acked.
async fn until_acked(stats: &ListenerStats, n: usize) -> anyhow::Result<()> {
    let done_by = Instant::now() + Duration::from_secs(300);
    while stats.snapshot().acked < n as u64 {
        anyhow::ensure!(Instant::now() < done_by, "not all stored: {:?}", stats.snapshot());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Remove the benchmark's queue and its dead-letter queue (best effort).
async fn delete_queues(url: &str, queue: &str) {
    if let Ok(conn) = Connection::connect(url, ConnectionProperties::default()).await
        && let Ok(ch) = conn.create_channel().await
    {
        for q in [queue.to_owned(), format!("{queue}.dead")] {
            let _ = ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
        }
    }
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("RABBIT_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let n: usize = std::env::var("BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(20_000);
    let raw_rate = raw(&url, n).await?;
    println!("raw lapin publish-with-confirm + consume-with-ack: {raw_rate:.0} msg/s ({n} messages)");
    let pipe_rate = pipeline(&url, n).await?;
    println!("troupe pipeline publish -> stored -> acked:        {pipe_rate:.0} events/s ({n} events)");
    println!("ratio pipeline/raw: {:.2}", pipe_rate / raw_rate);
    Ok(())
}
