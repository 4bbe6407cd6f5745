//! Send a mail through the mailer actor directly, without HTTP.
//!
//! With `MAIL_HOST` set it sends there (`MAIL_PORT`, default 1025, plain SMTP); otherwise it
//! starts the built-in catcher in a temporary directory, sends to it over SMTP and prints
//! what the catcher received.
//!
//! `cargo run -p troupe-examples --example send_mail -- you@there.com "Hello" "Tom & Jerry's"`

use std::net::TcpListener;

use troupe_actors::catcher::{self, CatcherStore};
use troupe_actors::mailer::{Mailer, MailerConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::MailerSettings;
use troupe_core::health::Readiness;
use troupe_core::messages::{ListCaught, MailRequest};

#[actix::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let request = MailRequest {
        from: String::new(),
        to: args.next().unwrap_or_else(|| "you@there.com".into()),
        subject: args.next().unwrap_or_else(|| "Test email".into()),
        message: args.next().unwrap_or_else(|| "Tom & Jerry's\nHello world!".into()),
    };
    let msg = request.parse()?;

    let dir = tempfile::tempdir()?;
    let (settings, store) = match std::env::var("MAIL_HOST") {
        Ok(host) => {
            let port = std::env::var("MAIL_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(1025);
            (MailerSettings { mail_host: Some(host), ..MailerSettings::local(port) }, None)
        }
        Err(_) => {
            let store = CatcherStore::start(dir.path().to_owned()).map_err(anyhow::Error::msg)?;
            let listener = TcpListener::bind("127.0.0.1:0")?;
            let port = listener.local_addr()?.port();
            catcher::start_smtp(listener, store.clone(), None).map_err(anyhow::Error::msg)?;
            (MailerSettings::local(port), Some(store))
        }
    };

    let readiness = Readiness::default();
    let config =
        MailerConfig::from_settings(&settings, BackoffPolicy::default()).map_err(anyhow::Error::msg)?;
    let mailer = Mailer::start(config, &readiness);
    // The actor answers "unavailable" until its first SMTP connection test has passed.
    tokio::time::timeout(std::time::Duration::from_secs(10), readiness.wait_ready())
        .await
        .map_err(|_| anyhow::anyhow!("the SMTP server did not answer within 10 s"))?;
    mailer.send(msg).await??;
    println!("sent through {}", server(&settings));

    if let Some(store) = store {
        for mail in store.send(ListCaught).await?? {
            println!(
                "caught {}: {} -> {:?}: {:?} ({} bytes)",
                mail.id, mail.from, mail.to, mail.subject, mail.size
            );
        }
    }
    Ok(())
}

fn server(settings: &MailerSettings) -> String {
    format!("{}:{}", settings.mail_host.as_deref().unwrap_or("?"), settings.mail_port)
}
