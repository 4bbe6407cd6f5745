//! The ceilings `make bench` measures Troupe against, in the same run (`scripts/bench.py`).
//!
//! - `bench_ceiling http PORT`: a bare actix-web server with as many workers as the broker
//!   (one per core) that parses the broker's `log` body as JSON and answers the envelope
//!   with 202, storing nothing: what the HTTP layer alone allows on this machine.
//! - `bench_ceiling store SECONDS BATCH`: rows/s written straight through the logger's store
//!   (`LogStore::insert_batch`, batches of BATCH, one after the other, same durability:
//!   SQLite WAL `synchronous=FULL`, or MongoDB when `MONGO_URL` is set): what the store
//!   allows with no HTTP and no actor in front. Prints `rows_per_sec N`.
//! - `bench_ceiling bcrypt SECONDS THREADS`: cost-12 bcrypt verifications per second on
//!   THREADS threads: the login ceiling for the cores the hashing pool may use. Prints
//!   `hashes_per_sec N`.

use std::time::{Duration, Instant};

use actix_web::{App, HttpResponse, HttpServer, web};
use troupe_actors::auth::password;
use troupe_actors::logger::store::{LogStore, StoreTarget};
use troupe_core::messages::NewLogEntry;

/// The allocator `troupe` runs with, so that a ceiling is what the machine allows it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

async fn handle(body: web::Bytes) -> HttpResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(v) => {
            let name = v["log"]["name"].as_str().unwrap_or_default().to_owned();
            HttpResponse::Accepted().json(serde_json::json!({
                "error": false,
                "message": format!("Processed payload via RPC: {name}"),
            }))
        }
        Err(e) => {
            HttpResponse::BadRequest().json(serde_json::json!({"error": true, "message": e.to_string()}))
        }
    }
}

async fn http(port: u16) -> anyhow::Result<()> {
    let workers = std::thread::available_parallelism().map_or(1, usize::from);
    HttpServer::new(|| App::new().route("/handle", web::post().to(handle)))
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await?;
    Ok(())
}

fn target() -> anyhow::Result<(StoreTarget, Option<tempfile::TempDir>)> {
    Ok(match std::env::var("MONGO_URL") {
        Ok(url) => (
            StoreTarget::Mongo {
                url: url.into(),
                username: None,
                password: None,
                database: format!("bench{}", std::process::id()),
            },
            None,
        ),
        Err(_) => {
            let dir = tempfile::tempdir()?;
            (StoreTarget::Sqlite(dir.path().join("logs.db")), Some(dir))
        }
    })
}

async fn store(secs: u64, batch: usize) -> anyhow::Result<()> {
    let (target, _dir) = target()?;
    let store = LogStore::connect(&target, Duration::from_secs(5)).await?;
    let entries: Vec<NewLogEntry> =
        (0..batch).map(|_| NewLogEntry::new("bench", "store ceiling")).collect::<Result<_, _>>()?;
    let (start, mut rows) = (Instant::now(), 0usize);
    while start.elapsed() < Duration::from_secs(secs) {
        rows += store.insert_batch(&entries).await?.len();
    }
    println!("rows_per_sec {:.0}", rows as f64 / start.elapsed().as_secs_f64());
    Ok(())
}

fn bcrypt(secs: u64, threads: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            std::thread::spawn(move || {
                let mut n = 0u64;
                while start.elapsed() < Duration::from_secs(secs) {
                    let _ = bcrypt::verify("wrong", password::DUMMY_HASH);
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for w in workers {
        total += w.join().map_err(|_| anyhow::anyhow!("a hashing thread panicked"))?;
    }
    println!("hashes_per_sec {:.1}", total as f64 / start.elapsed().as_secs_f64());
    Ok(())
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize, default: T) -> T {
    args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default)
}

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("http") => http(arg(&args, 2, 18_090)).await,
        Some("store") => store(arg(&args, 2, 5), arg(&args, 3, 32)).await,
        Some("bcrypt") => bcrypt(arg(&args, 2, 5), arg(&args, 3, 1)),
        _ => anyhow::bail!("usage: bench_ceiling http PORT | store SECONDS BATCH | bcrypt SECONDS THREADS"),
    }
}
