//! Drive the logger actor directly, without HTTP: start it on an embedded store in a temporary
//! directory (or MongoDB when `MONGO_URL` is set), write a few entries, then query them back.
//!
//! `cargo run -p troupe-examples --bin logger`

use std::time::Duration;

use anyhow::Context as _;
use troupe_actors::logger::store::StoreTarget;
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::{GetLog, LogFilter, LogLevel, NewLogEntry, QueryLogs, WriteLog};

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let backoff = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_secs(2) };
    let config = match std::env::var("MONGO_URL") {
        Ok(url) => {
            let target = StoreTarget::Mongo {
                url: url.into(),
                username: None,
                password: None,
                database: "logs".into(),
            };
            LoggerConfig::new(target, Duration::from_secs(3), 500, backoff)
        }
        Err(_) => LoggerConfig::embedded(dir.path(), backoff),
    };
    let readiness = Readiness::default();
    let logger = LoggerActor::start(config, &readiness);
    tokio::time::timeout(Duration::from_secs(5), readiness.wait_ready())
        .await
        .map_err(|_| anyhow::anyhow!("the log store did not become ready"))?;

    let mut ids = Vec::new();
    for (name, level) in
        [("event", LogLevel::Info), ("payment", LogLevel::Warning), ("event", LogLevel::Error)]
    {
        let entry = NewLogEntry::new(name, format!("an example {name} entry"))?
            .with_level(level)
            .with_service("example")?;
        ids.push(logger.send(WriteLog(entry)).await?.map_err(anyhow::Error::msg)?);
    }
    println!("stored {} entries: {ids:?}", ids.len());

    let filter = LogFilter { name: Some("event".into()), ..LogFilter::default() };
    let page =
        logger.send(QueryLogs { filter, limit: 10, cursor: None }).await?.map_err(anyhow::Error::msg)?;
    for e in &page.entries {
        println!("{} {:<7} {:<8} {}", e.created_at, e.level.as_str(), e.name, e.data);
    }
    let first = ids.first().context("no id")?;
    let one = logger.send(GetLog(first.clone())).await?.map_err(anyhow::Error::msg)?;
    println!("by id: {} -> {}", one.id, one.data);
    Ok(())
}
