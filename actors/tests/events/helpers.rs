//! Fixtures of the event pipeline tests: RabbitMQ names unique per test, actor start-up,
//! forced connection closes, queue inspection, and `eventually`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, Recipient};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use secrecy::SecretString;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{AmqpChannel, PublisherActor, PublisherConfig, open};
use troupe_actors::events::{ListenerStats, Sink};
use troupe_actors::logger::store::StoreTarget;
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::{LogCursor, LogFilter, MAX_LOG_PAGE, QueryLogs, WriteLog};

pub use troupe_testkit::{TcpProxy, eventually};

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
        queue_type: troupe_core::config::QueueType::Classic,
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

/// The real logger actor on a real store: the embedded SQLite store in a temporary
/// directory, or MongoDB (SecantusDB, `TEST_MONGO_URL`) reached through a [`TcpProxy`]
/// that can cut it away.
pub struct Store {
    pub actor: Addr<LoggerActor>,
    pub proxy: Option<TcpProxy>,
    _dir: Option<tempfile::TempDir>,
}

impl Store {
    pub fn embedded() -> Store {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = LoggerConfig::embedded(dir.path(), backoff());
        let actor = LoggerActor::start(config, &Readiness::default());
        Store { actor, proxy: None, _dir: Some(dir) }
    }

    /// MongoDB through a cuttable proxy, a fresh database per test.
    pub async fn mongo_behind_proxy() -> Store {
        let url = std::env::var("TEST_MONGO_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
        let upstream: SocketAddr = url
            .trim_start_matches("mongodb://")
            .split('/')
            .next()
            .and_then(|a| a.parse().ok())
            .expect("TEST_MONGO_URL is mongodb://host:port");
        if tokio::net::TcpStream::connect(upstream).await.is_err() {
            panic!("a MongoDB-wire server is required for this test at {upstream}; run `make services`");
        }
        let proxy = TcpProxy::start(upstream).await;
        let database = format!("troupe_events_{}", uuid::Uuid::new_v4().simple());
        let target = StoreTarget::Mongo {
            url: format!("mongodb://127.0.0.1:{}/?directConnection=true", proxy.port).into(),
            username: None,
            password: None,
            database,
        };
        let config = LoggerConfig::new(target, Duration::from_secs(1), 500, backoff());
        let actor = LoggerActor::start(config, &Readiness::default());
        Store { actor, proxy: Some(proxy), _dir: None }
    }

    pub fn recipient(&self) -> Recipient<WriteLog> {
        self.actor.clone().recipient()
    }

    /// The event id of every stored entry (one per entry, so duplicates would show).
    pub async fn event_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor = None;
        loop {
            let page = self
                .actor
                .send(QueryLogs { filter: LogFilter::default(), limit: MAX_LOG_PAGE, cursor: cursor.take() })
                .await
                .expect("logger answers")
                .expect("query succeeds");
            ids.extend(page.entries.into_iter().map(|e| e.event_id.unwrap_or_default()));
            match page.next_cursor {
                Some(next) => cursor = Some(LogCursor::decode(&next).expect("cursor")),
                None => return ids,
            }
        }
    }
}

/// Log to the test's output, filtered by RUST_LOG (once per test binary).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Wait until `backend` is reported misconfigured in `readiness`; the reason given.
pub async fn misconfiguration(readiness: &Readiness, backend: &str) -> String {
    let status =
        eventually(Duration::from_secs(15), &format!("{backend} to report a misconfiguration"), || {
            let status = readiness.snapshot().get(backend).cloned();
            async move { status.filter(|b| b.state == troupe_core::health::BackendState::Misconfigured) }
        })
        .await;
    status.error.unwrap_or_default()
}
