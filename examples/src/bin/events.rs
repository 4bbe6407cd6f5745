//! Publish events and watch them land, driving the actors directly (no HTTP): the real
//! logger actor on an embedded store in a temporary directory, and the event pipeline —
//! RabbitMQ (publisher with confirms + listener on a queue of its own) when `RABBIT_URL` is
//! set, else the in-process bus with its queue on disk in the same directory.
//!
//! `cargo run -p troupe-examples --bin events` or
//! `RABBIT_URL=amqp://guest:guest@127.0.0.1:5672/%2f cargo run -p troupe-examples --bin events`

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use troupe_actors::events::bus::{BusConfig, EventBus};
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::queue::QueueConfig;
use troupe_actors::events::{ListenerStats, Sink};
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::{LogFilter, LogLevel, PublishEvent, QueryLogs};

/// The pieces a run keeps alive.
struct Pipeline {
    publisher: Recipient<PublishEvent>,
    stats: Arc<ListenerStats>,
    _listener: Option<Addr<ListenerActor>>,
    _publisher: Option<Addr<PublisherActor>>,
}

fn pipeline(sink: Sink, backoff: BackoffPolicy, readiness: &Readiness, dir: &std::path::Path) -> Pipeline {
    let Ok(url) = std::env::var("RABBIT_URL") else {
        let stats = EventBus::new_stats();
        let queue = QueueConfig {
            path: dir.join("events.db"),
            max_pending: 100_000,
            timeout: Duration::from_secs(5),
        };
        let bus =
            EventBus::start(BusConfig { queue, backoff, in_flight: 64 }, sink, stats.clone(), readiness);
        return Pipeline { publisher: bus.recipient(), stats, _listener: None, _publisher: None };
    };
    let tag = format!("troupe-example-{}", std::process::id());
    let exchange = format!("{tag}.ex");
    let publisher = PublisherActor::start(
        PublisherConfig {
            url: url.clone().into(),
            exchange: exchange.clone(),
            timeout: Duration::from_secs(5),
            backoff,
            connection_name: format!("{tag}-publisher"),
        },
        readiness,
    );
    let queue = format!("{tag}.q");
    let stats = ListenerStats::new("rabbitmq", &queue);
    let listener = ListenerActor::start(
        ListenerConfig {
            url: url.into(),
            exchange,
            queue,
            queue_type: troupe_core::config::QueueType::Classic,
            prefetch: 64,
            timeout: Duration::from_secs(5),
            backoff,
            connection_name: format!("{tag}-listener"),
        },
        sink,
        stats.clone(),
        readiness,
    );
    Pipeline {
        publisher: publisher.clone().recipient(),
        stats,
        _listener: Some(listener),
        _publisher: Some(publisher),
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    for _ in 0..600 {
        if done() {
            return Ok(());
        }
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backoff = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_secs(2) };
    let readiness = Readiness::default();
    let logger = LoggerActor::start(LoggerConfig::embedded(dir.path(), backoff), &readiness);
    let sink = Sink::new(logger.clone().recipient(), Duration::from_secs(5));
    let p = pipeline(sink, backoff, &readiness, dir.path());
    tokio::time::timeout(Duration::from_secs(30), readiness.wait_ready())
        .await
        .map_err(|_| anyhow::anyhow!("timed out waiting for the store and the pipeline to be ready"))?;

    let events = [
        ("event", "Some kind of data", LogLevel::Info),
        ("auth", "admin@example.com logged in", LogLevel::Info),
        ("payment", "card declined", LogLevel::Warning),
        ("event", "disk full", LogLevel::Error),
    ];
    for (name, data, level) in events {
        let msg = PublishEvent { level, ..PublishEvent::info(name, data) };
        let id = p.publisher.send(msg).await?.map_err(anyhow::Error::msg)?;
        println!("published {name:<8} {:<7} id {id}", level.as_str());
    }
    until("every event to be stored", || p.stats.snapshot().acked >= events.len() as u64).await?;
    println!("listener: {:?}", p.stats.snapshot());

    let page = logger
        .send(QueryLogs { filter: LogFilter::default(), limit: 10, cursor: None })
        .await?
        .map_err(anyhow::Error::msg)?;
    for e in page.entries.iter().rev() {
        println!(
            "stored {:<7} {:<15} service={:<8} event_id={} {}",
            e.level.as_str(),
            e.name,
            e.service,
            e.event_id.as_deref().unwrap_or("-"),
            e.data
        );
    }
    Ok(())
}
