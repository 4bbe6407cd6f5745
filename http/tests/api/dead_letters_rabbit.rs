//! Dead letters over RabbitMQ (`troupe up` with RABBIT_URL, the real RabbitMQ at
//! 127.0.0.1:5672 or TEST_RABBIT_URL, an exchange and queue unique to the test): a refused
//! event lands in `<queue>.dead`, the broker lists it with its reason (and listing takes
//! nothing away), replays it, and it is then stored and mailed once, `.dead` empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use troupe_core::config::{MailEncryption, MailerSettings};
use troupe_http::platform;

use crate::helpers::{TestApp, eventually, parts, up_args};

/// An SMTP server refusing the first recipient it is given (550, for good) and accepting
/// every later one; counts what it accepted.
#[derive(Clone, Default)]
struct RefusesOnce {
    rcpts: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
}

impl mailin_embedded::Handler for RefusesOnce {
    fn rcpt(&mut self, _to: &str) -> mailin_embedded::Response {
        match self.rcpts.fetch_add(1, Ordering::SeqCst) {
            0 => mailin_embedded::response::NO_MAILBOX,
            _ => mailin_embedded::response::OK,
        }
    }

    fn data_end(&mut self) -> mailin_embedded::Response {
        self.accepted.fetch_add(1, Ordering::SeqCst);
        mailin_embedded::response::OK
    }
}

fn refuses_once() -> (RefusesOnce, u16) {
    let handler = RefusesOnce::default();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut server = mailin_embedded::Server::new(handler.clone());
    server.with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (handler, port)
}

fn rabbit_url() -> String {
    std::env::var("TEST_RABBIT_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// Fails loudly when RabbitMQ is not there; the channel deletes the test's queues at the end.
async fn probe(tag: &str) -> troupe_actors::events::publisher::AmqpChannel {
    let url: SecretString = rabbit_url().into();
    troupe_actors::events::publisher::open(&url, &format!("{tag}-probe"), Duration::from_secs(5))
        .await
        .unwrap_or_else(|e| {
            panic!("RabbitMQ is required for this test (TEST_RABBIT_URL): {e:#}. Run `make services`.")
        })
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    parts(app.http.get(format!("{}{path}", app.broker)).send().await.expect("answers")).await
}

async fn replay(app: &TestApp, body: &str) -> (u16, Value) {
    let req = app.http.post(format!("{}/dead-letters/replay", app.broker)).body(body.to_owned());
    parts(req.send().await.expect("answers")).await
}

/// `troupe up` on RabbitMQ (exchange and queue named after `tag`), mailing to `smtp_port`.
async fn up_on_rabbit(tag: &str, smtp_port: u16) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = up_args(dir.path());
    args.events.rabbit_url = rabbit_url().as_str().into();
    args.events.events_exchange = format!("{tag}.ex");
    args.listener.listener_queue = format!("{tag}.q");
    args.mailer =
        MailerSettings { mail_encryption: MailEncryption::None, ..MailerSettings::local(smtp_port) };
    let p = platform::up(&args).expect("platform starts");
    let mut app = TestApp::new(p.port("broker"), p.port("auth"), Some(dir));
    app.listener = p.port("listener").map(|p| format!("http://127.0.0.1:{p}")).unwrap_or_default();
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    app.wait_ready(&app.broker).await;
    app
}

#[actix_rt::test]
async fn a_refused_event_is_listed_from_the_dead_queue_replayed_and_then_stored_and_mailed_once() {
    let tag = format!("troupe-test-{}", uuid::Uuid::new_v4().simple());
    let probe = probe(&tag).await;
    let (smtp, port) = refuses_once();
    let app = up_on_rabbit(&tag, port).await;

    let mail = json!({"to": "you@there.com", "subject": "Refused once", "message": "x"});
    let event = json!({"action": "event", "event": {"name": "mail", "data": mail.to_string()}});
    // A mail job is sent by a signed-in user (the mailer relays out).
    let token = app.admin_token().await;
    let req = app.http.post(format!("{}/handle", app.broker)).bearer_auth(token).json(&event);
    let (status, body) = parts(req.send().await.expect("answers")).await;
    assert_eq!(status, 202, "{body}");

    let letters = eventually(Duration::from_secs(20), "the refused mail in .dead", || async {
        let (status, body) = get(&app, "/dead-letters").await;
        (status == 200).then(|| body["data"].as_array().cloned()).flatten().filter(|l| l.len() == 1)
    })
    .await;
    let letter = &letters[0];
    assert_eq!(letter["event"]["name"], "mail", "{letter}");
    assert_eq!(letter["event"]["data"], mail.to_string(), "{letter}");
    let id = letter["event"]["id"].as_str().expect("the event's id").to_owned();
    assert_eq!(letter["reason"], format!("rejected in {tag}.q"), "{letter}");
    assert!(letter["dead_at"].as_str().is_some() && letter["queued_at"].as_str().is_some(), "{letter}");
    // A listing is a peek: the next one (here from the listener itself) shows the same.
    let (status, again) =
        parts(app.http.get(format!("{}/dead-letters", app.listener)).send().await.expect("answers")).await;
    assert_eq!((status, again["data"].as_array().map(Vec::len)), (200, Some(1)), "{again}");
    assert_eq!(again["data"][0]["seq"], letter["seq"], "the same message, the same seq");
    assert_eq!(smtp.accepted.load(Ordering::SeqCst), 0, "refused, not sent");

    let (status, body) =
        replay(&app, &json!({"seq": letter["seq"].as_i64().expect("seq") + 1}).to_string()).await;
    assert_eq!((status, body["data"]["replayed"].as_u64()), (200, Some(0)), "no such seq: {body}");
    let (status, body) = replay(&app, "[1]").await;
    assert_eq!((status, body["kind"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = replay(&app, &json!({"seq": letter["seq"]}).to_string()).await;
    assert_eq!((status, body["data"]["replayed"].as_u64()), (200, Some(1)), "{body}");

    eventually(Duration::from_secs(20), "the replayed mail sent", || async {
        (smtp.accepted.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    let (status, body) = get(&app, "/dead-letters").await;
    assert_eq!((status, body["data"].as_array().map(Vec::len)), (200, Some(0)), ".dead is empty: {body}");
    let (status, logs) = get(&app, "/logs?name=mail").await;
    assert_eq!(status, 200, "{logs}");
    let stored: Vec<&Value> = logs["data"]["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["event_id"] == id.as_str())
        .collect();
    assert_eq!(stored.len(), 1, "stored once, under its event id: {logs}");
    assert_eq!(smtp.accepted.load(Ordering::SeqCst), 1, "mailed once");

    for queue in [format!("{tag}.q"), format!("{tag}.q.dead")] {
        let _ = probe.channel.queue_delete(queue.as_str().into(), Default::default()).await;
    }
    for exchange in [format!("{tag}.ex"), format!("{tag}.q.dlx")] {
        let _ = probe.channel.exchange_delete(exchange.as_str().into(), Default::default()).await;
    }
}
