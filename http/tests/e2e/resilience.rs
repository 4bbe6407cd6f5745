//! Killing service processes mid-run: the rest keep serving, and the platform recovers when
//! the process comes back. Also: SIGTERM stops every process cleanly, and auth replicas
//! starting together migrate the database once.

use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::cluster::{
    Cluster, Processes, SERVICES, auth_env, eventually, free_port, fresh_pg_database, parts, troupe_serve,
};

fn admin_login() -> serde_json::Value {
    json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}})
}

#[actix_web::test]
async fn a_killed_auth_process_is_503_while_down_and_the_broker_recovers_when_it_returns() {
    let mut cluster = Cluster::start().await;
    assert_eq!(cluster.handle(&admin_login()).await.status(), 202);
    let broker_pid = cluster.pid("broker");

    cluster.kill("auth");

    // auth is gone: its action is 503 in the envelope, never a hang or a 500.
    let (status, body) = parts(cluster.handle(&admin_login()).await).await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (503, &json!(true), &json!("auth unavailable")),
        "{body}"
    );
    // Everything else keeps serving.
    let res = cluster.http.post(cluster.url("broker")).send().await.expect("broker answers");
    assert_eq!(res.status(), 200);
    let (status, body) = parts(cluster.handle(&json!({"action": "teleport"})).await).await;
    assert_eq!((status, &body["message"]), (400, &json!("unknown action")));
    for name in ["broker", "frontend"] {
        let res = cluster.http.get(format!("{}/healthz", cluster.url(name))).send().await.expect("answer");
        assert_eq!(res.status(), 200, "{name} /healthz while auth is down");
    }
    assert_eq!(cluster.http.get(cluster.url("frontend")).send().await.expect("page").status(), 200);

    // auth comes back on its address: the same broker process serves logins again.
    cluster.spawn("auth");
    cluster.wait_ready("auth").await;
    eventually(Duration::from_secs(20), "login through the broker after auth returned", || async {
        (cluster.handle(&admin_login()).await.status() == 202).then_some(())
    })
    .await;
    assert!(cluster.is_running("broker"), "the broker process died:\n{}", cluster.log("broker"));
    assert_eq!(cluster.pid("broker"), broker_pid, "the broker was not restarted");
}

#[actix_web::test]
async fn a_killed_mailer_process_is_503_for_mail_only_and_mail_flows_again_when_it_returns() {
    let mut cluster = Cluster::start().await;
    let mail = |subject: &str| {
        json!({"action": "mail", "mail": {"from": "me@example.com", "to": "you@there.com", "subject": subject,
                                          "message": "Hello world!"}})
    };

    cluster.kill("mailer");

    let (status, body) = parts(cluster.handle(&mail("while down")).await).await;
    assert_eq!(
        (status, &body["error"], &body["message"]),
        (503, &json!(true), &json!("mailer unavailable")),
        "{body}"
    );
    assert_eq!(
        cluster.handle(&admin_login()).await.status(),
        202,
        "auth keeps working while the mailer is down"
    );

    cluster.spawn("mailer");
    cluster.wait_ready("mailer").await;
    let subject = format!("E2E after restart {}", uuid::Uuid::new_v4().simple());
    eventually(Duration::from_secs(20), "mail through the broker after the mailer returned", || async {
        (cluster.handle(&mail(&subject)).await.status() == 202).then_some(())
    })
    .await;
    let maildir = crate::cluster::maildir();
    eventually(Duration::from_secs(20), "the mail sent after the restart arrives", || async {
        crate::cluster::delivered(&maildir, &subject).map(drop)
    })
    .await;
}

// TODO(logger): kill the logger mid-run: `log` is 503 within REQUEST_TIMEOUT, logins still
//   succeed (an audit-log outage must not fail a login), and logging recovers on restart.
// TODO(events): kill one of two listeners: the other drains the shared queue.

#[actix_web::test]
async fn sigterm_stops_every_process_cleanly() {
    let mut cluster = Cluster::start().await;
    for service in SERVICES.iter().rev() {
        let exit = cluster.terminate(service.name).await;
        assert!(
            exit.success(),
            "`troupe serve {}` exited with {exit}:\n{}",
            service.name,
            cluster.log(service.name)
        );
    }
}

#[actix_web::test]
async fn auth_replicas_starting_together_on_a_fresh_database_migrate_it_once() {
    // As when a Deployment with several auth replicas first starts: every process runs the
    // migrations at once; sqlx's advisory lock must serialise them.
    let dsn = fresh_pg_database().await;
    let logs = tempfile::tempdir().expect("temp dir for process logs");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut replicas = Processes(
        ports
            .iter()
            .map(|&p| troupe_serve("auth", &auth_env(p, &dsn), &logs.path().join(format!("auth-{p}.log"))))
            .collect(),
    );

    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    for (n, port) in ports.iter().enumerate() {
        let log = logs.path().join(format!("auth-{port}.log"));
        eventually(Duration::from_secs(30), &format!("auth replica on {port} ready"), || {
            let exited = replicas.0[n].try_wait().expect("poll child");
            let (http, log) = (&http, &log);
            async move {
                if let Some(exit) = exited {
                    panic!(
                        "auth replica exited ({exit}):\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
                let res = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
                (res.status() == 200).then_some(())
            }
        })
        .await;
    }

    let mut db = PgConnection::connect(&dsn).await.expect("users database");
    let twice: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT version FROM _sqlx_migrations GROUP BY version HAVING count(*) > 1) d",
    )
    .fetch_one(&mut db)
    .await
    .expect("migrations table");
    assert_eq!(twice, 0, "a migration was applied twice");
    let admins: i64 = sqlx::query_scalar("SELECT count(*) FROM users WHERE email = 'admin@example.com'")
        .fetch_one(&mut db)
        .await
        .expect("users table");
    assert_eq!(admins, 1, "the seeded user exists once");
    for port in &ports {
        let res = http
            .post(format!("http://127.0.0.1:{port}/authenticate"))
            .json(&json!({"email": "admin@example.com", "password": "verysecret"}))
            .send()
            .await
            .expect("replica answers");
        assert_eq!(res.status(), 202, "login on the replica at {port}");
    }
}
