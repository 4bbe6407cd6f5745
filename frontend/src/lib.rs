//! Troupe's web console (:8081): a page to try every service through the broker.
//!
//! Templates (tera) and static assets are compiled into the binary, so the console makes no
//! request to any outside host. `BROKER_URL` tells the page where the broker is, `CATCHER_URL`
//! where the built-in mail catcher is; the page's script does the rest in the browser.
//!
//! Views (switched by the URL's `#fragment`, no reload): the console (the Go test page's
//! buttons, publishing an event, Sent / Received panes), logs (filters, paging, following a
//! request id, following new entries live over server-sent events), traces (one request as a
//! waterfall across services, from the broker's `GET /traces`), the mail inbox, and the health of every service (the broker's `GET /status`, with charts of the last 15
//! minutes of each one's metrics drawn as SVG from `GET /metrics/history`).
//! Every piece of data the page shows is inserted as text, never as markup, and the page is
//! served with a strict Content-Security-Policy (its own script and style only; requests
//! only to the broker and the catcher).

use actix_web::web::{self, ServiceConfig};
use actix_web::{HttpResponse, http::header};
use tera::{Context, Tera};

const INDEX: &str = include_str!("../templates/index.html");
const SCRIPT: &str = include_str!("../static/console.js");
const TRACE_SCRIPT: &str = include_str!("../static/trace.js");
const CHARTS_SCRIPT: &str = include_str!("../static/charts.js");
const STYLE: &str = include_str!("../static/console.css");

/// Where the page's requests go, as the browser sees them.
#[derive(Debug, Clone, Default)]
pub struct ConsoleUrls {
    /// The broker (`BROKER_URL`).
    pub broker: String,
    /// The built-in mail catcher's API (`CATCHER_URL`).
    pub catcher: String,
}

/// The console's routes.
pub fn routes(urls: ConsoleUrls) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        let page = render_index(&urls).ok();
        let policy = content_security_policy(&urls);
        cfg.route(
            "/",
            web::get().to(move || {
                let (page, policy) = (page.clone(), policy.clone());
                async move {
                    match page {
                        Some(html) => HttpResponse::Ok()
                            .content_type("text/html; charset=utf-8")
                            .insert_header((header::CONTENT_SECURITY_POLICY, policy))
                            .insert_header((header::X_FRAME_OPTIONS, "DENY"))
                            .body(html),
                        None => HttpResponse::InternalServerError().body("template error"),
                    }
                }
            }),
        )
        .route("/static/console.js", web::get().to(|| asset(SCRIPT, "text/javascript; charset=utf-8")))
        .route("/static/trace.js", web::get().to(|| asset(TRACE_SCRIPT, "text/javascript; charset=utf-8")))
        .route("/static/charts.js", web::get().to(|| asset(CHARTS_SCRIPT, "text/javascript; charset=utf-8")))
        .route("/static/console.css", web::get().to(|| asset(STYLE, "text/css; charset=utf-8")));
    }
}

async fn asset(body: &'static str, content_type: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

/// The page runs only its own script and style, talks only to the broker and the catcher,
/// and frames only the catcher's mail bodies: an injected `<script>` or a foreign fetch is
/// refused by the browser.
fn content_security_policy(urls: &ConsoleUrls) -> String {
    let origin = |url: &str| url.trim_end_matches('/').replace([';', ',', ' '], "");
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self' {broker} {catcher}; frame-src {catcher}; base-uri 'none'; \
         form-action 'none'; frame-ancestors 'none'",
        broker = origin(&urls.broker),
        catcher = origin(&urls.catcher)
    )
}

fn render_index(urls: &ConsoleUrls) -> Result<String, tera::Error> {
    let mut ctx = Context::new();
    ctx.insert("broker_url", urls.broker.trim_end_matches('/'));
    ctx.insert("catcher_url", urls.catcher.trim_end_matches('/'));
    Tera::one_off(INDEX, &ctx, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_may_talk_only_to_the_broker_and_the_catcher() {
        let urls =
            ConsoleUrls { broker: "http://b:8080/".into(), catcher: "http://c:8025; script-src *".into() };
        let policy = content_security_policy(&urls);
        assert!(policy.contains("connect-src 'self' http://b:8080 http://c:8025script-src*;"), "{policy}");
        assert!(policy.starts_with("default-src 'none'; script-src 'self';"), "{policy}");
    }

    #[test]
    fn the_broker_url_is_escaped_into_the_page() {
        let urls = ConsoleUrls { broker: "http://x/\"><script>".into(), catcher: "http://c".into() };
        let html = render_index(&urls).unwrap_or_default();
        assert!(html.contains("data-broker=\"http:&#x2F;&#x2F;x&#x2F;&quot;&gt;&lt;script&gt;\""), "{html}");
    }
}
