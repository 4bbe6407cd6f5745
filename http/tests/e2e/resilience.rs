//! Killing service processes mid-run (auth, mailer, logger): the rest keep serving, and the platform recovers when
//! the process comes back. Also: SIGTERM stops every process cleanly, and auth replicas
//! starting together migrate the database once.

use std::time::Duration;

use serde_json::json;
use sqlx::{Connection, PgConnection};

use crate::cluster::{
    Cluster, Processes, SERVICES, admin_token, auth_env, eventually, free_port, fresh_pg_database, parts,
    troupe_serve,
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
    cluster.assert_unavailable(&admin_login(), "auth").await;
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
    cluster.bring_back("auth", &admin_login()).await;
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

    cluster.assert_unavailable(&mail("while down"), "mailer").await;
    assert_eq!(
        cluster.handle(&admin_login()).await.status(),
        202,
        "auth keeps working while the mailer is down"
    );

    let subject = format!("E2E after restart {}", uuid::Uuid::new_v4().simple());
    cluster.bring_back("mailer", &mail(&subject)).await;
    let maildir = crate::cluster::maildir();
    eventually(Duration::from_secs(20), "the mail sent after the restart arrives", || async {
        crate::cluster::delivered(&maildir, &subject).map(drop)
    })
    .await;
}

#[actix_web::test]
async fn a_killed_logger_process_is_503_for_log_only_and_logging_resumes_when_it_returns() {
    let mut cluster = Cluster::start().await;
    let log = |name: &str| json!({"action": "log", "log": {"name": name, "data": "resilience"}});
    let before = format!("e2e-before-{}", uuid::Uuid::new_v4().simple());
    assert_eq!(cluster.handle(&log(&before)).await.status(), 202);
    cluster.stored(&before).await;
    let broker_pid = cluster.pid("broker");

    cluster.kill("logger");

    // The logger is gone: `log` and `/log-grpc` are 503 in the envelope (the client's 20 s
    // timeout would fail a hang), never a 500.
    cluster.assert_unavailable(&log("while-down"), "logger").await;
    let res = cluster
        .http
        .post(format!("{}/log-grpc", cluster.url("broker")))
        .json(&json!({"log": {"name": "while-down", "data": "grpc"}}))
        .send()
        .await
        .expect("the broker answers");
    let (status, body) = parts(res).await;
    assert_eq!((status, &body["message"]), (503, &json!("logger unavailable")), "{body}");
    let (_, status) = parts(
        cluster
            .http
            .get(format!("{}/status", cluster.url("broker")))
            .bearer_auth(admin_token())
            .send()
            .await
            .expect("broker answers"),
    )
    .await;
    let services = &status["data"]["services"];
    assert_eq!(
        (&services["logger"]["ready"], &services["auth"]["ready"]),
        (&json!(false), &json!(true)),
        "{status}"
    );
    // Logins are audited through RabbitMQ: a logger outage never fails one.
    assert_eq!(
        cluster.handle(&admin_login()).await.status(),
        202,
        "auth keeps working while the logger is down"
    );

    // The logger comes back on its addresses: the same broker process logs again, and the
    // entry written before the outage is still in MongoDB.
    let after = format!("e2e-after-{}", uuid::Uuid::new_v4().simple());
    cluster.bring_back("logger", &log(&after)).await;
    cluster.stored(&after).await;
    assert_eq!(cluster.logs_named(&before).await.len(), 1, "the entry from before the outage survived");
    assert!(cluster.is_running("broker"), "the broker process died:\n{}", cluster.log("broker"));
    assert_eq!(cluster.pid("broker"), broker_pid, "the broker was not restarted");
}

#[actix_web::test]
async fn a_killed_listener_leaves_the_shared_queue_to_its_replica() {
    let mut cluster = Cluster::start().await;
    // A second listener replica: same queue and store, its own port (as a second pod).
    let port = free_port();
    let mut env = cluster.env.clone();
    env.insert("LISTENER_PORT".into(), port.to_string());
    let logs = tempfile::tempdir().expect("temp dir for process logs");
    let log = logs.path().join("listener-2.log");
    let mut replica = Processes(vec![troupe_serve("listener", &env, &log)]);
    let status_url = format!("http://127.0.0.1:{port}/status");
    eventually(Duration::from_secs(30), "the second listener is ready", || {
        let exited = replica.0[0].try_wait().expect("poll child");
        let (http, log) = (&cluster.http, &log);
        async move {
            if let Some(exit) = exited {
                panic!(
                    "listener replica exited ({exit}):\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            let res = http.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
            (res.status() == 200).then_some(())
        }
    })
    .await;

    cluster.kill("listener");

    // Events published now can only reach the replica; it consumes and stores each.
    let mut names = Vec::new();
    for n in 0..3 {
        let name = format!("e2e-replica-{n}-{}", uuid::Uuid::new_v4().simple());
        let event = json!({"action": "event", "event": {"name": name, "data": "after the kill"}});
        let (status, body) = parts(cluster.handle(&event).await).await;
        assert_eq!(status, 202, "{body}");
        names.push(name);
    }
    for name in &names {
        let entry = cluster.stored(name).await;
        assert_eq!(entry["service"], "listener", "{entry}");
    }
    let acked = eventually(Duration::from_secs(20), "the replica's /status counts its acks", || async {
        let (_, body) = parts(cluster.http.get(&status_url).send().await.expect("replica answers")).await;
        body["data"]["acked"].as_u64().filter(|&n| n >= 3)
    })
    .await;
    assert!(acked >= 3, "the replica acked {acked}");
    assert!(replica.0[0].try_wait().expect("poll child").is_none(), "the replica died");
}

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
    // The listener gave up its consumer and finished its deliveries before exiting.
    let log = cluster.log("listener");
    assert!(log.contains("listener drained"), "no drain in the listener's log:\n{log}");
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
