//! Split mode with every hop on TLS (issue 14): each process presents a certificate of a test
//! CA on every listener and trusts that CA for the services it calls. The contract's key
//! whole COMPAT contract runs through the broker (login over HTTPS to auth, `log` over HTTPS
//! and `/log-grpc` over gRPC-TLS to the logger, mail over HTTPS to the mailer, events over
//! AMQPS through RabbitMQ to the listener), and each hop is shown to be TLS: the certificate a port presents is the
//! test one, and the same port refuses plaintext. The certificate is reloaded on SIGHUP and
//! when its files change, and a TLS misconfiguration stops start-up.

use std::collections::BTreeMap;
use std::process::Child;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use troupe_http::grpc::pb::log_service_client::LogServiceClient;
use troupe_http::grpc::pb::{Log, LogRequest};

use crate::cluster::{
    Cluster, Processes, SERVICES, TestCa, admin_token, eventually, free_port, parts, troupe_serve,
};

/// A rustls client trusting only `ca` (PEM).
fn connector(ca: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to 127.0.0.1:`port`, verified against `ca`.
async fn tls_to(port: u16, ca: &str) -> tokio_rustls::client::TlsStream<TcpStream> {
    let work = async {
        let tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
        let name = ServerName::try_from("127.0.0.1").expect("server name");
        connector(ca).connect(name, tcp).await
    };
    tokio::time::timeout(Duration::from_secs(5), work)
        .await
        .unwrap_or_else(|_| panic!("TLS handshake with port {port} timed out"))
        .unwrap_or_else(|e| panic!("TLS handshake with port {port} failed: {e}"))
}

/// The DER of the certificate 127.0.0.1:`port` presents, verified against `ca`.
async fn presented(port: u16, ca: &str) -> Vec<u8> {
    let tls = tls_to(port, ca).await;
    let certs = tls.get_ref().1.peer_certificates().expect("the server's certificates");
    certs[0].to_vec()
}

/// What a plaintext client gets from `port` for a request line: the bytes before the server
/// closed (at most 5 s).
async fn plaintext_reply(port: u16, request: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(("127.0.0.1", port)).await.expect("connect");
    tcp.write_all(request).await.expect("write");
    let mut got = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut got)).await;
    assert!(read.is_ok(), "port {port} kept a plaintext connection open without answering it");
    got
}

#[actix_web::test]
async fn split_mode_with_every_hop_on_tls_serves_the_contract() {
    let cluster = Cluster::start_tls().await;
    let tls = cluster.tls.as_ref().expect("a TLS cluster");
    let ca = tls.ca.pem();
    let plain = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");

    // Every HTTP listener presents the test certificate and refuses plaintext HTTP.
    for service in SERVICES {
        let port = cluster.ports[service.name];
        assert_eq!(presented(port, &ca).await, tls.leaf.der, "{} presents the test leaf", service.name);
        let res = plain.get(format!("http://127.0.0.1:{port}/healthz")).send().await;
        assert!(res.is_err(), "{} answered plaintext HTTP: {:?}", service.name, res.map(|r| r.status()));
        let raw = plaintext_reply(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").await;
        assert!(!raw.starts_with(b"HTTP/"), "{} answered plaintext HTTP", service.name);
    }

    // The broker's /status reached every service over HTTPS.
    let status = cluster.http.get(format!("{}/status", cluster.url("broker"))).bearer_auth(admin_token());
    let (status, body) = parts(status.send().await.expect("broker answers")).await;
    assert_eq!(status, 200, "{body}");
    for name in ["broker", "auth", "logger", "mailer", "listener"] {
        assert_eq!(body["data"]["services"][name]["ready"], true, "{name} in the broker's /status: {body}");
    }

    // Login: broker -> auth over HTTPS; auth -> PostgreSQL over TLS (sslmode=require).
    let login = json!({"action": "auth", "auth": {"email": "admin@example.com", "password": "verysecret"}});
    let (status, body) = parts(cluster.handle(&login).await).await;
    assert_eq!((status, &body["message"]), (202, &json!("Authenticated!")), "{body}");
    assert_eq!(body["token"]["token_type"], "Bearer", "{body}");
    let mut db = PgConnection::connect(&cluster.dsn).await.expect("users database over TLS");
    let row = sqlx::query(
        "SELECT count(*) FILTER (WHERE s.ssl) AS tls, count(*) AS all FROM pg_stat_activity a \
         JOIN pg_stat_ssl s USING (pid) WHERE a.datname = current_database()",
    )
    .fetch_one(&mut db)
    .await
    .expect("pg_stat_ssl");
    let (on_tls, all) = (row.get::<i64, _>("tls"), row.get::<i64, _>("all"));
    assert!(all >= 2, "auth's pool and this test are connected ({all} connections)");
    assert_eq!(on_tls, all, "every connection to the users database is TLS");

    // The whole COMPAT contract through the broker, every hop on TLS: `log` over HTTPS and
    // `/log-grpc` over gRPC-TLS to the logger, mail over HTTPS to the mailer, events over
    // AMQPS through RabbitMQ to the listener, the reads back over HTTPS.
    crate::contract::all_on(&cluster).await;
    // The broker's publisher and the listener's consumer both reached RabbitMQ over AMQPS.
    let amqps = tls.amqps.sessions.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        amqps >= 2,
        "{amqps} TLS sessions with RabbitMQ's front, expected the broker's and the listener's"
    );

    grpc_and_json_rpc_speak_tls_only(&cluster, &ca).await;
    troupe_logs_reads_an_https_broker_trusting_tls_ca_file(&cluster).await;
    troupe_health_checks_a_listener_on_tls(&cluster).await;
}

/// `troupe health` (the containers' HEALTHCHECK) with the service's environment: its
/// TLS_CERT_FILE set, the check speaks TLS and passes; without it, plain HTTP to the TLS
/// port fails; an `https://` URL passes.
async fn troupe_health_checks_a_listener_on_tls(cluster: &Cluster) {
    let tls = cluster.tls.as_ref().expect("a TLS cluster");
    let port = cluster.ports["logger"].to_string();
    let health = |args: &[&str], cert: bool| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
        cmd.arg("health").args(args).env("LOGGER_PORT", &port).env_remove("TLS_CERT_FILE").kill_on_drop(true);
        if cert {
            cmd.env("TLS_CERT_FILE", &tls.files.cert);
        }
        async move {
            let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await;
            let out = out.expect("troupe health ends").expect("troupe runs");
            (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    let (ok, said) = health(&["logger"], true).await;
    assert!(ok, "troupe health logger with TLS_CERT_FILE: {said}");
    let (ok, said) = health(&["--ready", "logger"], true).await;
    assert!(ok, "troupe health --ready logger with TLS_CERT_FILE: {said}");
    let (ok, said) = health(&["logger"], false).await;
    assert!(!ok, "plain HTTP to the TLS port passed: {said}");
    let (ok, said) = health(&[&format!("https://127.0.0.1:{port}/healthz")], false).await;
    assert!(ok, "troupe health https://: {said}");
}

/// `troupe logs` against the HTTPS broker: trusting TLS_CA_FILE, with a token (reads need one
/// on `serve broker`) it prints the entry; without the token it fails saying 401.
async fn troupe_logs_reads_an_https_broker_trusting_tls_ca_file(cluster: &Cluster) {
    let tls = cluster.tls.as_ref().expect("a TLS cluster");
    let name = format!("tls-cli-{}", uuid::Uuid::new_v4().simple());
    let (status, body) =
        parts(cluster.handle(&json!({"action": "log", "log": {"name": name, "data": "for the CLI"}})).await)
            .await;
    assert_eq!(status, 202, "{body}");
    cluster.stored(&name).await;
    let run = |token: Option<String>| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_troupe"));
        cmd.args(["logs", "--json", "--name", &name, "--url", &cluster.url("broker")])
            .env("TLS_CA_FILE", &tls.files.ca)
            .env_remove("TROUPE_TOKEN")
            .kill_on_drop(true);
        if let Some(token) = token {
            cmd.env("TROUPE_TOKEN", token);
        }
        async move { tokio::time::timeout(Duration::from_secs(30), cmd.output()).await }
    };
    let out = run(Some(admin_token())).await.expect("troupe logs ends").expect("troupe runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}{stderr}");
    let entry: Value = serde_json::from_str(stdout.lines().next().unwrap_or_default()).expect("a JSON line");
    assert_eq!((&entry["name"], &entry["data"]), (&json!(name), &json!("for the CLI")), "{stdout}");
    let out = run(None).await.expect("troupe logs ends").expect("troupe runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("401"), "without a token: {stderr}");
}

/// The logger's gRPC and JSON-RPC ports present the test certificate, serve over TLS and
/// refuse plaintext.
async fn grpc_and_json_rpc_speak_tls_only(cluster: &Cluster, ca: &str) {
    let leaf = &cluster.tls.as_ref().expect("a TLS cluster").leaf.der;
    let grpc: u16 = cluster.env["LOGGER_GRPC_PORT"].parse().expect("gRPC port");
    assert_eq!(&presented(grpc, ca).await, leaf, "the gRPC port presents the test leaf");
    let request = || LogRequest { log_entry: Some(Log { name: "tls-grpc-direct".into(), data: "d".into() }) };
    let endpoint = |scheme: &str| {
        tonic::transport::Endpoint::from_shared(format!("{scheme}://127.0.0.1:{grpc}"))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(5))
    };
    let plain = LogServiceClient::new(endpoint("http").connect_lazy()).write_log(request()).await;
    assert!(plain.is_err(), "the gRPC port answered plaintext h2: {plain:?}");
    let tls_config = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(ca))
        .domain_name("localhost");
    let channel = endpoint("https").tls_config(tls_config).expect("TLS config").connect_lazy();
    let reply = LogServiceClient::new(channel).write_log(request()).await.expect("gRPC over TLS");
    assert_eq!(reply.into_inner().result, "logged!");

    let rpc: u16 = cluster.env["LOGGER_RPC_PORT"].parse().expect("JSON-RPC port");
    let line = json!({"method": "RPCServer.LogInfo", "params": [{"Name": "tls-rpc", "Data": "d"}], "id": 7});
    let line = format!("{line}\n");
    let raw = plaintext_reply(rpc, line.as_bytes()).await;
    assert!(
        serde_json::from_slice::<Value>(raw.trim_ascii()).is_err(),
        "the JSON-RPC port answered plaintext: {}",
        String::from_utf8_lossy(&raw)
    );
    let mut tls = BufReader::new(tls_to(rpc, ca).await);
    assert_eq!(&tls.get_ref().get_ref().1.peer_certificates().expect("certs")[0].to_vec(), leaf);
    tls.get_mut().write_all(line.as_bytes()).await.expect("write over TLS");
    let mut reply = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), tls.read_line(&mut reply)).await;
    read.expect("a JSON-RPC reply within 5 s").expect("read over TLS");
    let reply: Value = serde_json::from_str(&reply).expect("a JSON reply");
    assert_eq!(reply, json!({"id": 7, "result": "Processed payload via RPC: tls-rpc", "error": null}));
}

/// The environment of a lone console process on `port` presenting `files`' certificate.
fn console_env(port: u16, files: &crate::cluster::TlsFiles, reload: &str) -> BTreeMap<String, String> {
    [
        ("BIND_ADDRESS", "127.0.0.1".to_owned()),
        ("RUST_LOG", "info".to_owned()),
        ("FRONTEND_PORT", port.to_string()),
        ("TLS_CERT_FILE", files.cert.display().to_string()),
        ("TLS_KEY_FILE", files.key.display().to_string()),
        ("TLS_RELOAD_INTERVAL", reload.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Wait until 127.0.0.1:`port` completes a TLS handshake (the process listens).
async fn listening(port: u16, ca: &str, child: &mut Child, log: &std::path::Path) {
    eventually(Duration::from_secs(20), &format!("a TLS listener on {port}"), || {
        if let Some(exit) = child.try_wait().expect("poll child") {
            panic!("exited ({exit}): {}", std::fs::read_to_string(log).unwrap_or_default());
        }
        async move {
            let tcp = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
            let name = ServerName::try_from("127.0.0.1").ok()?;
            connector(ca).connect(name, tcp).await.ok().map(|_| ())
        }
    })
    .await;
}

#[actix_web::test]
async fn a_new_certificate_is_served_after_sighup_or_when_its_files_change() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Troupe reload CA");
    let ca_pem = ca.pem();
    let (first, files) = ca.write(dir.path(), "first");

    // Checked once an hour: only SIGHUP reloads.
    let port = free_port();
    let log = dir.path().join("hup.log");
    let mut procs = Processes(vec![troupe_serve("frontend", &console_env(port, &files, "1h"), &log)]);
    listening(port, &ca_pem, &mut procs.0[0], &log).await;
    assert_eq!(presented(port, &ca_pem).await, first.der);
    let second = ca.issue("second");
    files.replace(&second);
    assert_eq!(presented(port, &ca_pem).await, first.der, "no reload before SIGHUP");
    let hup = |pid: u32| {
        let status = std::process::Command::new("kill").args(["-HUP", &pid.to_string()]).status();
        assert!(status.expect("run kill(1)").success(), "kill -HUP");
    };
    hup(procs.0[0].id());
    eventually(Duration::from_secs(10), "the second certificate after SIGHUP", || async {
        (presented(port, &ca_pem).await == second.der).then_some(())
    })
    .await;

    // A pair that does not load is refused and the one in use kept; the process lives on.
    std::fs::write(&files.cert, "not a certificate").expect("break the certificate");
    hup(procs.0[0].id());
    eventually(Duration::from_secs(10), "the failed reload logged", || async {
        std::fs::read_to_string(&log).ok().filter(|l| l.contains("TLS certificate not reloaded")).map(|_| ())
    })
    .await;
    assert!(procs.0[0].try_wait().expect("poll").is_none(), "a bad certificate file stopped the process");
    assert_eq!(presented(port, &ca_pem).await, second.der, "the pair in use is kept");

    // Checked every 200 ms: a changed pair is picked up without a signal.
    files.replace(&second);
    let port = free_port();
    let log = dir.path().join("poll.log");
    procs.0.push(troupe_serve("frontend", &console_env(port, &files, "200ms"), &log));
    listening(port, &ca_pem, &mut procs.0[1], &log).await;
    assert_eq!(presented(port, &ca_pem).await, second.der);
    let third = ca.issue("third");
    files.replace(&third);
    eventually(Duration::from_secs(10), "the third certificate without a signal", || async {
        (presented(port, &ca_pem).await == third.der).then_some(())
    })
    .await;
}

/// Run `troupe serve <service>` with `env` to its exit (within 20 s); its status code and
/// what it printed.
async fn start_up_fails(
    service: &str,
    env: &BTreeMap<String, String>,
    dir: &std::path::Path,
) -> (i32, String) {
    let log = dir.join(format!("{service}-{}.log", uuid::Uuid::new_v4().simple()));
    let mut procs = Processes(vec![troupe_serve(service, env, &log)]);
    let exit = eventually(Duration::from_secs(20), &format!("`troupe serve {service}` exits"), || {
        let exit = procs.0[0].try_wait().expect("poll child");
        async move { exit }
    })
    .await;
    (exit.code().unwrap_or(-1), std::fs::read_to_string(&log).unwrap_or_default())
}

#[actix_web::test]
async fn tls_misconfiguration_stops_start_up_naming_the_variable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("Troupe misconfigured CA");
    let (_, files) = ca.write(dir.path(), "leaf");
    let other = dir.path().join("other-key.pem");
    std::fs::write(&other, ca.issue("other").key_pem).expect("write another key");
    let base = console_env(free_port(), &files, "5s");
    let with = |changes: &[(&str, Option<&str>)]| {
        let mut env = base.clone();
        for (k, v) in changes {
            match v {
                Some(v) => env.insert((*k).to_owned(), (*v).to_owned()),
                None => env.remove(*k),
            };
        }
        env
    };
    let missing = dir.path().join("missing.pem").display().to_string();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "garbage").expect("write garbage");
    let garbage = garbage.display().to_string();
    let other = other.display().to_string();
    let cases: Vec<(&str, BTreeMap<String, String>, &str)> = vec![
        ("no certificate file", with(&[("TLS_CERT_FILE", Some(&missing))]), "TLS_CERT_FILE: cannot read"),
        (
            "a key of another certificate",
            with(&[("TLS_KEY_FILE", Some(&other))]),
            "does not fit TLS_CERT_FILE",
        ),
        (
            "a CA file that is not PEM",
            with(&[("TLS_CA_FILE", Some(&garbage))]),
            "TLS_CA_FILE: no certificate",
        ),
        ("a key without a certificate", with(&[("TLS_CERT_FILE", None)]), "set both or neither"),
    ];
    for (what, env, says) in cases {
        let (code, printed) = start_up_fails("frontend", &env, dir.path()).await;
        assert_ne!(code, 0, "{what}: started");
        assert!(printed.contains(says), "{what}: {printed:?} does not say {says:?}");
    }

    // A secret given twice (value and file) stops start-up naming both, not the secret.
    let secret = dir.path().join("rabbit-url");
    std::fs::write(&secret, "amqps://guest:guest@127.0.0.1:5671/%2f\n").expect("write the secret file");
    let mut env = with(&[]);
    env.insert("RABBIT_URL".into(), "amqps://guest:guest@127.0.0.1:5671/%2f".into());
    env.insert("RABBIT_URL_FILE".into(), secret.display().to_string());
    env.insert("LISTENER_PORT".into(), free_port().to_string());
    let (code, printed) = start_up_fails("listener", &env, dir.path()).await;
    assert_eq!(code, 2, "{printed}");
    assert!(printed.contains("RABBIT_URL and RABBIT_URL_FILE: set only one"), "{printed}");
    assert!(!printed.contains("guest:guest"), "the password leaked: {printed}");
}
