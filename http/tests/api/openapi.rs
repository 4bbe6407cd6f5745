//! The published contract: every service's `GET /openapi.json` is an OpenAPI 3.1 document
//! that lists exactly the routes its server mounts, and schemathesis, fuzzing each service
//! against its document with every check, finds nothing (docs/api.md has the figures).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::{Client, Method};
use serde_json::Value;
use troupe_http::platform::{self, Platform};

use crate::helpers::up_args;

/// The services with an API, by the part name `troupe up` gives their HTTP server.
const SERVICES: [&str; 6] = ["broker", "auth", "logger", "mailer", "catcher", "listener"];

/// `troupe up` in `dir`, running in the background; the platform's ports.
async fn up(dir: &Path) -> Vec<(&'static str, String)> {
    let p: Platform = platform::up(&up_args(dir)).expect("platform starts");
    let bases = SERVICES
        .iter()
        .map(|name| (*name, format!("http://127.0.0.1:{}", p.port(name).expect("service port"))))
        .collect::<Vec<_>>();
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let http = client();
    for (_, base) in &bases {
        crate::helpers::eventually(Duration::from_secs(15), &format!("{base}/readyz"), || async {
            let res = http.get(format!("{base}/readyz")).send().await.ok()?;
            (res.status() == 200).then_some(())
        })
        .await;
    }
    bases
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(10)).build().expect("client")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `.route("<path>", web::<method>()` in the HTTP crates' sources, plus what every
/// server answers outside them (`/metrics`, served by middleware).
fn routes_in_sources() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::from([("GET".to_owned(), "/metrics".to_owned())]);
    let mut dirs = vec![workspace().join("http/src"), workspace().join("frontend/src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source file");
                found.extend(routes_in(&text));
            }
        }
    }
    found
}

/// `(METHOD, path)` of each `.route("path", web::method()` in `text` (spread over lines or not).
fn routes_in(text: &str) -> Vec<(String, String)> {
    let squashed: String = text.split_whitespace().collect();
    squashed
        .split(".route(\"")
        .skip(1)
        .filter_map(|rest| {
            let (path, rest) = rest.split_once('"')?;
            let method = rest.strip_prefix(",web::")?.split_once("()")?.0;
            Some((method.to_ascii_uppercase(), path.to_owned()))
        })
        .collect()
}

/// `(METHOD, path)` of every operation in `doc`.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let paths = doc["paths"].as_object().expect("paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let item = item.as_object().expect("path item");
            item.keys()
                .filter(|k| ["get", "put", "post", "delete", "patch"].contains(&k.as_str()))
                .map(|m| (m.to_ascii_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Whether `base` has a route for `method path` (`{param}`s filled in): anything but the
/// default service's answer (404 "not found", or 405 for a path with other methods).
async fn mounted(http: &Client, base: &str, method: &str, path: &str) -> bool {
    let concrete = path.split('/').map(|s| if s.starts_with('{') { "1" } else { s }).collect::<Vec<_>>();
    let url = format!("{base}{}", concrete.join("/"));
    let method = Method::from_bytes(method.as_bytes()).expect("method");
    let res = http.request(method, &url).send().await.expect("service answers");
    let status = res.status().as_u16();
    if status != 404 && status != 405 {
        return true;
    }
    // Only the headers of a stream (`/logs/stream`) are read: its body never ends.
    let body: Value = res.json().await.unwrap_or_default();
    let unrouted = body["message"] == "not found" || body["kind"] == "method_not_allowed";
    !unrouted
}

#[actix_web::test]
async fn every_service_documents_exactly_the_routes_it_mounts_in_openapi_3_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = up(dir.path()).await;
    let http = client();
    let candidates = routes_in_sources();
    assert!(candidates.len() > 30, "the source scan found the routes: {candidates:?}");

    for (name, base) in &services {
        let res = http.get(format!("{base}/openapi.json")).send().await.expect("answers");
        assert_eq!(res.status(), 200, "{name}: GET /openapi.json");
        assert_eq!(res.headers()["content-type"], "application/json", "{name}");
        let text = res.text().await.expect("a body");
        // It parses as an OpenAPI 3.1 document (oas3, an independent reader).
        let parsed = oas3::from_json(&text);
        assert!(parsed.is_ok(), "{name}: not an OpenAPI 3.1 document: {:?}", parsed.err());
        let doc: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(doc["openapi"], "3.1.0", "{name}");

        let listed = documented(&doc);
        for shared in ["/ping", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
            assert!(listed.contains(&("GET".into(), shared.into())), "{name} documents GET {shared}");
        }
        let mut served = BTreeSet::new();
        for (method, path) in candidates.iter().chain(&listed) {
            if mounted(&http, base, method, path).await {
                served.insert((method.clone(), path.clone()));
            }
        }
        let undocumented: Vec<_> = served.difference(&listed).collect();
        let unserved: Vec<_> = listed.difference(&served).collect();
        assert!(undocumented.is_empty(), "{name} mounts routes its /openapi.json lacks: {undocumented:?}");
        assert!(unserved.is_empty(), "{name} documents routes it does not mount: {unserved:?}");
    }
}

#[actix_web::test]
async fn a_known_path_asked_with_another_method_is_405_naming_the_allowed_ones() {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = up(dir.path()).await;
    let broker = &services[0].1;

    let res = client().put(format!("{broker}/handle")).send().await.expect("answers");

    assert_eq!(res.status(), 405);
    assert_eq!(res.headers()["allow"], "POST");
    let body: Value = res.json().await.expect("envelope");
    assert_eq!(body["error"], true);
    assert_eq!(body["kind"], "method_not_allowed");
}

#[actix_web::test]
async fn schemathesis_finds_no_failure_on_any_service() {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = up(dir.path()).await;
    let script = workspace().join("scripts/schemathesis.sh");
    // As the seeded admin, so the bearer-protected operations are fuzzed past the 401.
    let login = serde_json::json!({"email": "admin@example.com", "password": "verysecret"});
    let res = client().post(format!("{}/authenticate", services[1].1)).json(&login).send().await;
    let body: Value = res.expect("auth answers").json().await.expect("envelope");
    let token = body["token"]["access_token"].as_str().expect("a token").to_owned();

    let mut failed = Vec::new();
    for (name, base) in &services {
        let run = tokio::process::Command::new(&script)
            .arg(format!("{base}/openapi.json"))
            .args(["--header", &format!("Authorization: Bearer {token}")])
            .current_dir(workspace())
            .kill_on_drop(true)
            .output();
        // Installing schemathesis on a new machine takes a minute; a run, seconds.
        let out = tokio::time::timeout(Duration::from_secs(300), run)
            .await
            .unwrap_or_else(|_| panic!("schemathesis on {name} did not finish in 300 s"))
            .expect("scripts/schemathesis.sh runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary = stdout.rsplit("SUMMARY").next().unwrap_or_default();
        println!("== {name}: {}\n{summary}", out.status);
        if !out.status.success() {
            eprintln!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
            failed.push(*name);
        }
    }
    assert!(failed.is_empty(), "schemathesis found failures on {failed:?} (output above)");
}

/// What the fuzzing found, each fixed; one request per finding.
#[actix_web::test]
async fn bad_input_the_fuzzer_found_gets_a_clear_4xx_or_is_served() {
    let dir = tempfile::tempdir().expect("temp dir");
    let services = up(dir.path()).await;
    let (broker, auth, logger) = (&services[0].1, &services[1].1, &services[2].1);
    let http = client();
    let json = |url: String, body: &'static str| {
        http.post(url).header("content-type", "application/json").body(body).send()
    };

    // serde reads a struct from an array: a body that is not an object is a 400 now.
    let res = json(format!("{logger}/log"), r#"["n", "d"]"#).await.expect("answers");
    assert_eq!(res.status(), 400);
    let res = json(format!("{broker}/handle"), r#"{"action":"log","log":["n","d"]}"#).await.expect("answers");
    assert_eq!(res.status(), 400);
    // A replay body of `null` means every dead letter (as no body does); `7.0` is an integer.
    let res = json(format!("{broker}/dead-letters/replay"), "null").await.expect("answers");
    assert_eq!(res.status(), 200);
    let res = json(format!("{broker}/dead-letters/replay"), r#"{"seq": 7.0}"#).await.expect("answers");
    assert_eq!(res.status(), 200);
    let res = json(format!("{broker}/dead-letters/replay"), "[]").await.expect("answers");
    assert_eq!(res.status(), 400);
    // `PATCH /users/me` reached `/users/{id}` and was a 404: `/users/me` has only GET.
    let login = serde_json::json!({"email": "admin@example.com", "password": "verysecret"});
    let res = http.post(format!("{auth}/authenticate")).json(&login).send().await.expect("answers");
    let body: Value = res.json().await.expect("envelope");
    let token = body["token"]["access_token"].as_str().expect("a token").to_owned();
    let res = http.patch(format!("{auth}/users/me")).bearer_auth(token).send().await.expect("answers");
    assert_eq!((res.status().as_u16(), res.headers()["allow"].to_str().ok()), (405, Some("GET")));
    // A write repeating a stored idempotency key waited for the store's only writer
    // connection, which it held itself, until the deadline (503, and the store restarted).
    for _ in 0..2 {
        let began = std::time::Instant::now();
        let res = http
            .post(format!("{logger}/log"))
            .header("idempotency-key", "fuzzed-twice")
            .json(&serde_json::json!({"name": "n", "data": "d"}))
            .send()
            .await
            .expect("answers");
        assert_eq!(res.status(), 202);
        assert!(began.elapsed() < Duration::from_secs(2), "answered at once: {:?}", began.elapsed());
    }
}
