//! Fixtures of the event pipeline tests: RabbitMQ names unique per test, actor start-up,
//! forced connection closes, queue inspection, and `eventually`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Recipient};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use secrecy::SecretString;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{AmqpChannel, PublisherActor, PublisherConfig, open};
use troupe_actors::events::{ListenerStats, Sink};
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::WriteLog;

pub fn rabbit_url() -> SecretString {
    std::env::var("TEST_RABBIT_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into()).into()
}

pub fn backoff() -> BackoffPolicy {
    BackoffPolicy { min: Duration::from_millis(50), max: Duration::from_millis(500) }
}

/// Names unique to one test: exchange, queue, and a tag in every connection name.
pub struct Names {
    pub tag: String,
    pub exchange: String,
    pub queue: String,
}

impl Names {
    pub fn new() -> Self {
        let tag = format!("troupe-test-{}", uuid::Uuid::new_v4().simple());
        Self { exchange: format!("{tag}.ex"), queue: format!("{tag}.q"), tag }
    }
}

/// An AMQP connection for the test itself; fails loudly when RabbitMQ is missing.
pub async fn test_channel(names: &Names) -> AmqpChannel {
    open(&rabbit_url(), &format!("{}-probe", names.tag), Duration::from_secs(5)).await.unwrap_or_else(|e| {
        panic!("RabbitMQ is required for this test (TEST_RABBIT_URL, default 127.0.0.1:5672): {e:#}. Run `make services`.")
    })
}

pub fn publisher(names: &Names, readiness: &Readiness) -> Addr<PublisherActor> {
    let config = PublisherConfig {
        url: rabbit_url(),
        exchange: names.exchange.clone(),
        timeout: Duration::from_secs(5),
        backoff: backoff(),
        connection_name: format!("{}-publisher", names.tag),
    };
    PublisherActor::start(config, readiness)
}

/// A listener and its counters; keep the address (the supervisor restarts the actor only
/// while an address exists).
pub fn listener(
    names: &Names,
    n: usize,
    logger: Recipient<WriteLog>,
    readiness: &Readiness,
) -> (Addr<ListenerActor>, Arc<ListenerStats>) {
    let config = ListenerConfig {
        url: rabbit_url(),
        exchange: names.exchange.clone(),
        queue: names.queue.clone(),
        prefetch: 64,
        timeout: Duration::from_secs(5),
        backoff: backoff(),
        connection_name: format!("{}-listener{n}", names.tag),
    };
    let stats = ListenerStats::new("rabbitmq", &names.queue);
    let addr =
        ListenerActor::start(config, Sink::new(logger, Duration::from_secs(5)), stats.clone(), readiness);
    (addr, stats)
}

/// Close every RabbitMQ connection of this test (named with its tag, the test's own probe
/// connection excepted); returns how many.
pub async fn close_connections(names: &Names) -> usize {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(["list_connections", "-q", "--no-table-headers", "pid", "client_properties"])
        .output()
        .await
        .expect("rabbitmqctl runs (RabbitMQ must be local)");
    let text = String::from_utf8_lossy(&out.stdout);
    let closing =
        text.lines().filter(|l| l.contains(&names.tag) && !l.contains("-probe")).filter_map(|line| {
            let pid = line.split_whitespace().next()?.to_owned();
            Some(async move {
                let st = tokio::process::Command::new("rabbitmqctl")
                    .args(["close_connection", &pid, "test: forced close"])
                    .status()
                    .await
                    .expect("rabbitmqctl runs");
                st.success()
            })
        });
    futures_util::future::join_all(closing).await.into_iter().filter(|ok| *ok).count()
}

/// Messages ready in `queue` (passive declare).
pub async fn ready_in(ch: &AmqpChannel, queue: &str) -> u32 {
    let opts = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
    ch.channel
        .queue_declare(queue.into(), opts, FieldTable::default())
        .await
        .map(|q| q.message_count())
        .unwrap_or(0)
}

/// Delete the test's queues and exchange (best effort).
pub async fn cleanup(ch: &AmqpChannel, names: &Names) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    for q in [names.queue.clone(), format!("{}.dead", names.queue)] {
        let _ = ch.channel.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await;
    }
    for ex in [names.exchange.clone(), format!("{}.dlx", names.queue)] {
        let _ = ch.channel.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default()).await;
    }
}

/// TEMPORARY stand-in for the logger actor until branch `logger` lands: stores each event
/// id once (as the `WriteLog` contract requires), counts every write, and can be "down"
/// (answering `Unavailable`, as the real actor does while its store is unreachable).
#[derive(Clone, Default)]
pub struct RecordingStore {
    pub writes: Arc<Mutex<HashMap<String, u32>>>,
    pub down: Arc<AtomicBool>,
}

impl Actor for RecordingStore {
    type Context = Context<Self>;
}

impl Handler<WriteLog> for RecordingStore {
    type Result = Result<String, ServiceError>;

    fn handle(&mut self, msg: WriteLog, _: &mut Context<Self>) -> Self::Result {
        if self.down.load(Ordering::SeqCst) {
            return Err(ServiceError::unavailable("logger"));
        }
        let id = msg.0.event_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        *self.writes.lock().expect("lock").entry(id.clone()).or_default() += 1;
        Ok(id)
    }
}

impl RecordingStore {
    /// Distinct event ids stored.
    pub fn stored(&self) -> usize {
        self.writes.lock().expect("lock").len()
    }

    pub fn ids(&self) -> Vec<String> {
        self.writes.lock().expect("lock").keys().cloned().collect()
    }
}

/// Retry `probe` until it returns `Some`, or panic after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
