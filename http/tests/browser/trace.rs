//! The Trace view: against `troupe up`, a Test Auth click's trace opened from its Output line
//! (the broker's and auth's spans, with timings), a trace opened from a log entry, the search
//! by request id and the recent traces; against a scripted broker, how a trace with an error,
//! an orphan span, a service that did not answer and hostile text is drawn.

use actix_web::{App, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use troupe_core::config::FrontendSettings;
use troupe_http::platform;
use url::Url;

use crate::helpers::{Browser, Platform, common, eventually};

/// The waterfall's rows as the page drew them: service, depth, name, duration text, error
/// text, and the bar's left and width as fractions of its track.
async fn rows(b: &Browser) -> Vec<Value> {
    let rows = b
        .js(r#"
            return [...document.querySelectorAll('#traceWaterfall .span-row')].map((row) => {
                const track = row.querySelector('.wf-track').getBoundingClientRect();
                const bar = row.querySelector('.wf-bar').getBoundingClientRect();
                const error = row.querySelector('.span-error');
                return {
                    service: row.dataset.service,
                    depth: Number(row.dataset.depth),
                    name: row.querySelector('.span-name').textContent,
                    time: row.querySelector('.wf-time').textContent,
                    error: error ? error.textContent : null,
                    left: (bar.left - track.left) / track.width,
                    width: bar.width / track.width,
                };
            });
        "#)
        .await;
    rows.as_array().cloned().unwrap_or_default()
}

/// Wait until the waterfall shows a span of `service`; its rows.
async fn waterfall_with(b: &Browser, service: &str) -> Vec<Value> {
    eventually(&format!("a waterfall with a {service} span"), || async {
        let rows = rows(b).await;
        rows.iter().any(|r| r["service"] == service).then_some(rows)
    })
    .await
}

/// `troupe up` with tracing on, as the binary sets it up.
async fn traced_platform() -> Platform {
    troupe_core::telemetry::init(troupe_core::telemetry::LogFormat::Text, "troupe");
    Platform::up().await
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

#[actix_web::test]
async fn a_test_auth_click_opens_its_trace_from_the_output_line_with_the_broker_and_auth_spans() {
    let app = traced_platform().await;
    Browser::with(|b| async move {
        b.open(&app.frontend).await;
        b.click("#authBrokerBtn").await;
        b.wait_text("#output", "Response from broker service: Authenticated!").await;
        let href =
            b.js("return document.querySelector('#output div a.trace-link').getAttribute('href')").await;
        let href = href.as_str().unwrap_or_default().to_owned();
        let trace_id = href.strip_prefix("#trace/").unwrap_or_default().to_owned();
        assert!(troupe_http::trace_cli::is_trace_id(&trace_id), "the link names the reply's trace: {href}");

        b.click("#output div a.trace-link").await;
        let rows = waterfall_with(&b, "auth").await;
        assert_eq!(b.js("return location.hash").await, json!(href));
        let root = &rows[0];
        assert_eq!((root["service"].as_str(), root["depth"].as_i64()), (Some("broker"), Some(0)), "{rows:?}");
        assert_eq!(root["name"], "POST /handle", "{rows:?}");
        assert!(
            f(&root["left"]).abs() < 0.01 && f(&root["width"]) > 0.0,
            "the root starts the trace: {root}"
        );
        let auth: Vec<&Value> = rows.iter().filter(|r| r["service"] == "auth").collect();
        for r in rows.iter() {
            let time = r["time"].as_str().unwrap_or_default();
            assert!(time.ends_with(" ms") || time.ends_with(" s"), "a timing: {r}");
            assert!(
                f(&r["left"]) >= -0.01 && f(&r["left"]) + f(&r["width"]) <= 1.01 && f(&r["width"]) > 0.0,
                "{r}"
            );
        }
        for r in &auth {
            assert!(r["depth"].as_i64() > Some(0), "auth's spans sit under the broker's: {r}");
            let end = |r: &Value| f(&r["left"]) + f(&r["width"]);
            assert!(
                f(&r["left"]) + 0.01 >= f(&root["left"]) && end(r) <= end(root) + 0.01,
                "within the broker's: {r}"
            );
        }
        let head = b.text("#traceWaterfall .trace-head").await;
        assert!(head.contains(&trace_id) && head.contains("broker → auth"), "{head}");

        // A span's attributes, on click.
        b.click("#traceWaterfall .span-row[data-service=auth]").await;
        let detail = b.wait_text("#traceDetail", "span id").await;
        assert!(detail.contains("auth") && detail.contains("duration"), "{detail}");
        b.click("#traceWaterfall .span-row").await;
        b.wait_text("#traceDetail", "POST /handle").await;
        b.screenshot("trace").await;
        b
    })
    .await;
}

#[actix_web::test]
async fn a_trace_opens_from_a_log_entry_from_the_search_by_request_id_and_from_the_recent_list() {
    let app = traced_platform().await;
    let http = reqwest::Client::new();
    let log = |request: &'static str, data: &'static str| {
        let req = http.post(format!("{}/handle", app.broker)).header("x-request-id", request);
        let body = json!({"action": "log", "log": {"name": "traced", "data": data}});
        async move { assert_eq!(req.json(&body).send().await.expect("broker answers").status(), 202) }
    };
    log("trace-view-log-1", "opened from the Logs view").await;
    log("trace-view-search-1", "found by its request id").await;
    Browser::with(|b| async move {
        // From a log entry: the entry's trace link.
        b.open(&format!("{}/#logs", app.frontend)).await;
        b.fill("#f-request", "trace-view-log-1").await;
        b.click("#logSearch").await;
        b.wait_text("#logRows", "opened from the Logs view").await;
        let href = b
            .js("return document.querySelector('#logRows tr:first-child a.trace-link').getAttribute('href')")
            .await;
        let href = href.as_str().unwrap_or_default();
        let linked = href.strip_prefix("#trace/").unwrap_or_default();
        assert!(troupe_http::trace_cli::is_trace_id(linked), "the entry's trace_id: {href}");
        b.click("#logRows tr:first-child a.trace-link").await;
        let rows = waterfall_with(&b, "broker").await;
        assert_eq!(rows[0]["name"], "POST /handle", "{rows:?}");
        b.wait_text("#traceWaterfall .trace-head", "trace-view-log-1").await;
        assert!(rows.iter().any(|r| r["service"] == "logger"), "the logger's spans: {rows:?}");

        // The search box, by request id.
        b.click("#nav a[data-view=trace]").await;
        b.fill("#traceQuery", "trace-view-search-1").await;
        b.click("#traceOpen").await;
        b.wait_text("#traceWaterfall .trace-head", "trace-view-search-1").await;
        assert_eq!(b.js("return location.hash").await, json!("#trace/trace-view-search-1"));
        waterfall_with(&b, "broker").await;

        // An unknown one says so.
        b.fill("#traceQuery", "no-such-request").await;
        b.click("#traceOpen").await;
        b.wait_text("#traceStatus", "No trace of request no-such-request.").await;

        // The start page: recent traces, newest first; one opens on click.
        b.click("#traceRecent").await;
        let list = b.wait_text("#traceRows", "trace-view-search-1").await;
        assert!(list.contains("trace-view-log-1") && list.contains("POST /handle"), "{list}");
        let first = b
            .js("return document.querySelector('#traceRows tr:first-child td:last-child').textContent")
            .await;
        assert_eq!(first, json!("trace-view-search-1"), "newest first: {list}");
        assert!(!list.contains("GET /logs"), "the console's own reads are hidden: {list}");
        b.wait_text("#traceStatus", "of the console's own requests hidden").await;
        b.screenshot("trace-list").await;
        b.click("#traceRows tr:first-child a").await;
        b.wait_text("#traceWaterfall .trace-head", "trace-view-search-1").await;
        b.click("#traceRecent").await;
        b.click("#traceAll").await;
        b.wait_text("#traceRows", "GET /logs").await;
        b
    })
    .await;
}

const HOSTILE: &str = "<img src=x onerror=\"window.__pwned = true\">";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

/// A broker that knows one trace: a login whose store call failed, a span whose parent was
/// not recorded, and a logger that did not answer.
fn scripted_trace() -> Value {
    let span = |id: &str, parent: Option<&str>, service: &str, name: &str, start: f64, took: f64| {
        json!({
            "trace_id": TRACE, "span_id": id, "parent_span_id": parent, "service": service, "name": name,
            "kind": "server", "start_unix_ms": 1_764_000_000_000.0 + start, "duration_ms": took,
            "status": "ok", "error": null, "attributes": {"request_id": "req-scripted", "note": HOSTILE},
        })
    };
    let mut failed = span("00000000000000b2", Some("00000000000000b1"), "auth", "sqlite select", 40.0, 20.0);
    failed["status"] = json!("error");
    failed["error"] = json!(format!("database is locked {HOSTILE}"));
    json!({
        "trace_id": TRACE,
        "spans": [
            span("00000000000000a1", None, "broker", "POST /handle", 0.0, 100.0),
            span("00000000000000b1", Some("00000000000000a1"), "auth", HOSTILE, 20.0, 60.0),
            failed,
            span("00000000000000c1", Some("ffffffffffffffff"), "mailer", "POST /send", 90.0, 10.0),
        ],
        "missing": ["logger"],
    })
}

async fn one_trace(path: web::Path<String>) -> HttpResponse {
    if path.as_str() == TRACE {
        return HttpResponse::Ok()
            .json(json!({"error": false, "message": "trace", "data": scripted_trace()}));
    }
    HttpResponse::NotFound().json(json!({"error": true, "message": format!("no trace {path}")}))
}

async fn summaries() -> HttpResponse {
    let summary = json!({
        "trace_id": TRACE, "name": "POST /handle", "service": "broker", "request_id": HOSTILE,
        "start_unix_ms": 1_764_000_000_000.0, "duration_ms": 100.0, "spans": 4, "error": true,
    });
    HttpResponse::Ok().json(json!({"error": false, "message": "traces", "data": [summary]}))
}

#[actix_web::test]
async fn a_trace_is_drawn_to_scale_with_its_error_its_orphan_and_its_missing_service_as_text() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = HttpServer::new(|| {
        App::new()
            .wrap(troupe_http::api::cors(&["*".into()]))
            .route("/traces", web::get().to(summaries))
            .route("/traces/{id}", web::get().to(one_trace))
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    actix_web::rt::spawn(server);
    let url = Url::parse(&format!("http://127.0.0.1:{port}")).expect("url");
    let settings = FrontendSettings { frontend_port: 0, broker_url: url.clone(), catcher_url: url };
    let p = platform::serve_frontend(&common(), &settings).expect("console starts");
    let console = format!("http://127.0.0.1:{}", p.port("frontend").expect("console port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));

    Browser::with(|b| async move {
        b.open(&format!("{console}/#trace")).await;
        b.wait_text("#traceRows", HOSTILE).await;
        b.wait_text("#traceRows", "error").await;
        b.click("#traceRows tr:first-child a").await;
        let rows = waterfall_with(&b, "mailer").await;
        let shape: Vec<(&str, i64)> = rows
            .iter()
            .map(|r| (r["service"].as_str().unwrap_or_default(), r["depth"].as_i64().unwrap_or(-1)))
            .collect();
        assert_eq!(
            shape,
            [("broker", 0), ("auth", 1), ("auth", 2), ("mailer", 0)],
            "tree by parent; the orphan a root"
        );
        assert_eq!(rows[1]["name"], HOSTILE, "hostile text stays text");
        // Drawn to scale: 20 ms in for 60 of 100; the failed call 40 in for 20.
        for (row, left, width) in [(1, 0.2, 0.6), (2, 0.4, 0.2), (3, 0.9, 0.1)] {
            let r = &rows[row];
            assert!((f(&r["left"]) - left).abs() < 0.01 && (f(&r["width"]) - width).abs() < 0.01, "{r}");
        }
        assert_eq!(rows[2]["error"], json!(format!("database is locked {HOSTILE}")));
        assert_eq!(rows[2]["time"], "20.0 ms");
        let failed = b.js("return document.querySelectorAll('#traceWaterfall .span-row.error').length").await;
        assert_eq!(failed, json!(1));
        let head = b.text("#traceWaterfall .trace-head").await;
        for part in ["100 ms", "4 spans", "broker → auth → mailer", "1 error", "No answer from logger"] {
            assert!(head.contains(part), "{part} missing from {head}");
        }
        b.click("#traceWaterfall .span-row[data-depth='2']").await;
        let detail = b.wait_text("#traceDetail", "database is locked").await;
        assert!(detail.contains(HOSTILE) && detail.contains("00000000000000b1"), "{detail}");
        let pwned =
            b.js("return window.__pwned === undefined && document.querySelector('main img') === null").await;
        assert_eq!(pwned, json!(true), "markup from the data was interpreted");
        b.screenshot("trace-error").await;

        b.open(&format!("{console}/#trace/0123456789abcdef0123456789abcdef")).await;
        b.wait_text("#traceStatus", "no trace 0123456789abcdef0123456789abcdef").await;
        // A whole traceresponse header pasted into the search box.
        b.fill("#traceQuery", &format!("00-{TRACE}-00000000000000a1-01")).await;
        b.click("#traceOpen").await;
        waterfall_with(&b, "mailer").await;

        b.client.set_window_size(390, 844).await.expect("phone-sized window");
        b.open(&format!("{console}/#trace/{TRACE}")).await;
        waterfall_with(&b, "mailer").await;
        let fits = b.js("return document.documentElement.scrollWidth <= window.innerWidth").await;
        assert_eq!(fits, json!(true), "the trace view scrolls sideways on a phone");
        b
    })
    .await;
}
