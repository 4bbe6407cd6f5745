//! Start the authentication actor on a temporary SQLite store and authenticate the seeded
//! user, with no HTTP in between: the same messages the broker sends.
//!
//! `cargo run -p troupe-examples --bin auth`

use std::time::Duration;

use troupe_actors::auth::{AuthActor, AuthConfig};
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::AuthSettings;
use troupe_core::health::Readiness;
use troupe_core::messages::Authenticate;

#[actix_rt::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = AuthSettings::embedded(dir.path(), "example-secret-example-secret-0123".into());
    let config =
        AuthConfig::from_settings(&settings, BackoffPolicy::default(), false).map_err(anyhow::Error::msg)?;
    let readiness = Readiness::default();
    let auth = AuthActor::start(config, &readiness);

    // The actor connects (and migrates) in the background; wait until it reports ready.
    tokio::time::timeout(Duration::from_secs(15), readiness.wait_ready())
        .await
        .map_err(|_| anyhow::anyhow!("the user store did not become ready"))?;

    for password in ["verysecret", "wrong"] {
        let login = Authenticate {
            email: "admin@example.com".into(),
            password: password.into(),
            request_id: None,
            span: tracing::Span::none(),
        };
        let reply = auth.send(login).await?;
        match reply {
            Ok(done) => println!(
                "{password:>10}: authenticated {} (id {}), token expires in {} s",
                done.user.email, done.user.id, done.token.expires_in
            ),
            Err(err) => println!("{password:>10}: {err}"),
        }
    }
    Ok(())
}
