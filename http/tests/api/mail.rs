//! The mailer and the built-in catcher, against real SMTP servers: the catcher (in process,
//! also with STARTTLS and a self-signed certificate) and an external catcher installed by
//! `scripts/services.sh` (aiosmtpd writing a Maildir).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use actix::Addr;
use mail_parser::MessageParser;
use reqwest::Client;
use serde_json::{Value, json};
use tempfile::TempDir;
use troupe_actors::catcher::{self, CatcherStore};
use troupe_core::config::{LoggerUpstream, MailAuth, MailEncryption, MailerSettings, UpstreamSettings};
use troupe_core::messages::ListCaught;
use troupe_http::cli::UpArgs;
use troupe_http::platform;
use url::Url;

use crate::helpers::{TcpProxy, TestApp, common, eventually, parts, up_args};

const WITHIN: Duration = Duration::from_secs(15);

/// `troupe up` with no MAIL_HOST: the mailer sends to the built-in catcher.
struct MailApp {
    broker: String,
    mailer: String,
    catcher: String,
    http: Client,
    _dir: TempDir,
}

impl MailApp {
    async fn up() -> MailApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let mailer =
            MailerSettings { mail_host: None, from_name: "Troupe Mailer".into(), ..MailerSettings::local(0) };
        let p = platform::up(&UpArgs { mailer, ..up_args(dir.path()) }).expect("platform starts");
        let url = |name: &str| format!("http://127.0.0.1:{}", p.port(name).expect("port"));
        let app = MailApp {
            broker: url("broker"),
            mailer: url("mailer"),
            catcher: url("catcher"),
            http: Client::builder().timeout(Duration::from_secs(20)).build().expect("client"),
            _dir: dir,
        };
        actix_web::rt::spawn(p.run_until(std::future::pending()));
        wait_ready(&app.http, &app.mailer).await;
        app
    }

    async fn mail(&self, mail: Value) -> (u16, Value) {
        let res =
            self.http.post(format!("{}/handle", self.broker)).json(&json!({"action": "mail", "mail": mail}));
        parts(res.send().await.expect("broker answers")).await
    }

    async fn caught(&self) -> Vec<Value> {
        let res =
            self.http.get(format!("{}/api/messages", self.catcher)).send().await.expect("catcher answers");
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.expect("json");
        body["data"].as_array().cloned().unwrap_or_default()
    }
}

async fn wait_ready(http: &Client, base: &str) {
    eventually(WITHIN, &format!("{base}/readyz"), || async {
        let res = http.get(format!("{base}/readyz")).send().await.ok()?;
        (res.status() == 200).then_some(())
    })
    .await;
}

fn test_mail(subject: &str) -> Value {
    json!({"from": "me@example.com", "to": "you@there.com", "subject": subject,
           "message": "Tom & Jerry's <b>show</b>\nsecond line"})
}

/// The checks every delivered test mail must pass, on the raw message.
fn assert_delivered(raw: &[u8], subject: &str) {
    let m = MessageParser::default().parse(raw).expect("a parseable mail");
    let from = m.from().and_then(|a| a.first()).expect("a From header");
    assert_eq!(from.address(), Some("me@example.com"));
    assert!(from.name().is_some_and(|n| n.starts_with("Troupe")), "FROM_NAME in From: {from:?}");
    assert_eq!(m.to().and_then(|a| a.first()).and_then(|a| a.address()), Some("you@there.com"));
    assert_eq!(m.subject(), Some(subject));
    assert_eq!(m.text_body_count(), 1, "a plain-text part");
    assert_eq!(m.html_body_count(), 1, "an HTML part");
    let text = m.body_text(0).expect("text");
    // SMTP carries lines ending in CRLF.
    assert_eq!(
        text.replace("\r\n", "\n").trim_end(),
        "Tom & Jerry's <b>show</b>\nsecond line",
        "plain part as written"
    );
    let html = m.body_html(0).expect("html");
    assert!(html.contains("Tom &amp; Jerry's &lt;b&gt;show&lt;/b&gt;<br>"), "escaped HTML: {html}");
    assert!(html.contains("style=\"") && !html.contains("<style"), "CSS inlined: {html}");
}

#[actix_rt::test]
async fn mail_through_the_broker_arrives_in_the_built_in_catcher_with_both_parts() {
    let app = MailApp::up().await;

    let (status, body) = app.mail(test_mail("Test email")).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("Message sent to you@there.com")), "{body}");

    let list = app.caught().await;
    assert_eq!(list.len(), 1, "{list:?}");
    let summary = &list[0];
    assert_eq!(summary["from"], "me@example.com");
    assert_eq!(summary["to"], json!(["you@there.com"]));
    assert_eq!(summary["subject"], "Test email");
    assert!(summary["size"].as_u64().unwrap_or(0) > 0 && summary["received_at"].is_string());
    let id = summary["id"].as_str().expect("id");

    let raw = app.http.get(format!("{}/api/messages/{id}/raw", app.catcher)).send().await.expect("raw");
    assert_eq!(raw.status(), 200);
    assert!(raw.headers()["content-type"].to_str().unwrap_or("").starts_with("text/plain"));
    assert_delivered(&raw.bytes().await.expect("bytes"), "Test email");

    let (status, detail) =
        parts(app.http.get(format!("{}/api/messages/{id}", app.catcher)).send().await.expect("detail")).await;
    assert_eq!(status, 200);
    let d = &detail["data"];
    let text = d["text"].as_str().map(|t| t.replace("\r\n", "\n"));
    assert_eq!(text.as_deref().map(str::trim_end), Some("Tom & Jerry's <b>show</b>\nsecond line"));
    assert!(d["html"].as_str().is_some_and(|h| h.contains("Tom &amp; Jerry")));
    let headers = d["headers"].as_array().expect("headers");
    let header = |name: &str| {
        headers
            .iter()
            .find(|h| h[0].as_str().is_some_and(|n| n.eq_ignore_ascii_case(name)))
            .map(|h| h[1].clone())
    };
    assert_eq!(header("Subject"), Some(json!("Test email")));
    assert!(header("From").and_then(|f| f.as_str().map(|f| f.contains("Troupe Mailer"))).unwrap_or(false));

    let html = app.http.get(format!("{}/api/messages/{id}/html", app.catcher)).send().await.expect("html");
    assert_eq!(html.status(), 200);
    assert_eq!(html.headers()["content-security-policy"], "sandbox");
    assert!(html.headers()["content-type"].to_str().unwrap_or("").starts_with("text/html"));

    let res = app.http.delete(format!("{}/api/messages/{id}", app.catcher)).send().await.expect("delete");
    assert_eq!(res.status(), 200);
    assert!(app.caught().await.is_empty());
    let res = app.http.get(format!("{}/api/messages/{id}", app.catcher)).send().await.expect("gone");
    assert_eq!(res.status(), 404);
}

#[actix_rt::test]
async fn the_catcher_lists_newest_first_deletes_all_and_allows_the_console_origin() {
    let app = MailApp::up().await;
    for subject in ["first", "second"] {
        assert_eq!(app.mail(test_mail(subject)).await.0, 202);
    }
    let subjects: Vec<Value> = app.caught().await.iter().map(|m| m["subject"].clone()).collect();
    assert_eq!(subjects, vec![json!("second"), json!("first")]);

    let res = app
        .http
        .get(format!("{}/api/messages", app.catcher))
        .header("origin", "http://localhost:8081")
        .send()
        .await
        .expect("cors");
    assert_eq!(
        res.headers().get("access-control-allow-origin").map(|v| v.as_bytes()),
        Some(&b"http://localhost:8081"[..])
    );

    let res = app.http.delete(format!("{}/api/messages", app.catcher)).send().await.expect("delete all");
    assert_eq!(res.status(), 200);
    assert!(app.caught().await.is_empty());
    let res = app.http.get(format!("{}/api/messages/..%2Fsecret", app.catcher)).send().await.expect("bad id");
    assert_eq!(res.status(), 404);
}

#[actix_rt::test]
async fn post_send_on_the_mailer_answers_sent_to_and_from_defaults_to_from_address() {
    let app = MailApp::up().await;
    let body = json!({"to": "you@there.com", "subject": "Hi", "message": "Hello world!"});
    let (status, reply) =
        parts(app.http.post(format!("{}/send", app.mailer)).json(&body).send().await.expect("send")).await;
    assert_eq!((status, reply["message"].as_str()), (202, Some("sent to you@there.com")), "{reply}");
    let list = app.caught().await;
    assert_eq!(list[0]["from"], "noreply@example.com");
}

#[actix_rt::test]
async fn bad_input_is_a_clear_4xx_and_nothing_is_sent() {
    let app = MailApp::up().await;
    let base = test_mail("ok");
    let with = |key: &str, value: Value| {
        let mut m = base.clone();
        m[key] = value;
        m
    };
    let cases = [
        (with("to", json!("not-an-address")), 422, "invalid to address"),
        (with("to", json!("")), 422, "invalid to address"),
        (with("from", json!("me@@example.com")), 422, "invalid from address"),
        (with("to", json!("you@there.com\r\nBcc: all@evil.test")), 422, "invalid to address"),
        (with("from", json!("me@example.com\nBcc: all@evil.test")), 422, "invalid from address"),
        (with("subject", json!("Hi\r\nBcc: all@evil.test")), 422, "subject must be one line"),
        (with("message", json!("x".repeat(600 * 1024))), 422, "message must be at most"),
    ];
    for (mail, status, text) in cases {
        let (got, body) = app.mail(mail.clone()).await;
        assert_eq!(got, status, "{mail:.80}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| m.starts_with(text)), "{body}");
        assert_eq!(body["error"], true);
    }
    let huge = with("message", json!("x".repeat(1_100_000)));
    assert_eq!(app.mail(huge).await.0, 413, "over the body limit");
    assert!(app.caught().await.is_empty(), "nothing was sent");
}

/// A catcher store and SMTP server without the HTTP API, optionally with STARTTLS.
fn bare_catcher(dir: &Path, tls: Option<(&Path, &Path)>) -> (Addr<CatcherStore>, SocketAddr) {
    let store = CatcherStore::start(dir.join("catcher")).expect("store");
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    catcher::start_smtp(listener, store.clone(), tls).expect("smtp");
    (store, addr)
}

async fn count(store: &Addr<CatcherStore>) -> usize {
    store.send(ListCaught).await.expect("store answers").expect("list").len()
}

/// `troupe serve mailer` with `settings`, taking mail from anyone (`MAIL_AUTH=open`: these
/// tests are about SMTP; the gate has its own); returns its base URL.
fn spawn_mailer(settings: &MailerSettings) -> String {
    let settings = MailerSettings { mail_auth: MailAuth::Open, ..settings.clone() };
    let p = platform::serve_mailer(&common(), &settings, None).expect("mailer starts");
    let url = format!("http://127.0.0.1:{}", p.port("mailer").expect("port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    url
}

async fn send(http: &Client, mailer: &str, subject: &str) -> (u16, Value) {
    parts(http.post(format!("{mailer}/send")).json(&test_mail(subject)).send().await.expect("mailer answers"))
        .await
}

/// A catcher behind a [`TcpProxy`], and a ready mailer sending through the proxy.
struct ProxiedMailer {
    store: Addr<CatcherStore>,
    proxy: TcpProxy,
    mailer: String,
    http: Client,
    _dir: TempDir,
}

/// Start a [`ProxiedMailer`]; `settings` gets the proxy's port.
async fn proxied_mailer(settings: impl FnOnce(u16) -> MailerSettings) -> ProxiedMailer {
    let dir = tempfile::tempdir().expect("dir");
    let (store, smtp) = bare_catcher(dir.path(), None);
    let proxy = TcpProxy::start(smtp).await;
    let mailer = spawn_mailer(&settings(proxy.port));
    let http = Client::new();
    wait_ready(&http, &mailer).await;
    ProxiedMailer { store, proxy, mailer, http, _dir: dir }
}

#[actix_rt::test]
async fn smtp_down_is_503_and_the_same_process_sends_again_when_it_is_back() {
    let ProxiedMailer { store, proxy, mailer, http, _dir } = proxied_mailer(MailerSettings::local).await;
    assert_eq!(send(&http, &mailer, "before").await.0, 202);

    proxy.cut();
    let (status, body) = send(&http, &mailer, "during").await;
    assert_eq!((status, body["message"].as_str()), (503, Some("mailer unavailable")), "{body}");
    let (status, _) = send(&http, &mailer, "still down").await;
    assert_eq!(status, 503);

    proxy.restore();
    eventually(WITHIN, "mail accepted again", || async {
        (send(&http, &mailer, "after").await.0 == 202).then_some(())
    })
    .await;
    assert_eq!(count(&store).await, 2, "exactly the mails accepted were caught");
}

#[actix_rt::test]
async fn mails_one_after_another_reuse_one_pooled_smtp_session() {
    let ProxiedMailer { store, proxy, mailer, http, _dir } = proxied_mailer(MailerSettings::local).await;

    for i in 0..10 {
        let (status, body) = send(&http, &mailer, &format!("pooled {i}")).await;
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(count(&store).await, 10);
    // One session per mail would be 11 (the readiness probe's and ten more).
    assert!(proxy.accepted() <= 2, "10 mails took {} SMTP sessions", proxy.accepted());
}

#[actix_rt::test]
async fn a_burst_is_held_to_mail_pool_size_sessions_and_idle_ones_are_closed() {
    let ProxiedMailer { store, proxy, mailer, http, _dir } = proxied_mailer(|port| MailerSettings {
        mail_pool_size: 2,
        mail_pool_idle_timeout: Duration::from_secs(1),
        ..MailerSettings::local(port)
    })
    .await;

    let burst = (0..12).map(|i| {
        let (http, mailer) = (http.clone(), mailer.clone());
        async move { send(&http, &mailer, &format!("burst {i}")).await }
    });
    for (status, body) in futures_util::future::join_all(burst).await {
        assert_eq!(status, 202, "{body}");
    }
    assert_eq!(count(&store).await, 12);
    // Two sending sessions, one more for the periodic readiness check, and at most one on its
    // way back to the pool or out (one session per mail in flight would be 12).
    assert!(proxy.peak_open() <= 4, "{} SMTP sessions were open at once", proxy.peak_open());

    eventually(WITHIN, "idle SMTP sessions closed", || async { (proxy.open() == 0).then_some(()) }).await;
    let (status, body) = send(&http, &mailer, "after the pool emptied").await;
    assert_eq!(status, 202, "{body}");
}

/// A bare catcher, and a ready split-mode mailer sending to it; the catcher's directory goes
/// with the first value.
async fn catcher_and_mailer() -> (TempDir, Addr<CatcherStore>, String, Client) {
    let dir = tempfile::tempdir().expect("dir");
    let (store, smtp) = bare_catcher(dir.path(), None);
    let mailer = spawn_mailer(&MailerSettings::local(smtp.port()));
    let http = Client::new();
    wait_ready(&http, &mailer).await;
    (dir, store, mailer, http)
}

/// A split-mode broker whose mailer is at `mailer` (auth and the logger unreachable, mail
/// open); its port.
fn split_broker(mailer: &str) -> u16 {
    TestApp::spawn_broker_with(UpstreamSettings {
        auth_url: Url::parse("http://127.0.0.1:9").expect("url"),
        mailer_url: Url::parse(mailer).expect("url"),
        logger: nowhere_logger(),
        listener_url: None,
        mail_auth: MailAuth::Open,
    })
}

#[actix_rt::test]
async fn split_mode_broker_reaches_the_mailer_over_http_and_answers_503_when_it_is_down() {
    let (_dir, store, mailer, http) = catcher_and_mailer().await;
    let broker = split_broker(&mailer);
    let handle = |port: u16, subject: &str| {
        http.post(format!("http://127.0.0.1:{port}/handle"))
            .json(&json!({"action": "mail", "mail": test_mail(subject)}))
            .send()
    };
    let (status, body) = parts(handle(broker, "split").await.expect("broker")).await;
    assert_eq!((status, body["message"].as_str()), (202, Some("Message sent to you@there.com")), "{body}");
    assert_eq!(count(&store).await, 1);

    let mut bad = test_mail("x");
    bad["to"] = json!("nope");
    let res = http
        .post(format!("http://127.0.0.1:{broker}/handle"))
        .json(&json!({"action": "mail", "mail": bad}))
        .send()
        .await
        .expect("broker");
    assert_eq!(res.status(), 422);

    let down = split_broker("http://127.0.0.1:9");
    let (status, body) = parts(handle(down, "down").await.expect("broker")).await;
    assert_eq!((status, body["message"].as_str()), (503, Some("mailer unavailable")), "{body}");
}

#[actix_rt::test]
async fn a_mail_retried_with_its_idempotency_key_through_the_split_broker_is_sent_once() {
    let (_dir, store, mailer, http) = catcher_and_mailer().await;
    let broker = split_broker(&mailer);
    let handle = |subject: &str, key: Option<&str>| {
        let mut req = http
            .post(format!("http://127.0.0.1:{broker}/handle"))
            .json(&json!({"action": "mail", "mail": test_mail(subject)}));
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        async move { parts(req.send().await.expect("broker answers")).await }
    };

    for _ in 0..3 {
        let (status, body) = handle("once", Some("mail-key-1")).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (202, Some("Message sent to you@there.com")),
            "{body}"
        );
    }
    assert_eq!(count(&store).await, 1, "three sends with one key are one mail");

    let (status, body) = handle("another mail", Some("mail-key-1")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["message"], "this Idempotency-Key was used for a different mail");
    assert_eq!(count(&store).await, 1, "nothing sent for a reused key");

    assert_eq!(handle("once", Some("mail-key-2")).await.0, 202);
    assert_eq!(handle("plain", None).await.0, 202);
    assert_eq!(handle("plain", None).await.0, 202);
    assert_eq!(count(&store).await, 4, "a new key and mails without a key are each sent");
}

#[actix_rt::test]
async fn starttls_with_a_self_signed_certificate_works_once_it_is_trusted() {
    let dir = tempfile::tempdir().expect("dir");
    let (cert, key) = troupe_testkit::self_signed_cert(dir.path());
    let (store, smtp) = bare_catcher(dir.path(), Some((&cert, &key)));
    let http = Client::new();
    let tls = MailerSettings {
        mail_host: Some("localhost".into()),
        mail_encryption: MailEncryption::Tls,
        ..MailerSettings::local(smtp.port())
    };

    // Untrusted: the STARTTLS handshake fails, so the mailer never becomes ready.
    let untrusted = spawn_mailer(&tls);
    assert_eq!(send(&http, &untrusted, "untrusted").await.0, 503);

    let trusted = spawn_mailer(&MailerSettings { mail_tls_ca_file: Some(cert.clone()), ..tls.clone() });
    wait_ready(&http, &trusted).await;
    let (status, body) = send(&http, &trusted, "over TLS").await;
    assert_eq!(status, 202, "{body}");

    let insecure = spawn_mailer(&MailerSettings { mail_tls_insecure: true, ..tls });
    wait_ready(&http, &insecure).await;
    assert_eq!(send(&http, &insecure, "insecure").await.0, 202);
    assert_eq!(count(&store).await, 2);
}

/// The external catcher from `scripts/services.d/40-smtp.sh`.
fn external_smtp() -> (SocketAddr, PathBuf) {
    let addr = std::env::var("TEST_SMTP_ADDR").unwrap_or_else(|_| "127.0.0.1:2525".into());
    let maildir =
        std::env::var("TEST_SMTP_MAILDIR").unwrap_or_else(|_| "/tmp/troupe-aiosmtpd/Maildir".into());
    let addr: SocketAddr = addr.parse().expect("TEST_SMTP_ADDR is host:port");
    if std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err() {
        panic!(
            "the external SMTP catcher is required for this test (TEST_SMTP_ADDR={addr}). Run `make services`."
        );
    }
    (addr, PathBuf::from(maildir))
}

/// The mail with `subject` in the external catcher's Maildir, if it is there.
fn in_maildir(maildir: &Path, subject: &str) -> Option<Vec<u8>> {
    let entries = std::fs::read_dir(maildir.join("new")).ok()?;
    entries.filter_map(Result::ok).find_map(|e| {
        let raw = std::fs::read(e.path()).ok()?;
        let parsed = MessageParser::default().parse_headers(&raw)?;
        (parsed.subject() == Some(subject)).then(|| raw.clone())
    })
}

#[actix_rt::test]
async fn mail_to_a_real_server_needs_a_token_on_every_road_and_then_arrives() {
    let (smtp, maildir) = external_smtp();
    let dir = tempfile::tempdir().expect("dir");
    let mailer =
        MailerSettings { mail_host: Some(smtp.ip().to_string()), ..MailerSettings::local(smtp.port()) };
    let p = platform::up(&UpArgs { mailer, ..up_args(dir.path()) }).expect("platform starts");
    assert!(p.port("catcher").is_none(), "no built-in catcher when MAIL_HOST is set");
    let (broker, mailer_url) = (
        format!("http://127.0.0.1:{}", p.port("broker").expect("broker")),
        format!("http://127.0.0.1:{}", p.port("mailer").expect("mailer")),
    );
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let http = Client::new();
    wait_ready(&http, &mailer_url).await;

    // The three roads to the SMTP server: the `mail` action, a `mail` event, `POST /send`.
    let roads = |subject: &str| {
        let mail = test_mail(subject);
        [
            (format!("{broker}/handle"), json!({"action": "mail", "mail": mail})),
            (format!("{broker}/handle"), json!({"action": "event", "event": {"name": "mail", "data": mail}})),
            (format!("{mailer_url}/send"), mail),
        ]
    };
    let send = |url: String, body: Value, token: Option<String>| {
        let mut req = http.post(url).json(&body);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        async move { parts(req.send().await.expect("answers")).await }
    };
    let refused: Vec<String> =
        (0..3).map(|n| format!("Refused {n} {}", uuid::Uuid::new_v4().simple())).collect();
    for (n, subject) in refused.iter().enumerate() {
        let (url, body) = roads(subject)[n].clone();
        for token in [None, Some("not-a-token".to_owned())] {
            let (status, reply) = send(url.clone(), body.clone(), token).await;
            assert_eq!((status, reply["kind"].as_str()), (401, Some("unauthorized")), "road {n}: {reply}");
        }
    }

    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let (status, body) =
        parts(http.post(format!("{broker}/handle")).json(&login).send().await.expect("login")).await;
    assert_eq!(status, 202, "{body}");
    let token = body["token"]["access_token"].as_str().expect("a token").to_owned();
    let accepted: Vec<String> =
        (0..3).map(|n| format!("Accepted {n} {}", uuid::Uuid::new_v4().simple())).collect();
    for (n, subject) in accepted.iter().enumerate() {
        let (url, body) = roads(subject)[n].clone();
        let (status, reply) = send(url, body, Some(token.clone())).await;
        assert_eq!(status, 202, "road {n}: {reply}");
    }
    for subject in &accepted {
        let raw = eventually(WITHIN, "the mail in the external catcher's Maildir", || async {
            in_maildir(&maildir, subject)
        })
        .await;
        assert_delivered(&raw, subject);
    }
    for subject in &refused {
        assert!(in_maildir(&maildir, subject).is_none(), "a refused mail reached the server: {subject}");
    }
}

/// An SMTP server whose replies are scripted: `rcpt` answers `rcpt_reply`, and the end of
/// DATA answers the next reply of `data_replies` (then 250). Counts what it was asked.
#[derive(Clone)]
struct Scripted {
    rcpt_reply: mailin_embedded::Response,
    data_replies: std::sync::Arc<std::sync::Mutex<Vec<mailin_embedded::Response>>>,
    rcpts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    accepted: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl mailin_embedded::Handler for Scripted {
    fn rcpt(&mut self, _to: &str) -> mailin_embedded::Response {
        self.rcpts.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.rcpt_reply.clone()
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        let next = self.data_replies.lock().expect("lock").pop();
        match next {
            Some(reply) => catcher::closing(reply),
            None => {
                self.accepted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                mailin_embedded::response::OK
            }
        }
    }
}

fn scripted(
    rcpt_reply: mailin_embedded::Response,
    data_replies: Vec<mailin_embedded::Response>,
) -> (Scripted, u16) {
    let handler = Scripted {
        rcpt_reply,
        data_replies: std::sync::Arc::new(std::sync::Mutex::new(data_replies)),
        rcpts: Default::default(),
        accepted: Default::default(),
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut server = mailin_embedded::Server::new(handler.clone());
    server.with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (handler, port)
}

#[actix_rt::test]
async fn a_4xx_reply_is_retried_and_the_mail_is_accepted_once() {
    use mailin_embedded::response::{INTERNAL_ERROR, OK};
    let (server, port) = scripted(OK, vec![INTERNAL_ERROR]);
    let mailer = spawn_mailer(&MailerSettings::local(port));
    let http = Client::new();
    wait_ready(&http, &mailer).await;

    let (status, body) = send(&http, &mailer, "deferred once").await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(server.rcpts.load(std::sync::atomic::Ordering::SeqCst), 2, "tried twice");
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 1, "accepted once");
}

#[actix_rt::test]
async fn a_5xx_reply_is_reported_as_422_and_not_retried() {
    use mailin_embedded::response::NO_MAILBOX;
    let (server, port) = scripted(NO_MAILBOX, Vec::new());
    let mailer = spawn_mailer(&MailerSettings::local(port));
    let http = Client::new();
    wait_ready(&http, &mailer).await;

    let (status, body) = send(&http, &mailer, "refused").await;
    assert_eq!(
        (status, body["message"].as_str()),
        (422, Some("the mail server refused the mail (550)")),
        "{body}"
    );
    assert_eq!(server.rcpts.load(std::sync::atomic::Ordering::SeqCst), 1, "not retried");
    assert_eq!(server.accepted.load(std::sync::atomic::Ordering::SeqCst), 0);
}

/// An SMTP server that greets, answers EHLO and NOOP, then never answers `MAIL FROM`;
/// returns its port and how many `MAIL FROM`s it was sent.
async fn stalling_smtp() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mails = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = mails.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 stalling ESMTP\r\n").await;
                while let Ok(Some(line)) = lines.next_line().await {
                    let reply: &[u8] = match line.to_ascii_uppercase().get(..4) {
                        Some("EHLO") => b"250 stalling\r\n",
                        Some("NOOP") => b"250 OK\r\n",
                        Some("MAIL") => {
                            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            continue;
                        }
                        _ => continue,
                    };
                    let _ = write.write_all(reply).await;
                }
            });
        }
    });
    (port, mails)
}

#[actix_rt::test]
async fn a_server_that_stops_answering_mid_mail_is_503_within_the_deadline_and_not_retried() {
    let (port, mails) = stalling_smtp().await;
    let settings = MailerSettings::local(port);
    let mailer = spawn_mailer(&settings);
    let http = Client::new();
    wait_ready(&http, &mailer).await;

    let started = std::time::Instant::now();
    let (status, body) = send(&http, &mailer, "into the void").await;
    assert_eq!((status, body["message"].as_str()), (503, Some("mailer unavailable")), "{body}");
    assert!(started.elapsed() < settings.answer_within(), "answered after {:?}", started.elapsed());
    assert_eq!(
        mails.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "a mail the server may yet accept is not sent again"
    );
}

#[actix_rt::test]
async fn caught_mail_survives_a_restart_of_the_catcher() {
    let dir = tempfile::tempdir().expect("dir");
    let (store, smtp) = bare_catcher(dir.path(), None);
    let mailer = spawn_mailer(&MailerSettings::local(smtp.port()));
    let http = Client::new();
    wait_ready(&http, &mailer).await;
    assert_eq!(send(&http, &mailer, "kept").await.0, 202);
    assert_eq!(count(&store).await, 1);

    let again = CatcherStore::start(dir.path().join("catcher")).expect("store on the same folder");
    let list = again.send(ListCaught).await.expect("answers").expect("list");
    assert_eq!(list.iter().map(|m| m.subject.as_str()).collect::<Vec<_>>(), ["kept"]);
}

/// A logger address nothing listens on (these tests do not log).
fn nowhere_logger() -> LoggerUpstream {
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    LoggerUpstream { logger_url: nowhere.clone(), logger_grpc_url: nowhere }
}
