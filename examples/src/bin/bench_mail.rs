//! Benchmark of the mailer's SMTP sessions (`make bench-mail`): `BENCH_MAILS` mails (default
//! 2000), 8 in flight, through the mailer's lettre transport and delivery loop, once with one
//! SMTP session per mail (pool size 0: the transport before pooling) and once pooled (8
//! sessions), over plain SMTP and over STARTTLS with a self-signed certificate, to two real
//! SMTP servers on loopback: the built-in catcher (stores every mail on disk, as under
//! `troupe up`) and a mailin server that accepts and discards (so the client's own cost
//! shows). A TCP proxy in front of the server counts the sessions opened. A last row runs
//! the discarding server with 32 pooled sessions and 32 mails in flight.

use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use troupe_actors::catcher::{self, CatcherStore};
use troupe_actors::mailer::{MailerConfig, Transport, deliver};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::{MailEncryption, MailerSettings};
use troupe_core::messages::MailRequest;
use troupe_testkit::{TcpProxy, self_signed_cert};

/// `(label, pool size, mails in flight)` of each run against one server.
const RUNS: [(&str, u32, usize); 2] = [("one per mail", 0, 8), ("pooled, 8", 8, 8)];

/// An SMTP handler that accepts every mail and keeps nothing.
#[derive(Clone)]
struct Discard;

impl mailin_embedded::Handler for Discard {}

/// Serve SMTP on `listener` with mailin, discarding, with STARTTLS when `tls` is given.
fn start_discarding(listener: std::net::TcpListener, tls: Option<(&Path, &Path)>) -> anyhow::Result<()> {
    let ssl = match tls {
        Some((cert, key)) => mailin_embedded::SslConfig::SelfSigned {
            cert_path: cert.display().to_string(),
            key_path: key.display().to_string(),
        },
        None => mailin_embedded::SslConfig::None,
    };
    let mut server = mailin_embedded::Server::new(Discard);
    server
        .with_ssl(ssl)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .with_num_threads(64)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        if let Err(e) = server.serve() {
            eprintln!("the discarding SMTP server stopped: {e}");
        }
    });
    Ok(())
}

/// Send `n` mails through `transport`, `in_flight` at a time.
async fn send_all(
    config: &MailerConfig,
    transport: &Transport,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<()> {
    stream::iter(0..n)
        .map(|i| {
            let request = MailRequest {
                from: String::new(),
                to: "you@there.com".into(),
                subject: format!("bench {i}"),
                message: "Tom & Jerry's <b>show</b>".into(),
            };
            async move {
                let mail = config.compose(&request.parse()?)?;
                deliver(transport, &mail, config.backoff, config.timeout * 2, None)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))
            }
        })
        .buffer_unordered(in_flight)
        .try_collect::<()>()
        .await
}

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("BENCH_MAILS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    println!("{n} mails per run, SMTP servers on loopback\n");
    println!("| server | connection | sessions | in flight | mails/s | SMTP sessions opened |");
    println!("|---|---|---|---|---|---|");
    let servers = [("catcher", false), ("catcher", true), ("discarding", false), ("discarding", true)];
    for (i, (server, tls)) in servers.into_iter().enumerate() {
        let runs: &[(&str, u32, usize)] =
            if i == 2 { &[RUNS[0], RUNS[1], ("pooled, 32", 32, 32)] } else { &RUNS };
        let dir = tempfile::tempdir()?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let smtp = listener.local_addr()?;
        let cert = tls.then(|| self_signed_cert(dir.path()));
        let tls_files = cert.as_ref().map(|(c, k)| (c.as_path(), k.as_path()));
        if server == "catcher" {
            let store = CatcherStore::start(dir.path().join("catcher")).map_err(anyhow::Error::msg)?;
            catcher::start_smtp(listener, store, tls_files).map_err(anyhow::Error::msg)?;
        } else {
            start_discarding(listener, tls_files)?;
        }
        let proxy = TcpProxy::start(smtp).await;

        let mut settings =
            MailerSettings { mail_host: Some("localhost".into()), ..MailerSettings::local(proxy.port) };
        settings.mail_timeout = Duration::from_secs(10);
        if let Some((cert, _)) = &cert {
            settings.mail_encryption = MailEncryption::Tls;
            settings.mail_tls_ca_file = Some(cert.clone());
        }
        let mut config =
            MailerConfig::from_settings(&settings, BackoffPolicy::default()).map_err(anyhow::Error::msg)?;
        for &(label, size, in_flight) in runs {
            config.pool_size = size;
            let transport = config.transport()?;
            let (before, start) = (proxy.accepted(), Instant::now());
            send_all(&config, &transport, n, in_flight).await?;
            let rate = n as f64 / start.elapsed().as_secs_f64();
            let encryption = if tls { "STARTTLS" } else { "plain" };
            let opened = proxy.accepted() - before;
            println!("| {server} | {encryption} | {label} | {in_flight} | {rate:.0} | {opened} |");
        }
    }
    Ok(())
}
