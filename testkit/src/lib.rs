//! Test support shared by Troupe's test suites and benches (never part of a service binary).
//!
//! - [`TcpProxy`]: a loopback proxy to a real server that a test can cut and restore, to
//!   stage a backend outage without touching the server other tests use; it also counts the
//!   connections made through it (in all, open now, most open at once).
//! - [`eventually`]: poll a condition until it holds or a deadline passes.
//! - [`fresh_pg_database`]: an empty PostgreSQL database per test.
//! - [`parts`]: status and JSON body of an HTTP reply.
//! - [`common_settings`]: process settings for tests (loopback, fast backoff and shutdown).
//! - [`pki`]: a test CA issuing server certificates (TLS_CERT_FILE, TLS_CA_FILE tests).
//! - [`self_signed_cert`]: a self-signed certificate for `localhost` (STARTTLS tests, benches).
//! - [`rabbit_cluster`]: the 3-node RabbitMQ cluster of `make services`, for fail-over tests.

pub mod pki;
pub mod rabbit_cluster;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Response;
use serde_json::Value;
use sqlx::{Connection, Executor, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use troupe_core::config::{CommonSettings, MetricsSettings};
use url::Url;

/// Process settings for tests: loopback only, fast reconnects, a short shutdown grace.
pub fn common_settings() -> CommonSettings {
    CommonSettings {
        bind_address: [127, 0, 0, 1].into(),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(500),
        shutdown_timeout: Duration::from_secs(1),
        // The charts' history fills within a test's patience.
        metrics: MetricsSettings {
            metrics_sample_interval: Duration::from_secs(1),
            ..MetricsSettings::default()
        },
        ..CommonSettings::default()
    }
}

/// Where the test PostgreSQL server is (its maintenance database): `TEST_PG_URL`, default
/// `postgres://postgres@127.0.0.1:5432/postgres`.
pub fn pg_admin_url() -> String {
    std::env::var("TEST_PG_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh, empty PostgreSQL database; returns its URL. Panics (loudly) if PostgreSQL is
/// missing.
pub async fn fresh_pg_database() -> String {
    let admin = pg_admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("PostgreSQL is required for this test (TEST_PG_URL={admin}): {e}. Run `make services`.")
    });
    let name = format!("troupe_test_{}", uuid::Uuid::new_v4().simple());
    conn.execute(sqlx::AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#))).await.expect("create database");
    let mut url = Url::parse(&admin).expect("TEST_PG_URL is a URL");
    url.set_path(&name);
    url.to_string()
}

/// Status and JSON body of a reply (`Null` when the body is not JSON).
pub async fn parts(res: Response) -> (u16, Value) {
    let status = res.status().as_u16();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Retry `probe` until it returns `Some`, or panic after `within`, naming `what`.
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

/// A TCP proxy to `upstream` that can be cut (refusing new and killing open connections)
/// and restored.
pub struct TcpProxy {
    /// The loopback port to connect to instead of the upstream.
    pub port: u16,
    cut: Arc<AtomicBool>,
    kill: watch::Sender<u64>,
    counts: Arc<Counts>,
}

/// Connections through a [`TcpProxy`].
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Counts {
    fn opened(&self) {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        let now = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
}

impl TcpProxy {
    /// Start proxying to `upstream`.
    pub async fn start(upstream: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let cut = Arc::new(AtomicBool::new(false));
        let (kill, _) = watch::channel(0u64);
        let counts = Arc::new(Counts::default());
        let (cut2, kill2, counts2) = (cut.clone(), kill.clone(), counts.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if cut2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut killed = kill2.subscribe();
                let counts = counts2.clone();
                counts.opened();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(upstream).await {
                        // Forward small writes at once, as the two ends would see them.
                        let _ = (inbound.set_nodelay(true), outbound.set_nodelay(true));
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                            _ = killed.changed() => {}
                        }
                    }
                    counts.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        TcpProxy { port, cut, kill, counts }
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> usize {
        self.counts.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.counts.open.load(Ordering::SeqCst)
    }

    /// Most connections that were open at once.
    pub fn peak_open(&self) -> usize {
        self.counts.peak.load(Ordering::SeqCst)
    }

    /// Refuse new connections and drop the open ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        self.kill.send_modify(|n| *n += 1);
    }

    /// Accept connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// A self-signed certificate for `localhost` and its key, written as PEM files
/// `cert.pem` and `key.pem` in `dir`; returns their paths.
pub fn self_signed_cert(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    use openssl::asn1::Asn1Time;
    use openssl::bn::BigNum;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::extension::SubjectAlternativeName;
    use openssl::x509::{X509, X509NameBuilder};

    let key = PKey::from_rsa(Rsa::generate(2048).expect("rsa")).expect("key");
    let mut name = X509NameBuilder::new().expect("name");
    name.append_entry_by_text("CN", "localhost").expect("cn");
    let name = name.build();
    let mut b = X509::builder().expect("builder");
    b.set_version(2).expect("v3");
    b.set_serial_number(&BigNum::from_u32(1).and_then(|n| n.to_asn1_integer()).expect("serial"))
        .expect("serial");
    b.set_subject_name(&name).expect("subject");
    b.set_issuer_name(&name).expect("issuer");
    b.set_pubkey(&key).expect("pubkey");
    b.set_not_before(&Asn1Time::days_from_now(0).expect("t")).expect("nb");
    b.set_not_after(&Asn1Time::days_from_now(2).expect("t")).expect("na");
    let san =
        SubjectAlternativeName::new().dns("localhost").build(&b.x509v3_context(None, None)).expect("san");
    b.append_extension(san).expect("ext");
    b.sign(&key, MessageDigest::sha256()).expect("sign");
    let (cert, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, b.build().to_pem().expect("pem")).expect("write cert");
    std::fs::write(&key_path, key.private_key_to_pem_pkcs8().expect("pem")).expect("write key");
    (cert, key_path)
}

/// A loopback port that was free a moment ago, never the same twice in this test run (the
/// clusters of concurrent tests must not be handed each other's ports), taken below Linux's
/// ephemeral range (32768-60999) so no outgoing connection grabs it before its process binds.
pub fn free_port() -> u16 {
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    // Start where another run of this test (another process) is unlikely to be.
    let start = 20_000 + (std::process::id() % 1_000) as u16 * 10;
    let _ = NEXT.compare_exchange(0, start, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = NEXT.fetch_add(1, Ordering::SeqCst);
        assert!(port < 32_768, "no free loopback port left below the ephemeral range");
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
