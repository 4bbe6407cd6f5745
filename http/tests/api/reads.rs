//! Who may read the log and `/status` (`READ_AUTH`) and who may start a mailer that sends out
//! (`MAIL_AUTH`, `AUTH_URL`): `troupe up` on loopback keeps reads open for development,
//! `READ_AUTH=required` closes them, and `troupe serve broker` needs a token by default.

use serde_json::json;
use troupe_core::config::{MailerSettings, ReadAuth, UpstreamSettings};
use troupe_http::platform;
use url::Url;

use crate::helpers::{TestApp, broker_settings, common, parts, up_args};

#[actix_rt::test]
async fn troupe_up_with_read_auth_required_answers_401_without_a_token_and_200_with_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = up_args(dir.path());
    args.broker.read_auth = ReadAuth::Required;
    let p = platform::up(&args).expect("platform starts");
    let broker = format!("http://127.0.0.1:{}", p.port("broker").expect("broker port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let app = TestApp::split_parts();
    app.wait_ready(&broker).await;

    for path in ["/logs", "/status", "/logs/000000000000000000000000", "/logs/stream"] {
        let (status, body) =
            parts(app.http.get(format!("{broker}{path}")).send().await.expect("answers")).await;
        assert_eq!((status, &body["error"]), (401, &json!(true)), "GET {path}: {body}");
    }
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let res = app.http.post(format!("{broker}/handle")).json(&login).send().await.expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!(status, 202, "{body}");
    let token = body["token"]["access_token"].as_str().expect("a token").to_owned();
    for path in ["/logs", "/status"] {
        let res = app.http.get(format!("{broker}{path}")).bearer_auth(&token).send().await.expect("answers");
        let (status, body) = parts(res).await;
        assert_eq!((status, &body["error"]), (200, &json!(false)), "GET {path} with a token: {body}");
    }
    let res =
        app.http.get(format!("{broker}/logs")).bearer_auth("not.a.token").send().await.expect("answers");
    assert_eq!(res.status(), 401, "a forged token");
}

#[actix_rt::test]
async fn troupe_up_on_loopback_keeps_reads_open_under_auto() {
    let app = TestApp::all_in_one().await;
    for path in ["/logs", "/status"] {
        let res = app.http.get(format!("{}{path}", app.broker)).send().await.expect("answers");
        assert_eq!(res.status(), 200, "GET {path} without a token on loopback");
    }
}

#[actix_rt::test]
async fn serve_broker_reads_need_a_token_by_default() {
    let nowhere = Url::parse("http://127.0.0.1:9").expect("url");
    let upstream = UpstreamSettings {
        auth_url: nowhere.clone(),
        mailer_url: nowhere.clone(),
        logger: troupe_core::config::LoggerUpstream { logger_url: nowhere.clone(), logger_grpc_url: nowhere },
        listener_url: None,
        mail_auth: troupe_core::config::MailAuth::Auto,
    };
    assert_eq!(broker_settings().read_auth, ReadAuth::Auto, "the default");
    let p = platform::serve_broker(&common(), &broker_settings(), &upstream, &Default::default())
        .expect("broker starts");
    let broker = format!("http://127.0.0.1:{}", p.port("broker").expect("port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let app = TestApp::split_parts();
    app.wait_ready(&broker).await;
    let (status, body) = parts(app.http.get(format!("{broker}/logs")).send().await.expect("answers")).await;
    assert_eq!(
        (status, body["message"].as_str().map(|m| m.contains("READ_AUTH"))),
        (401, Some(true)),
        "{body}"
    );
    // A token is checked by auth (AUTH_URL), unreachable here: 503, not a read.
    let res = app.http.get(format!("{broker}/logs")).bearer_auth("a.b.c").send().await.expect("answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, &body["message"]), (503, &json!("auth unavailable")), "{body}");
    // Mail is gated the same way: no token, 401 before anything is sent.
    let mail = json!({"action": "mail", "mail": {"to": "you@there.com", "subject": "s", "message": "m"}});
    let res = app.http.post(format!("{broker}/handle")).json(&mail).send().await.expect("answers");
    assert_eq!(res.status(), 401);
}

#[actix_rt::test]
async fn serve_mailer_that_sends_out_needs_auth_url_to_start() {
    let settings = MailerSettings::local(2525);
    let err = platform::serve_mailer(&common(), &settings, None).err().expect("refused");
    assert!(format!("{err:#}").contains("AUTH_URL"), "{err:#}");
    let auth = Url::parse("http://127.0.0.1:9").expect("url");
    let p = platform::serve_mailer(&common(), &settings, Some(&auth)).expect("starts with AUTH_URL");
    drop(p);
}

#[actix_rt::test]
async fn mail_is_held_to_mail_rate_per_user_with_retry_after() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = up_args(dir.path());
    args.mailer.mail_auth = troupe_core::config::MailAuth::Required;
    args.mailer.mail_rate_per_user = troupe_core::limits::RateSpec::parse("2/1h").expect("a rate");
    let p = platform::up(&args).expect("platform starts");
    let broker = format!("http://127.0.0.1:{}", p.port("broker").expect("broker port"));
    actix_web::rt::spawn(p.run_until(std::future::pending()));
    let app = TestApp::split_parts();
    app.wait_ready(&broker).await;
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let (_, body) =
        parts(app.http.post(format!("{broker}/handle")).json(&login).send().await.expect("answers")).await;
    let token = body["token"]["access_token"].as_str().expect("a token").to_owned();
    let mail = json!({"action": "mail", "mail": {"to": "you@there.com", "subject": "rate", "message": "m"}});
    let send = || app.http.post(format!("{broker}/handle")).bearer_auth(&token).json(&mail).send();
    for i in 0..2 {
        let (status, body) = parts(send().await.expect("answers")).await;
        assert_eq!(status, 202, "mail {i} within the burst: {body}");
    }
    let res = send().await.expect("answers");
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (status, body) = parts(res).await;
    assert_eq!((status, &body["error"]), (429, &json!(true)), "{body}");
    assert!(retry.and_then(|r| r.parse::<u64>().ok()).is_some_and(|s| s > 0), "Retry-After in seconds");
}
