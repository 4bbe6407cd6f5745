//! Split mode is no open relay and no public audit trail: with a real SMTP server (MAIL_HOST
//! set), the broker's `mail` action, the mailer process's `POST /send` and a `mail` event
//! through the broker each need a bearer token of an active user (the listener's mail job
//! then goes to the mailer with its own service token); `GET /logs` and `GET /status` of
//! `troupe serve broker` need one too, and only admins see the login audit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::cluster::{Cluster, delivered, eventually, maildir, parts};

fn mail(subject: &str) -> Value {
    json!({"from": "me@example.com", "to": "you@there.com", "subject": subject, "message": "Gated"})
}

fn subject(road: &str) -> String {
    format!("E2E gate {road} {}", uuid::Uuid::new_v4().simple())
}

/// Log in through the broker; the access token.
async fn login(cluster: &Cluster, email: &str, password: &str) -> String {
    let body = json!({"action": "auth", "auth": {"email": email, "password": password}});
    let (status, reply) = parts(cluster.handle_anonymous(&body).await).await;
    assert_eq!(status, 202, "login of {email}: {reply}");
    reply["token"]["access_token"].as_str().unwrap_or_else(|| panic!("a token in {reply}")).to_owned()
}

/// POST `body` to `url`, with `token` as bearer when given.
async fn post(cluster: &Cluster, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = cluster.http.post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    parts(req.send().await.expect("answers")).await
}

/// GET `url`, with `token` as bearer when given.
async fn get(cluster: &Cluster, url: &str, token: Option<&str>) -> (u16, Value) {
    let mut req = cluster.http.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    parts(req.send().await.expect("answers")).await
}

#[actix_web::test]
async fn split_mode_mail_needs_a_token_on_every_road_and_then_arrives() {
    let cluster = Cluster::start().await;
    let (handle, send) =
        (format!("{}/handle", cluster.url("broker")), format!("{}/send", cluster.url("mailer")));
    let action = |s: &str| json!({"action": "mail", "mail": mail(s)});
    let event = |s: &str| json!({"action": "event", "event": {"name": "mail", "data": mail(s)}});

    // Without a token (or with a forged one), every road is refused in the envelope.
    let refused = [subject("action"), subject("send"), subject("event"), subject("forged")];
    let forged = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl";
    for (url, token, body) in [
        (&handle, None, action(&refused[0])),
        (&send, None, mail(&refused[1])),
        (&handle, None, event(&refused[2])),
        (&send, Some(forged), mail(&refused[3])),
        (&handle, Some(forged), action(&refused[3])),
    ] {
        let (status, reply) = post(&cluster, url, token, &body).await;
        assert_eq!((status, &reply["error"]), (401, &json!(true)), "{url} {body}: {reply}");
    }

    // With a user's token, each road delivers (the event by the listener's mail job, which
    // the mailer admits on the listener's service token).
    let token = login(&cluster, "admin@example.com", "verysecret").await;
    let sent = [subject("action ok"), subject("send ok"), subject("event ok")];
    for (url, body, want) in [
        (&handle, action(&sent[0]), "Message sent to you@there.com"),
        (&send, mail(&sent[1]), "sent to you@there.com"),
        (&handle, event(&sent[2]), "Event published: mail"),
    ] {
        let (status, reply) = post(&cluster, url, Some(&token), &body).await;
        assert_eq!((status, reply["message"].as_str()), (202, Some(want)), "{url} {body}: {reply}");
    }
    let maildir = maildir();
    for s in &sent {
        eventually(Duration::from_secs(20), &format!("{s:?} at the SMTP server"), || async {
            delivered(&maildir, s)
        })
        .await;
    }
    // The refused mails were sent before these arrived, over the same roads: none of them did.
    for s in &refused {
        assert!(delivered(&maildir, s).is_none(), "{s:?} reached the SMTP server without a token");
    }
    let log = cluster.log("listener");
    assert!(!log.contains("\"status\":401"), "the listener's mail job was refused:\n{log}");
}

#[actix_web::test]
async fn split_mode_reads_need_a_token_and_only_admins_see_the_login_audit() {
    let cluster = Cluster::start().await;
    let broker = cluster.url("broker");
    let admin = login(&cluster, "admin@example.com", "verysecret").await;

    for path in ["/logs", "/logs?name=authentication", "/status", "/logs/000000000000000000000000"] {
        let (status, body) = get(&cluster, &format!("{broker}{path}"), None).await;
        assert_eq!((status, &body["error"]), (401, &json!(true)), "GET {path} without a token: {body}");
    }
    let (status, body) = get(&cluster, &format!("{broker}/status"), Some(&admin)).await;
    assert_eq!((status, &body["data"]["services"]["auth"]["ready"]), (200, &json!(true)), "{body}");

    // The admin's login is audited; the admin reads it, a user who is no admin does not.
    let audit = eventually(Duration::from_secs(20), "the admin's login in the audit", || async {
        let (status, body) = get(&cluster, &format!("{broker}/logs?name=authentication"), Some(&admin)).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["entries"].as_array().and_then(|e| e.first().cloned())
    })
    .await;
    let user = json!({"email": "reader@example.com", "password": "reader-password", "admin": false});
    let res = cluster
        .http
        .post(format!("{}/users", cluster.url("auth")))
        .bearer_auth(&admin)
        .json(&user)
        .send()
        .await
        .expect("auth answers");
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap_or_default());
    let reader = login(&cluster, "reader@example.com", "reader-password").await;
    let (status, body) = get(&cluster, &format!("{broker}/logs?name=authentication"), Some(&reader)).await;
    assert_eq!((status, &body["data"]["entries"]), (200, &json!([])), "{body}");
    let id = audit["id"].as_str().expect("an id");
    let (status, body) = get(&cluster, &format!("{broker}/logs/{id}"), Some(&reader)).await;
    assert_eq!((status, &body["error"]), (403, &json!(true)), "{body}");
    let (status, body) = get(&cluster, &format!("{broker}/logs/{id}"), Some(&admin)).await;
    assert_eq!((status, &body["data"]["name"]), (200, &json!("authentication")), "{body}");
}
