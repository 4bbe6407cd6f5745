//! Spawning apps for tests: all-in-one on SQLite, split on a fresh PostgreSQL database,
//! and a TCP proxy that can cut the database away.

use std::path::Path;
use std::time::Duration;

use reqwest::{Client, Response};
use serde_json::{Value, json};
use tempfile::TempDir;
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, EventSettings, FrontendSettings, ListenerSettings,
    LoggerSettings, LoggerUpstream, MailAuth, MailerSettings, ReadAuth, UpstreamSettings,
};
use troupe_http::cli::UpArgs;
use troupe_http::platform;
use url::Url;

pub use troupe_testkit::{TcpProxy, eventually, fresh_pg_database, parts};

/// A key good enough for tests (never used outside them).
pub const TEST_SECRET: &str = "test-secret-test-secret-test-secret!";

pub use troupe_testkit::common_settings as common;

pub fn broker_settings() -> BrokerSettings {
    BrokerSettings {
        broker_port: 0,
        cors_allowed_origins: vec!["http://console.test".into()],
        request_timeout: Duration::from_secs(3),
        read_auth: ReadAuth::Auto,
    }
}

/// `troupe up` settings for tests: every port 0, every store embedded under `dir`, the
/// built-in mail catcher, the in-process event bus.
pub fn up_args(dir: &Path) -> UpArgs {
    let mut auth = AuthSettings::embedded(dir, TEST_SECRET.into());
    auth.db_timeout = Duration::from_secs(1);
    UpArgs {
        common: common(),
        broker: broker_settings(),
        auth,
        logger: LoggerSettings::embedded(dir),
        frontend: FrontendSettings {
            frontend_port: 0,
            broker_url: Url::parse("http://b.test").expect("url"),
            catcher_url: Url::parse("http://c.test").expect("url"),
        },
        mailer: MailerSettings { mail_host: None, ..MailerSettings::local(0) },
        catcher: CatcherSettings::ephemeral(dir),
        events: EventSettings::embedded(dir),
        listener: ListenerSettings { listener_port: 0, ..ListenerSettings::default() },
    }
}

/// Apps under test and a client for them.
pub struct TestApp {
    pub broker: String,
    pub auth: String,
    /// The logger's HTTP base URL, gRPC port and JSON-RPC port (when it runs).
    pub logger: String,
    pub logger_grpc: u16,
    pub logger_rpc: u16,
    /// The listener's base URL (`/status`), when it runs.
    pub listener: String,
    /// The built-in mail catcher's API base URL, when it runs.
    pub catcher: String,
    pub http: Client,
    pub _data: Option<TempDir>,
}

impl TestApp {
    /// `troupe up` on SQLite in a temporary directory.
    pub async fn all_in_one() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let p = platform::up(&up_args(dir.path())).expect("platform starts");
        let mut app = Self::new(p.port("broker"), p.port("auth"), Some(dir));
        app.set_logger(&p);
        app.listener = p.port("listener").map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
        app.catcher = p.port("catcher").map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
        actix_web::rt::spawn(p.run_until(std::future::pending()));
        app.wait_ready(&app.auth).await;
        app
    }

    /// `troupe serve auth` on PostgreSQL (`dsn`) + `troupe serve broker` reaching it over HTTP.
    pub async fn split(dsn: &str) -> TestApp {
        let auth_port = Self::spawn_auth(dsn);
        let auth_url = Url::parse(&format!("http://127.0.0.1:{auth_port}")).expect("url");
        let broker_port = Self::spawn_broker(auth_url);
        let app = Self::new(Some(broker_port), Some(auth_port), None);
        app.wait_ready(&app.auth).await;
        app
    }

    /// Wait until the service at `base` reports ready, as a load balancer would.
    pub async fn wait_ready(&self, base: &str) {
        eventually(Duration::from_secs(15), &format!("{base}/readyz"), || async {
            let res = self.http.get(format!("{base}/readyz")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await;
    }

    /// `troupe serve auth` on `dsn`; returns its port.
    pub fn spawn_auth(dsn: &str) -> u16 {
        Self::spawn_auth_inner(dsn, None)
    }

    /// `troupe serve auth` on `dsn`, auditing logins to the logger at `logger`.
    pub fn spawn_auth_with_audit(dsn: &str, logger: &Url) -> u16 {
        Self::spawn_auth_inner(dsn, Some(logger))
    }

    fn spawn_auth_inner(dsn: &str, logger: Option<&Url>) -> u16 {
        let mut auth = AuthSettings::embedded("/nonexistent", TEST_SECRET.into());
        auth.dsn = dsn.into();
        auth.db_timeout = Duration::from_secs(1);
        let p =
            platform::serve_auth(&common(), &auth, logger, &EventSettings::default()).expect("auth starts");
        let port = p.port("auth").expect("auth port");
        actix_web::rt::spawn(p.run_until(std::future::pending()));
        port
    }

    /// `troupe serve broker` reaching auth at `auth_url` and no logger; returns its port.
    pub fn spawn_broker(auth_url: Url) -> u16 {
        let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
        Self::spawn_broker_with_logger(auth_url, nowhere.clone(), nowhere)
    }

    /// `troupe serve broker` reaching auth and the logger (HTTP and gRPC); returns its port.
    pub fn spawn_broker_with_logger(auth_url: Url, logger_url: Url, logger_grpc_url: Url) -> u16 {
        let mailer_url = Url::parse("http://127.0.0.1:9").expect("url");
        let logger = LoggerUpstream { logger_url, logger_grpc_url };
        Self::spawn_broker_with(UpstreamSettings {
            auth_url,
            mailer_url,
            logger,
            listener_url: None,
            mail_auth: MailAuth::Auto,
        })
    }

    /// `troupe serve broker` reaching the services at `upstream`; returns its port.
    /// Reads are open here (`READ_AUTH=open`): these brokers often reach no auth at all; the
    /// gate has its own tests (`reads.rs`, e2e `gate.rs`).
    pub fn spawn_broker_with(upstream: UpstreamSettings) -> u16 {
        let settings = BrokerSettings { read_auth: ReadAuth::Open, ..broker_settings() };
        let p = platform::serve_broker(&common(), &settings, &upstream, &EventSettings::default())
            .expect("broker starts");
        let port = p.port("broker").expect("broker port");
        actix_web::rt::spawn(p.run_until(std::future::pending()));
        port
    }

    /// An app with no services yet; tests start the ones they need.
    pub fn split_parts() -> TestApp {
        Self::new(None, None, None)
    }

    /// An app with only auth (on `auth_port`).
    pub fn split_parts_with_auth(auth_port: u16) -> TestApp {
        Self::new(None, Some(auth_port), None)
    }

    pub fn new(broker: Option<u16>, auth: Option<u16>, data: Option<TempDir>) -> TestApp {
        let url = |p: Option<u16>| p.map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
        TestApp {
            broker: url(broker),
            auth: url(auth),
            logger: String::new(),
            logger_grpc: 0,
            logger_rpc: 0,
            listener: String::new(),
            catcher: String::new(),
            http: Client::builder().timeout(Duration::from_secs(20)).build().expect("client"),
            _data: data,
        }
    }

    pub fn set_logger(&mut self, p: &platform::Platform) {
        self.logger = format!("http://127.0.0.1:{}", p.port("logger").expect("logger port"));
        self.logger_grpc = p.port("logger-grpc").expect("gRPC port");
        self.logger_rpc = p.port("logger-rpc").expect("JSON-RPC port");
    }

    pub async fn post_handle(&self, body: &Value) -> Response {
        self.http.post(format!("{}/handle", self.broker)).json(body).send().await.expect("broker answers")
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post_handle(&json!({"action": "auth", "auth": {"email": email, "password": password}})).await
    }

    /// Log in as the seeded admin through the auth service; returns the bearer token.
    pub async fn admin_token(&self) -> String {
        self.token_for("admin@example.com", "verysecret").await
    }

    pub async fn token_for(&self, email: &str, password: &str) -> String {
        let res = self
            .http
            .post(format!("{}/authenticate", self.auth))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .expect("auth answers");
        assert_eq!(res.status(), 202, "login of {email}");
        let body: Value = res.json().await.expect("json");
        body["token"]["access_token"].as_str().expect("token").to_owned()
    }
}
