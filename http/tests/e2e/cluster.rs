//! A split-mode cluster for tests: one `troupe serve <service>` process per service, each on
//! a free loopback port, wired through environment variables exactly as compose wires the
//! containers (`AUTH_URL=http://authentication-service:8082` there, `http://127.0.0.1:<port>`
//! here). Processes run with a cleared environment, so nothing leaks in from the shell.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Client, Response};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::Value;
use tempfile::TempDir;
use url::Url;

pub use troupe_testkit::free_port;

pub use troupe_testkit::pki::{Leaf, TestCa, TlsFiles};
pub use troupe_testkit::{eventually, fresh_pg_database, parts};

/// A signing key good enough for tests (never used outside them).
const TEST_SECRET: &str = "e2e-secret-e2e-secret-e2e-secret-e2e!";

/// One service of the platform, as `troupe serve <name>` runs it.
pub struct Service {
    /// The argument of `troupe serve`.
    pub name: &'static str,
    /// The variable that sets its HTTP port (health, and its API if it has one).
    pub port_var: &'static str,
    /// The variable other services find its HTTP address by, if any.
    pub url_var: Option<&'static str>,
    /// Further ports it listens on (gRPC, JSON-RPC), each set by its variable.
    pub extra_ports: &'static [&'static str],
}

/// Every service in the split-mode test, in start order. Add a row when a service lands.
pub const SERVICES: &[Service] = &[
    Service { name: "auth", port_var: "AUTH_PORT", url_var: Some("AUTH_URL"), extra_ports: &[] },
    Service {
        name: "logger",
        port_var: "LOGGER_PORT",
        url_var: Some("LOGGER_URL"),
        extra_ports: &["LOGGER_GRPC_PORT", "LOGGER_RPC_PORT"],
    },
    Service { name: "mailer", port_var: "MAILER_PORT", url_var: Some("MAILER_URL"), extra_ports: &[] },
    Service { name: "listener", port_var: "LISTENER_PORT", url_var: Some("LISTENER_URL"), extra_ports: &[] },
    Service { name: "broker", port_var: "BROKER_PORT", url_var: Some("BROKER_URL"), extra_ports: &[] },
    Service { name: "frontend", port_var: "FRONTEND_PORT", url_var: None, extra_ports: &[] },
];

/// The running processes of one test, and what they were started with.
pub struct Cluster {
    /// The environment every process gets (compose's `.env`).
    pub env: BTreeMap<String, String>,
    /// The HTTP port of each service.
    pub ports: BTreeMap<&'static str, u16>,
    /// The users database (a fresh one per cluster).
    pub dsn: String,
    /// A client with a generous overall timeout (a hang fails, it does not stall the run).
    pub http: Client,
    /// The certificates of a cluster started with [`Cluster::start_tls`].
    pub tls: Option<ClusterTls>,
    procs: BTreeMap<&'static str, Child>,
    logs: TempDir,
}

/// The test CA of a TLS cluster and the files every process is pointed at.
pub struct ClusterTls {
    /// The CA that signed every service's certificate.
    pub ca: TestCa,
    /// TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE.
    pub files: TlsFiles,
    /// The certificate every service presents at start.
    pub leaf: Leaf,
    /// The TLS front of the real RabbitMQ that RABBIT_URL (`amqps://`) names.
    pub amqps: AmqpsFront,
    _dir: TempDir,
}

/// A TLS front for the real RabbitMQ, as a stunnel or a load balancer in front of it would
/// be (the RabbitMQ of `make services` has no TLS listener): presents the test leaf and
/// forwards each connection's bytes to RabbitMQ's plain port; counts the handshakes.
pub struct AmqpsFront {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// TLS handshakes completed so far.
    pub sessions: Arc<AtomicUsize>,
}

impl AmqpsFront {
    async fn start(leaf: &Leaf, upstream: SocketAddr) -> Self {
        let certs = CertificateDer::pem_slice_iter(leaf.cert_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("the leaf's PEM");
        let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("the leaf's key");
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .expect("TLS versions")
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .expect("the leaf and its key");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the AMQPS front");
        let port = listener.local_addr().expect("its address").port();
        let sessions = Arc::new(AtomicUsize::new(0));
        let counted = sessions.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, counted) = (acceptor.clone(), counted.clone());
                tokio::spawn(async move {
                    let handshake = tokio::time::timeout(Duration::from_secs(5), acceptor.accept(tcp));
                    let Ok(Ok(mut tls)) = handshake.await else { return };
                    counted.fetch_add(1, Ordering::SeqCst);
                    let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        Self { port, sessions }
    }
}

impl Cluster {
    /// Start every service in [`SERVICES`] and wait until each reports ready.
    pub async fn start() -> Cluster {
        Self::start_with(None, &[]).await
    }

    /// [`Cluster::start`] with every hop on TLS: each process presents a certificate of a test
    /// CA on all its listeners (HTTP, gRPC, JSON-RPC) and trusts that CA as TLS_CA_FILE;
    /// every URL is `https://`, and the users database is reached with `sslmode=require`.
    pub async fn start_tls() -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let ca = TestCa::new("Troupe e2e CA");
        let (leaf, files) = ca.write(dir.path(), "troupe e2e services");
        let rabbit = Url::parse(&external_rabbit()).expect("the RabbitMQ URL");
        let plain = (rabbit.host_str().unwrap_or("127.0.0.1"), rabbit.port().unwrap_or(5672));
        let upstream = std::net::ToSocketAddrs::to_socket_addrs(&plain).expect("RabbitMQ's address").next();
        let amqps = AmqpsFront::start(&leaf, upstream.expect("RabbitMQ's address")).await;
        Self::start_with(Some(ClusterTls { ca, files, leaf, amqps, _dir: dir }), &[]).await
    }

    /// [`Cluster::start`] on the 3-node RabbitMQ cluster of `make services` (every node in
    /// `RABBIT_URL`), the listener's queue a quorum queue.
    pub async fn start_on_rabbit_cluster() -> Cluster {
        troupe_testkit::rabbit_cluster::require();
        let url = troupe_testkit::rabbit_cluster::url();
        Self::start_with(None, &[("RABBIT_URL", url.as_str()), ("LISTENER_QUEUE_TYPE", "quorum")]).await
    }

    /// Start every service, with the environment's `overrides` applied last.
    async fn start_with(tls: Option<ClusterTls>, overrides: &[(&str, &str)]) -> Cluster {
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut dsn = fresh_pg_database().await;
        if tls.is_some() {
            dsn.push_str(if dsn.contains('?') { "&sslmode=require" } else { "?sslmode=require" });
        }
        let mut env = BTreeMap::new();
        let mut ports = BTreeMap::new();
        for (k, v) in [
            ("BIND_ADDRESS", "127.0.0.1"),
            ("RUST_LOG", "info"),
            ("LOG_FORMAT", "json"),
            ("SHUTDOWN_TIMEOUT", "2s"),
            ("BACKOFF_MIN", "50ms"),
            ("BACKOFF_MAX", "500ms"),
            ("REQUEST_TIMEOUT", "3s"),
            ("DB_TIMEOUT", "1s"),
            ("JWT_SECRET", TEST_SECRET),
        ] {
            env.insert(k.to_owned(), v.to_owned());
        }
        env.insert("DSN".into(), dsn.clone());
        // The logger and the listener store into a fresh MongoDB database; the broker publishes
        // to, and the listener consumes from, a fresh exchange and queue on the real RabbitMQ.
        let run = uuid::Uuid::new_v4().simple().to_string();
        env.insert("MONGO_URL".into(), external_mongo());
        env.insert("MONGO_DATABASE".into(), format!("troupe_e2e_{run}"));
        let mut rabbit = Url::parse(&external_rabbit()).expect("the RabbitMQ URL");
        if let Some(tls) = &tls {
            // Through the TLS front: `amqps://` to 127.0.0.1, trusting TLS_CA_FILE.
            rabbit = Url::parse(&rabbit.as_str().replacen("amqp://", "amqps://", 1)).expect("amqps URL");
            rabbit.set_host(Some("127.0.0.1")).expect("a host");
            rabbit.set_port(Some(tls.amqps.port)).expect("a port");
        }
        env.insert("RABBIT_URL".into(), rabbit.to_string());
        env.insert("EVENTS_EXCHANGE".into(), format!("troupe.e2e.{run}"));
        env.insert("LISTENER_QUEUE".into(), format!("troupe.e2e.{run}.logs"));
        let smtp = external_smtp();
        env.insert("MAIL_HOST".into(), smtp.ip().to_string());
        env.insert("MAIL_PORT".into(), smtp.port().to_string());
        env.insert("MAIL_ENCRYPTION".into(), "none".into());
        env.insert("FROM_NAME".into(), "Troupe E2E".into());
        for service in SERVICES {
            let port = free_port();
            ports.insert(service.name, port);
            env.insert(service.port_var.into(), port.to_string());
            if let Some(var) = service.url_var {
                env.insert(var.into(), format!("{scheme}://127.0.0.1:{port}"));
            }
            for var in service.extra_ports {
                env.insert((*var).into(), free_port().to_string());
            }
        }
        let grpc = env["LOGGER_GRPC_PORT"].clone();
        env.insert("LOGGER_GRPC_URL".into(), format!("{scheme}://127.0.0.1:{grpc}"));
        if let Some(port) = ports.get("frontend") {
            env.insert("CORS_ALLOWED_ORIGINS".into(), format!("{scheme}://127.0.0.1:{port}"));
        }
        let mut http = Client::builder().timeout(Duration::from_secs(20));
        if let Some(tls) = &tls {
            for (var, path) in [
                ("TLS_CA_FILE", &tls.files.ca),
                ("TLS_CERT_FILE", &tls.files.cert),
                ("TLS_KEY_FILE", &tls.files.key),
            ] {
                env.insert(var.into(), path.display().to_string());
            }
            let ca = reqwest::Certificate::from_pem(tls.ca.pem().as_bytes()).expect("the test CA");
            http = http.add_root_certificate(ca);
        }
        for (k, v) in overrides {
            env.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut cluster = Cluster {
            env,
            ports,
            dsn,
            http: http.build().expect("http client"),
            tls,
            procs: BTreeMap::new(),
            logs: tempfile::tempdir().expect("temp dir for process logs"),
        };
        for service in SERVICES {
            cluster.spawn(service.name);
        }
        for service in SERVICES {
            cluster.wait_ready(service.name).await;
        }
        cluster
    }

    /// `http://127.0.0.1:<port>` of a service (`https://` in a TLS cluster).
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.ports[name])
    }

    /// The OS process id of a running service.
    pub fn pid(&self, name: &str) -> u32 {
        self.procs[name].id()
    }

    /// Start (or start again) `troupe serve <name>` with the cluster's environment.
    pub fn spawn(&mut self, name: &'static str) {
        let child = troupe_serve(name, &self.env, &self.log_path(name));
        self.procs.insert(name, child);
    }

    /// SIGKILL a service: no shutdown, no draining, as when a node dies.
    pub fn kill(&mut self, name: &str) {
        let mut child = self.procs.remove(name).unwrap_or_else(|| panic!("{name} is not running"));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap killed process");
    }

    /// SIGTERM a service and wait for it to exit; returns its exit status.
    pub async fn terminate(&mut self, name: &str) -> ExitStatus {
        let mut child = self.procs.remove(name).unwrap_or_else(|| panic!("{name} is not running"));
        let status =
            Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("run kill(1)");
        assert!(status.success(), "kill -TERM {name} failed");
        eventually(Duration::from_secs(15), &format!("{name} exits after SIGTERM"), || {
            let exit = child.try_wait().expect("poll child");
            async move { exit }
        })
        .await
    }

    /// True while the process of `name` is alive.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.procs.get_mut(name).is_some_and(|c| c.try_wait().expect("poll child").is_none())
    }

    /// Wait until a service answers `/readyz` with 200, as a load balancer would. Fails at
    /// once, with the process's log, if it exits instead.
    pub async fn wait_ready(&mut self, name: &'static str) {
        let url = format!("{}/readyz", self.url(name));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(exit) = self.procs.get_mut(name).and_then(|c| c.try_wait().expect("poll child")) {
                panic!("`troupe serve {name}` exited ({exit}) before it was ready:\n{}", self.log(name));
            }
            if let Ok(res) = self.http.get(&url).send().await
                && res.status() == 200
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "`troupe serve {name}` not ready at {url}:\n{}",
                self.log(name)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What a service printed so far (for failure messages).
    pub fn log(&self, name: &str) -> String {
        let text = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }

    /// The entries named `name`, read back through the broker's `GET /logs` (newest first).
    pub async fn logs_named(&self, name: &str) -> Vec<Value> {
        let mut url = Url::parse(&format!("{}/logs", self.url("broker"))).expect("broker URL");
        url.query_pairs_mut().append_pair("name", name);
        let res =
            self.http.get(url).bearer_auth(admin_token()).send().await.expect("the broker answers GET /logs");
        let (status, body) = parts(res).await;
        assert_eq!(status, 200, "GET /logs?name={name}: {body}");
        body["data"]["entries"].as_array().cloned().unwrap_or_else(|| panic!("no entries in {body}"))
    }

    /// Poll `GET /logs?name=` through the broker until an entry named `name` is stored.
    pub async fn stored(&self, name: &str) -> Value {
        eventually(
            Duration::from_secs(20),
            &format!("a log entry named {name:?} readable via the broker"),
            || async { self.logs_named(name).await.into_iter().next() },
        )
        .await
    }

    /// `POST /handle` with `body` is 503 `<service> unavailable` in the envelope.
    pub async fn assert_unavailable(&self, body: &Value, service: &str) {
        let (status, reply) = parts(self.handle(body).await).await;
        assert_eq!(
            (status, &reply["error"], reply["message"].as_str()),
            (503, &Value::Bool(true), Some(format!("{service} unavailable").as_str())),
            "{reply}"
        );
    }

    /// Start `name` again, wait until it is ready, and until the broker takes `body` (202)
    /// through it again.
    pub async fn bring_back(&mut self, name: &'static str, body: &Value) {
        self.spawn(name);
        self.wait_ready(name).await;
        eventually(Duration::from_secs(20), &format!("the broker serving through {name} again"), || async {
            (self.handle(body).await.status() == 202).then_some(())
        })
        .await;
    }

    /// `POST /handle` on the broker with a JSON body, as the seeded admin ([`admin_token`]:
    /// mail needs a token here, MAIL_HOST being set).
    pub async fn handle(&self, body: &Value) -> Response {
        self.http
            .post(format!("{}/handle", self.url("broker")))
            .bearer_auth(admin_token())
            .json(body)
            .send()
            .await
            .expect("the broker answers")
    }

    /// `POST /handle` on the broker with a JSON body and no bearer token.
    pub async fn handle_anonymous(&self, body: &Value) -> Response {
        self.http
            .post(format!("{}/handle", self.url("broker")))
            .json(body)
            .send()
            .await
            .expect("the broker answers")
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.logs.path().join(format!("{name}.log"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.procs.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Start `troupe serve <name>` with exactly `env` (nothing inherited), its output appended
/// to `log`.
pub fn troupe_serve(name: &str, env: &BTreeMap<String, String>, log: &Path) -> Child {
    troupe(&["serve", name], env, log)
}

/// Start `troupe <args>` with exactly `env` (nothing inherited), its output appended to `log`.
pub fn troupe(args: &[&str], env: &BTreeMap<String, String>, log: &Path) -> Child {
    let out = OpenOptions::new().create(true).append(true).open(log).expect("open process log");
    let err = out.try_clone().expect("clone log handle");
    Command::new(env!("CARGO_BIN_EXE_troupe"))
        .args(args)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `troupe {}`: {e}", args.join(" ")))
}

/// Processes started outside a [`Cluster`]; killed when dropped.
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The environment of a lone auth process on `port` with the users database `dsn`.
pub fn auth_env(port: u16, dsn: &str) -> BTreeMap<String, String> {
    [
        ("BIND_ADDRESS", "127.0.0.1"),
        ("RUST_LOG", "info"),
        ("BACKOFF_MIN", "50ms"),
        ("BACKOFF_MAX", "500ms"),
        ("JWT_SECRET", TEST_SECRET),
        ("DSN", dsn),
        ("AUTH_PORT", &port.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// The external SMTP server the mailer process sends to (aiosmtpd from `make services`,
/// `TEST_SMTP_ADDR`). Fails loudly if it is not there.
fn external_smtp() -> SocketAddr {
    let addr = std::env::var("TEST_SMTP_ADDR").unwrap_or_else(|_| "127.0.0.1:2525".into());
    let addr: SocketAddr = addr.parse().expect("TEST_SMTP_ADDR is host:port");
    if TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!("an SMTP server is required for this test (TEST_SMTP_ADDR={addr}). Run `make services`.");
    }
    addr
}

/// `host:port` of a URL with a default port, for a reachability check.
fn reachable(url: &str, default_port: u16) -> bool {
    let url = Url::parse(url).unwrap_or_else(|e| panic!("{url}: not a URL: {e}"));
    let host = url.host_str().unwrap_or("127.0.0.1").to_owned();
    let port = url.port().unwrap_or(default_port);
    let Ok(mut addrs) = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port)) else {
        return false;
    };
    addrs.any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
}

/// The MongoDB-wire server the logger and the listener store into (SecantusDB from
/// `make services`, `TEST_MONGO_URL`). Fails loudly if it is not there.
fn external_mongo() -> String {
    let url = std::env::var("TEST_MONGO_URL").unwrap_or_else(|_| "mongodb://127.0.0.1:27017".into());
    assert!(
        reachable(&url, 27017),
        "a MongoDB-wire server is required for this test (TEST_MONGO_URL={url}). Run `make services`."
    );
    url
}

/// The RabbitMQ the broker publishes to and the listener consumes from (`make services`,
/// `TEST_RABBIT_URL`). Fails loudly if it is not there.
fn external_rabbit() -> String {
    let url =
        std::env::var("TEST_RABBIT_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    assert!(
        reachable(&url, 5672),
        "RabbitMQ is required for this test (TEST_RABBIT_URL={url}). Run `make services`."
    );
    url
}

/// The Maildir that SMTP server writes every received mail into (`TEST_SMTP_MAILDIR`).
pub fn maildir() -> PathBuf {
    PathBuf::from(
        std::env::var("TEST_SMTP_MAILDIR").unwrap_or_else(|_| "/tmp/troupe-aiosmtpd/Maildir".into()),
    )
}

/// The raw mail with this subject in the Maildir, once it has arrived.
pub fn delivered(maildir: &Path, subject: &str) -> Option<Vec<u8>> {
    let entries = std::fs::read_dir(maildir.join("new")).ok()?;
    entries.filter_map(Result::ok).find_map(|e| {
        let raw = std::fs::read(e.path()).ok()?;
        let parsed = mail_parser::MessageParser::default().parse_headers(&raw)?;
        (parsed.subject() == Some(subject)).then_some(raw)
    })
}

/// A bearer token of the seeded admin (user 1 of the fresh database), signed with the
/// cluster's JWT_SECRET as auth signs them: what a signed-in console sends on reads and mail.
pub fn admin_token() -> String {
    let keys =
        troupe_actors::auth::token::TokenKeys::from_secret(TEST_SECRET.as_bytes(), Duration::from_secs(600))
            .expect("a long enough key");
    let now = chrono::Utc::now();
    let admin = troupe_core::domain::User {
        id: 1,
        email: "admin@example.com".into(),
        first_name: "Admin".into(),
        last_name: "User".into(),
        active: 1,
        admin: true,
        created_at: now,
        updated_at: now,
    };
    keys.issue(&admin).expect("signs").access_token
}
