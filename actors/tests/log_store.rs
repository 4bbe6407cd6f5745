//! One log-store test suite, run against both stores: the embedded SQLite file and a real
//! MongoDB-wire server (SecantusDB, started by `scripts/services.sh`; `TEST_MONGO_URL`,
//! default `mongodb://127.0.0.1:27017`). Each Mongo test uses its own database.
//! Also the logger actor's batching over each store.

// Tests read top to bottom as one story; the line limit is for the product code.
#![allow(clippy::too_many_lines)]

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use tempfile::TempDir;
use troupe_actors::logger::store::{LogStore, StoreTarget};
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::RequestId;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::{GetLog, LogCursor, LogFilter, LogLevel, NewLogEntry, QueryLogs, WriteLog};

const TIMEOUT: Duration = Duration::from_secs(5);

/// A store under test and whatever must outlive it.
struct Subject {
    target: StoreTarget,
    _dir: Option<TempDir>,
}

fn sqlite() -> Subject {
    let dir = tempfile::tempdir().expect("temp dir");
    Subject { target: StoreTarget::Sqlite(dir.path().join("logs.db")), _dir: Some(dir) }
}

fn mongo() -> Subject {
    let url = std::env::var("TEST_MONGO_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    let database = format!("troupe_test_{}", uuid::Uuid::new_v4().simple());
    Subject {
        target: StoreTarget::Mongo { url: url.into(), username: None, password: None, database },
        _dir: None,
    }
}

async fn open(s: &Subject) -> LogStore {
    LogStore::connect(&s.target, TIMEOUT).await.unwrap_or_else(|e| {
        panic!("the store must be reachable for this test ({e:#}); run `make services` for MongoDB")
    })
}

fn entry(name: &str, data: &str) -> NewLogEntry {
    NewLogEntry::new(name, data).and_then(|e| e.with_service("test")).expect("a valid entry")
}

fn from_request(id: &str, e: NewLogEntry) -> NewLogEntry {
    e.with_request_id(Some(RequestId::parse(id).expect("a request id")))
}

fn from_event(id: &str, e: NewLogEntry) -> NewLogEntry {
    e.with_event_id(Some(id.into())).expect("a valid event id")
}

async fn all(store: &LogStore, filter: LogFilter) -> Vec<troupe_core::messages::LogEntry> {
    store.query(&filter, 500, None).await.expect("query").entries
}

async fn stored_entries_read_back_newest_first(s: Subject) {
    let store = open(&s).await;
    let first = store.insert_batch(&[entry("event", "one")]).await.expect("insert");
    let batch = [entry("event", "two"), from_request("req-1", entry("auth", "three"))];
    let ids = store.insert_batch(&batch).await.expect("insert many");
    assert_eq!(ids.len(), 2);
    let every: HashSet<_> = first.iter().chain(&ids).collect();
    assert_eq!(every.len(), 3, "distinct ids");

    let got = store.get(&ids[1]).await.expect("get").expect("found");
    assert_eq!((got.name.as_str(), got.data.as_str()), ("auth", "three"));
    assert_eq!(got.request_id.as_deref(), Some("req-1"));
    assert_eq!((got.level, got.service.as_str()), (LogLevel::Info, "test"));
    assert_eq!(got.created_at, got.updated_at);

    let listed = all(&store, LogFilter::default()).await;
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[2].id, first[0], "oldest last");
    assert!(listed.windows(2).all(|w| (w[0].created_at, &w[0].id) > (w[1].created_at, &w[1].id)));
}

async fn an_event_id_is_stored_at_most_once(s: Subject) {
    let store = open(&s).await;
    let ev = |data: &str| from_event("evt-42", entry("event", data));
    let first = store.insert_batch(&[ev("a")]).await.expect("insert");
    let again = store.insert_batch(&[ev("b"), entry("other", "x"), ev("c")]).await.expect("insert again");
    assert_eq!(again[0], first[0]);
    assert_eq!(again[2], first[0]);
    assert_ne!(again[1], first[0]);
    // Two new events repeated within one batch.
    let fresh = from_event("evt-43", entry("event", "d"));
    let twice = store.insert_batch(&[fresh.clone(), fresh]).await.expect("insert twice");
    assert_eq!(twice[0], twice[1]);
    let events = all(&store, LogFilter { name: Some("event".into()), ..LogFilter::default() }).await;
    assert_eq!(events.len(), 2, "{events:?}");
    // Many entries without an event id never collide with each other.
    store.insert_batch(&[entry("plain", "1"), entry("plain", "2")]).await.expect("no event ids");
}

async fn batches_of_any_size_store_exactly_their_entries(s: Subject) {
    let store = open(&s).await;
    let mut stored = 0;
    // Sizes between the row counts statements are built for (5 -> 6, 17 -> 24, 97 -> 128),
    // each batch's first entry an event the first batch stored.
    for (size, batch) in [5_usize, 17, 97, 1].into_iter().enumerate() {
        let entries: Vec<_> = (0..batch)
            .map(|n| match n {
                0 => from_event("evt-sized", entry("sized", &format!("{size}-{n}"))),
                _ => entry("sized", &format!("{size}-{n}")),
            })
            .collect();
        let ids = store.insert_batch(&entries).await.expect("insert");
        assert_eq!(ids.len(), batch);
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), batch, "distinct ids");
        stored += batch - usize::from(size > 0);
        let listed = all(&store, LogFilter { name: Some("sized".into()), ..LogFilter::default() }).await;
        assert_eq!(listed.len(), stored, "after the batch of {batch}");
    }
    let listed = all(&store, LogFilter { name: Some("sized".into()), ..LogFilter::default() }).await;
    let distinct: HashSet<_> = listed.iter().map(|e| e.data.as_str()).collect();
    assert_eq!(distinct.len(), stored, "no entry stored twice, none blank");
}

async fn filters_select_by_name_level_service_request_and_time(s: Subject) {
    let store = open(&s).await;
    let before = Utc::now() - chrono::Duration::seconds(1);
    store
        .insert_batch(&[
            entry("a", "1"),
            entry("b", "2").with_level(LogLevel::Error),
            from_request("r-9", entry("a", "3").with_service("broker").expect("valid")),
        ])
        .await
        .expect("insert");
    let count = |f: LogFilter| {
        let store = store.clone();
        async move { all(&store, f).await.len() }
    };
    let d = LogFilter::default;
    assert_eq!(count(LogFilter { name: Some("a".into()), ..d() }).await, 2);
    assert_eq!(count(LogFilter { level: Some(LogLevel::Error), ..d() }).await, 1);
    assert_eq!(count(LogFilter { service: Some("broker".into()), ..d() }).await, 1);
    assert_eq!(count(LogFilter { request_id: Some("r-9".into()), ..d() }).await, 1);
    assert_eq!(count(LogFilter { name: Some("nope".into()), ..d() }).await, 0);
    assert_eq!(count(LogFilter { since: Some(before), ..d() }).await, 3);
    assert_eq!(count(LogFilter { until: Some(before), ..d() }).await, 0);
    let later = Utc::now() + chrono::Duration::seconds(5);
    assert_eq!(count(LogFilter { since: Some(later), ..d() }).await, 0);
    assert_eq!(count(LogFilter { since: Some(before), until: Some(later), ..d() }).await, 3);
}

async fn pages_follow_the_cursor_without_gaps_or_repeats(s: Subject) {
    let store = open(&s).await;
    let batch: Vec<_> = (0..7).map(|n| entry("paged", &n.to_string())).collect();
    store.insert_batch(&batch[..3]).await.expect("insert");
    store.insert_batch(&batch[3..]).await.expect("insert");
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut sizes = Vec::new();
    loop {
        let page = store.query(&LogFilter::default(), 3, cursor.as_ref()).await.expect("page");
        sizes.push(page.entries.len());
        seen.extend(page.entries.into_iter().map(|e| e.id));
        match page.next_cursor {
            Some(c) => cursor = Some(LogCursor::decode(&c).expect("our own cursor")),
            None => break,
        }
    }
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    let everything: Vec<_> = all(&store, LogFilter::default()).await.into_iter().map(|e| e.id).collect();
    assert_eq!(seen, everything, "pages concatenate to the full listing");
}

async fn unknown_or_malformed_ids_are_not_found(s: Subject) {
    let store = open(&s).await;
    assert!(store.get("65a1b2c3d4e5f60718293a4b").await.expect("get").is_none());
    assert!(store.get("not-an-id").await.expect("get").is_none());
    assert!(store.get("").await.expect("get").is_none());
}

async fn entries_survive_reopening_the_store(s: Subject) {
    let ids = open(&s).await.insert_batch(&[entry("durable", "x")]).await.expect("insert");
    let reopened = open(&s).await;
    assert_eq!(reopened.get(&ids[0]).await.expect("get").map(|e| e.name), Some("durable".into()));
}

async fn the_actor_batches_concurrent_writes_and_answers_each_with_its_id(s: Subject) {
    let policy = BackoffPolicy { min: Duration::from_millis(50), max: Duration::from_millis(500) };
    let actor =
        LoggerActor::start(LoggerConfig::new(s.target.clone(), TIMEOUT, 50, policy), &Readiness::default());
    let query = QueryLogs { filter: LogFilter::default(), limit: 1, cursor: None };
    for _ in 0..200 {
        if actor.send(query.clone()).await.expect("mailbox").is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let writes = (0..300).map(|n| actor.send(WriteLog(entry("batched", &n.to_string()))));
    let ids: Vec<String> = futures_util::future::join_all(writes)
        .await
        .into_iter()
        .map(|r| r.expect("mailbox").expect("stored"))
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 300, "one id per entry");
    for (n, id) in ids.iter().enumerate().step_by(37) {
        let got = actor.send(GetLog(id.clone())).await.expect("mailbox").expect("found");
        assert_eq!(got.data, n.to_string(), "each caller got its own entry's id");
    }
    let missing = actor.send(GetLog("65a1b2c3d4e5f60718293a4b".into())).await.expect("mailbox");
    assert!(matches!(missing, Err(troupe_core::ServiceError::NotFound(_))));
}

macro_rules! suite {
    // Every store runs every test: `suite!([a, b]: { t1, t2 })` makes modules `a` and `b`.
    ([$($store:ident),*]: $tests:tt) => {
        $( suite!(@one $store: $tests); )*
    };
    (@one $store:ident: { $($test:ident),* $(,)? }) => {
        mod $store {
            $(
                #[actix_rt::test]
                async fn $test() {
                    super::$test(super::$store()).await;
                }
            )*
        }
    };
}

suite!([sqlite, mongo]: {
    stored_entries_read_back_newest_first,
    an_event_id_is_stored_at_most_once,
    batches_of_any_size_store_exactly_their_entries,
    filters_select_by_name_level_service_request_and_time,
    pages_follow_the_cursor_without_gaps_or_repeats,
    unknown_or_malformed_ids_are_not_found,
    entries_survive_reopening_the_store,
    the_actor_batches_concurrent_writes_and_answers_each_with_its_id,
});
