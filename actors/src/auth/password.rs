//! bcrypt hashing and verification, always on the blocking pool (never on an async worker).

use secrecy::{ExposeSecret, SecretString};
use tracing::Span;

/// Cost of new hashes; the Go platform used 12 too.
pub const COST: u32 = 12;

/// A cost-12 hash of a password nobody has. Unknown emails are verified against it so that
/// they take as long as a wrong password and timing does not reveal which emails exist.
pub const DUMMY_HASH: &str = "$2a$12$UHAcMp/rRDUapUfnhRC8vO1KdoS1tyOyzMpiqJWBFQbWIC.l5Ft2e";

/// Whether `password` matches `hash` (`$2a$`, `$2b$` and `$2y$` hashes all verify).
pub async fn verify(password: SecretString, hash: String) -> bool {
    let span = Span::current();
    tokio::task::spawn_blocking(move || {
        span.in_scope(|| bcrypt::verify(password.expose_secret(), &hash).unwrap_or(false))
    })
    .await
    .unwrap_or(false)
}

/// Hash a new password.
pub async fn hash(password: SecretString) -> anyhow::Result<String> {
    let span = Span::current();
    let hashed =
        tokio::task::spawn_blocking(move || span.in_scope(|| bcrypt::hash(password.expose_secret(), COST)))
            .await??;
    Ok(hashed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeded admin's hash as the Go platform made it (`$2a$12$`).
    const GO_HASH: &str = "$2a$12$/Swbp/sBqq6JuExkCGSCeOkvuzc2pdhfkI5cOQNrjbZRZCtCiLQna";

    #[tokio::test]
    async fn go_hashes_verify_and_wrong_passwords_do_not() {
        assert!(verify("verysecret".into(), GO_HASH.into()).await);
        assert!(!verify("verysecreT".into(), GO_HASH.into()).await);
        assert!(!verify("anything".into(), "not a hash".into()).await);
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_same_cost_and_matches_nothing_typed() {
        assert!(DUMMY_HASH.starts_with("$2a$12$"));
        assert!(!verify("verysecret".into(), DUMMY_HASH.into()).await);
    }

    #[tokio::test]
    async fn new_hashes_verify() {
        let h = hash("correct horse".into()).await.expect("hashes");
        assert!(h.starts_with("$2b$12$"));
        assert!(verify("correct horse".into(), h).await);
    }
}
