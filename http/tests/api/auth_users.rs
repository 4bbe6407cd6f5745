//! User management and tokens on the auth service.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, fresh_pg_database, parts};

impl TestApp {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.auth));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let (status, body) = parts(req.send().await.expect("auth answers")).await;
        assert!(!body.to_string().contains("$2"), "a password hash leaked: {body}");
        (status, body)
    }

    async fn register(&self, token: &str, email: &str, password: &str) -> (u16, Value) {
        let body = json!({"email": email, "password": password, "first_name": "Ada", "last_name": "L"});
        self.call(Method::POST, "/users", Some(token), Some(body)).await
    }
}

async fn user_lifecycle(app: &TestApp) {
    let admin = app.admin_token().await;

    let (status, body) = app.register(&admin, "Ada@Example.com", "analytical-engine").await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["data"]["email"], "ada@example.com", "normalised");
    let id = body["data"]["id"].as_i64().expect("id");

    let (status, body) = app.register(&admin, "ada@example.com", "another-password").await;
    assert_eq!((status, body["message"].as_str()), (409, Some("email already registered")));

    let ada = app.token_for("ada@example.com", "analytical-engine").await;
    let (status, body) = app.call(Method::GET, "/users/me", Some(&ada), None).await;
    assert_eq!((status, body["data"]["id"].as_i64()), (200, Some(id)));

    let (status, body) = app
        .call(Method::PATCH, &format!("/users/{id}"), Some(&ada), Some(json!({"last_name": "Lovelace"})))
        .await;
    assert_eq!((status, body["data"]["last_name"].as_str()), (200, Some("Lovelace")));

    // Users manage themselves, not others; listing is for admins.
    assert_eq!(app.call(Method::GET, "/users/1", Some(&ada), None).await.0, 403);
    assert_eq!(app.call(Method::GET, "/users", Some(&ada), None).await.0, 403);
    let (status, body) = app.call(Method::GET, "/users?limit=10", Some(&admin), None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"].as_array().map(Vec::len), Some(2));
    let (_, page) = app.call(Method::GET, "/users?after=1&limit=1", Some(&admin), None).await;
    assert_eq!(page["data"][0]["id"].as_i64(), Some(id), "cursor pagination");
    let (status, body) = app.call(Method::GET, "/users?limit=ten", Some(&admin), None).await;
    assert_eq!((status, body["error"].as_bool()), (400, Some(true)), "a bad query in the envelope: {body}");
    let (status, body) = app.call(Method::GET, "/users/not-a-number", Some(&admin), None).await;
    assert_eq!((status, body["error"].as_bool()), (404, Some(true)), "a bad path in the envelope: {body}");

    // Changing your own password needs the current one.
    let change = |current: &str| json!({"current_password": current, "new_password": "difference-engine"});
    let path = format!("/users/{id}/password");
    assert_eq!(app.call(Method::PUT, &path, Some(&ada), Some(change("wrong"))).await.0, 401);
    assert_eq!(app.call(Method::PUT, &path, Some(&ada), Some(change("analytical-engine"))).await.0, 200);
    assert_eq!(app.login("ada@example.com", "analytical-engine").await.status(), 401);
    assert_eq!(app.login("ada@example.com", "difference-engine").await.status(), 202);

    // Deactivated: no login, and the old token no longer works.
    let (status, body) = app.call(Method::POST, &format!("/users/{id}/deactivate"), Some(&admin), None).await;
    assert_eq!((status, body["data"]["active"].as_i64()), (200, Some(0)));
    assert_eq!(app.login("ada@example.com", "difference-engine").await.status(), 401);
    assert_eq!(app.call(Method::GET, "/users/me", Some(&ada), None).await.0, 401);
}

#[actix_web::test]
async fn users_are_managed_on_sqlite() {
    user_lifecycle(&TestApp::all_in_one().await).await;
}

#[actix_web::test]
async fn users_are_managed_on_postgres() {
    let dsn = fresh_pg_database().await;
    user_lifecycle(&TestApp::split(&dsn).await).await;
}

#[actix_web::test]
async fn invalid_input_is_rejected_with_422_and_nothing_is_created() {
    let app = TestApp::all_in_one().await;
    let admin = app.admin_token().await;
    let cases = [
        ("not-an-email", "long-enough-pw", "invalid email"),
        ("a@b.c\r\nBcc: x@y.z", "long-enough-pw", "invalid email"),
        ("short@example.com", "short", "at least 8"),
        ("long@example.com", &"p".repeat(73), "at most 72"),
    ];
    for (email, password, needle) in cases {
        let (status, body) = app.register(&admin, email, password).await;
        assert_eq!(status, 422, "{email}: {body}");
        assert!(body["message"].as_str().unwrap_or_default().contains(needle), "{body}");
    }
    let (_, list) = app.call(Method::GET, "/users", Some(&admin), None).await;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(1), "only the seeded user");
}

#[actix_web::test]
async fn management_requires_a_valid_bearer_token() {
    let app = TestApp::all_in_one().await;
    let admin = app.admin_token().await;
    let forged = format!("{}x", &admin[..admin.len() - 1]);
    for token in [None, Some("garbage"), Some(forged.as_str())] {
        let (status, body) = app.call(Method::GET, "/users", token, None).await;
        assert_eq!(status, 401, "{token:?}: {body}");
        assert_eq!(body["error"], true);
    }
    let (status, body) = app.call(Method::GET, "/token", Some(&admin), None).await;
    assert_eq!((status, body["data"]["sub"].as_str()), (200, Some("1")));

    // Well signed, but for a user that does not exist: not a valid token.
    let keys = troupe_actors::auth::token::TokenKeys::from_secret(
        crate::helpers::TEST_SECRET.as_bytes(),
        Duration::from_secs(60),
    )
    .expect("keys");
    let now = chrono::Utc::now();
    let ghost = troupe_core::domain::User {
        id: 999_999,
        email: "ghost@example.com".into(),
        first_name: String::new(),
        last_name: String::new(),
        active: 1,
        admin: false,
        created_at: now,
        updated_at: now,
    };
    let token = keys.issue(&ghost).expect("signs").access_token;
    let (status, body) = app.call(Method::GET, "/token", Some(&token), None).await;
    assert_eq!((status, body["message"].as_str()), (401, Some("account is not active")), "{body}");
}

#[actix_web::test]
async fn wrong_logins_for_one_email_are_refused_with_retry_after_once_over_the_limit() {
    let app = TestApp::all_in_one().await;
    let started = std::time::Instant::now();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..14 {
        let res = app.login("admin@example.com", "not the password").await;
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let (status, body) = parts(res).await;
        if status == 429 && limited.is_none() {
            limited = Some((retry_after, body));
        }
        statuses.push(status);
    }
    // LOGIN_RATE_PER_EMAIL's default: a burst of 10, refilled at one per 6 s (a slow
    // machine checking the passwords may earn one or two back meanwhile).
    let refilled = usize::try_from(started.elapsed().as_secs() / 6).unwrap_or(usize::MAX);
    assert_eq!(statuses[..10], [401; 10], "{statuses:?}");
    let allowed = statuses.iter().filter(|s| **s == 401).count();
    assert!(allowed <= 10 + refilled, "{statuses:?} ({refilled} refilled)");
    assert!(statuses[10..].iter().all(|s| matches!(s, 401 | 429)), "{statuses:?}");
    let (retry_after, body) = limited.expect("a 429");
    let secs: u64 = retry_after.and_then(|s| s.parse().ok()).expect("a Retry-After in seconds");
    assert!((1..=60).contains(&secs), "{secs}");
    assert_eq!(
        (body["error"].as_bool(), body["kind"].as_str()),
        (Some(true), Some("rate_limited")),
        "{body}"
    );
}
