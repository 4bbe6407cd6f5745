//! A scripted stand-in for the broker's log and status routes and for the mail catcher, with
//! the contract's reply shapes, recording the queries the page makes. It lets the tests pin
//! down the logs and mail views exactly (paging, filters, hostile text) whatever services run.

use std::sync::{Arc, Mutex, PoisonError};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};

/// What a hostile log entry carries: markup that would set `window.__pwned` if it ran.
pub const SCRIPT_DATA: &str = "<script>window.__pwned = true</script>";
pub const IMG_NAME: &str = "<img src=x onerror=\"window.__pwned = true\">";
pub const REQUEST: &str = "5b1e0c2a-9f3d-4c55-8a7e-0d4c3b2a1f00";

#[derive(Default)]
struct State {
    queries: Vec<String>,
    mail: Vec<Value>,
}

/// The running stand-in.
pub struct Fake {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Fake {
    pub fn start() -> Fake {
        let state = Arc::new(Mutex::new(State { queries: vec![], mail: vec![message("m1"), message("m2")] }));
        let data = web::Data::from(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .wrap(troupe_http::api::cors(&["*".into()]))
                .app_data(data.clone())
                .route("/logs", web::get().to(logs))
                .route("/logs/{id}", web::get().to(log))
                .route("/status", web::get().to(status))
                .route("/api/messages", web::get().to(inbox))
                .route("/api/messages/{id}", web::get().to(mail))
                .route("/api/messages/{id}/html", web::get().to(mail_html))
                .route("/api/messages/{id}", web::delete().to(delete_mail))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        actix_web::rt::spawn(server);
        Fake { url: format!("http://127.0.0.1:{port}"), state }
    }

    /// Query strings of every `GET /logs` so far.
    pub fn log_queries(&self) -> Vec<String> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).queries.clone()
    }

    /// Ids of the messages still in the inbox.
    pub fn mail_ids(&self) -> Vec<String> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.mail.iter().filter_map(|m| m["id"].as_str().map(String::from)).collect()
    }
}

fn entry(id: &str, name: &str, data: &str, level: &str, service: &str, request: &str) -> Value {
    json!({
        "id": id, "name": name, "data": data, "level": level, "service": service,
        "request_id": request, "event_id": null,
        "created_at": "2026-11-24T04:30:00Z", "updated_at": "2026-11-24T04:30:00Z",
    })
}

fn envelope(data: Value) -> HttpResponse {
    HttpResponse::Ok().json(json!({"error": false, "message": "ok", "data": data}))
}

async fn logs(req: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let query = req.query_string().to_owned();
    state.lock().unwrap_or_else(PoisonError::into_inner).queries.push(query.clone());
    let (entries, next) = if query.contains("cursor=page2") {
        (vec![entry("e0", "startup", "the oldest entry", "INFO", "logger", "r-0")], Value::Null)
    } else if query.contains(&format!("request_id={REQUEST}")) {
        let entries = vec![
            entry("e3", "mail", "sent to you@there.com", "INFO", "mailer", REQUEST),
            entry("e2", "authentication", "admin@example.com logged in", "INFO", "auth", REQUEST),
            entry("e1", "request", "POST /handle", "INFO", "broker", REQUEST),
        ];
        (entries, Value::Null)
    } else {
        let entries = vec![
            entry("e5", "event", SCRIPT_DATA, "ERROR", "listener", REQUEST),
            entry("e4", IMG_NAME, "an image that never loads", "WARNING", "broker", REQUEST),
            entry("e3", "mail", "sent to you@there.com", "INFO", "mailer", REQUEST),
        ];
        (entries, json!("page2"))
    };
    envelope(json!({"entries": entries, "next_cursor": next}))
}

async fn log(path: web::Path<String>) -> HttpResponse {
    envelope(entry(&path, "event", SCRIPT_DATA, "ERROR", "listener", REQUEST))
}

async fn status() -> HttpResponse {
    envelope(json!({"services": {
        "auth": {"ready": true, "backends": {"auth.database": {"state": "ready", "since": "2026-11-24T04:00:00Z", "failed_attempts": 0}}},
        "broker": {"ready": true, "backends": {}},
        "logger": {"ready": false, "backends": {"logger.store": {"state": "connecting", "since": "2026-11-24T04:29:00Z", "failed_attempts": 4}}},
    }}))
}

fn message(id: &str) -> Value {
    json!({
        "id": id, "from": "me@example.com", "to": ["you@there.com"],
        "subject": format!("Test email {id} <script>window.__pwned = true</script>"),
        "received_at": "2026-11-24T04:31:00Z", "size": 1234,
    })
}

async fn inbox(state: web::Data<Mutex<State>>) -> HttpResponse {
    envelope(Value::Array(state.lock().unwrap_or_else(PoisonError::into_inner).mail.clone()))
}

async fn mail(path: web::Path<String>) -> HttpResponse {
    let mut m = message(&path);
    m["headers"] = json!([["Subject", "Test email"], ["X-Hostile", "<b>bold?</b>"]]);
    m["text"] = json!("Hello world! <script>window.__pwned = true</script>");
    m["html"] = json!(HTML_BODY);
    envelope(m)
}

/// The HTML part: a marker to find, and a script that must not run in the sandbox.
pub const HTML_BODY: &str = "<p id=\"marker\">Hello <b>world</b>!</p><script>document.body.dataset.ran = 'yes'; window.top.__pwned = true</script>";

async fn mail_html() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("Content-Security-Policy", "sandbox"))
        .body(HTML_BODY)
}

async fn delete_mail(path: web::Path<String>, state: web::Data<Mutex<State>>) -> HttpResponse {
    state.lock().unwrap_or_else(PoisonError::into_inner).mail.retain(|m| m["id"] != json!(path.as_str()));
    envelope(Value::Null)
}
