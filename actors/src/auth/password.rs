//! bcrypt hashing and verification on a bounded pool ([`HashPool`]), never on an async worker.
//!
//! A cost-12 bcrypt takes about 250 ms of one core. Unbounded, a burst of logins takes every
//! core and every other route (log writes, events, mail) waits behind them. The pool runs at
//! most `workers` hashes at once (by default one core fewer than the machine has, at least
//! one) and lets at most `queue` more wait; beyond that a caller is refused at once with
//! [`HashError::Busy`] (503 in the envelope), which costs nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;
use tracing::Span;

/// Cost of new hashes; the Go platform used 12 too.
pub const COST: u32 = 12;

/// A cost-12 hash of a password nobody has. Unknown emails are verified against it so that
/// they take as long as a wrong password and timing does not reveal which emails exist.
pub const DUMMY_HASH: &str = "$2a$12$UHAcMp/rRDUapUfnhRC8vO1KdoS1tyOyzMpiqJWBFQbWIC.l5Ft2e";

/// Why a password could not be checked or hashed.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// Every worker is busy and the queue is full: try again shortly.
    #[error("too many passwords waiting to be checked")]
    Busy,
    /// bcrypt failed (a bug, or the worker thread died).
    #[error("hashing failed: {0}")]
    Failed(String),
}

/// The bounded pool bcrypt runs on; cheap to clone (clones share the pool).
#[derive(Clone, Debug)]
pub struct HashPool {
    inner: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    /// One permit per hash running.
    running: Arc<Semaphore>,
    /// One permit per hash running or waiting.
    admitted: Arc<Semaphore>,
    /// Hashes run so far (verifications and new hashes).
    runs: AtomicU64,
}

impl HashPool {
    /// At most `workers` hashes at once (0: one core fewer than the machine has, at least
    /// one), and at most `queue` more waiting.
    pub fn new(workers: usize, queue: usize) -> Self {
        let workers = if workers == 0 { default_workers() } else { workers };
        Self {
            inner: Arc::new(Pool {
                running: Arc::new(Semaphore::new(workers)),
                admitted: Arc::new(Semaphore::new(workers + queue)),
                runs: AtomicU64::new(0),
            }),
        }
    }

    /// Run `work` on a blocking thread once a worker is free; `Busy` at once when the queue
    /// is full. A caller that stops waiting does not free the worker before `work` ends.
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, HashError> {
        let admitted = Arc::clone(&self.inner.admitted).try_acquire_owned().map_err(|_| HashError::Busy)?;
        let running = Arc::clone(&self.inner.running)
            .acquire_owned()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let span = Span::current();
        self.inner.runs.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            let _permits = (admitted, running);
            span.in_scope(work)
        })
        .await
        .map_err(|e| HashError::Failed(e.to_string()))
    }

    /// How many hashes (verifications and new hashes) this pool has run.
    pub fn runs(&self) -> u64 {
        self.inner.runs.load(Ordering::Relaxed)
    }

    /// Whether `password` matches `hash` (`$2a$`, `$2b$` and `$2y$` hashes all verify).
    pub async fn verify(&self, password: SecretString, hash: String) -> Result<bool, HashError> {
        self.run(move || bcrypt::verify(password.expose_secret(), &hash).unwrap_or(false)).await
    }

    /// Hash a new password.
    pub async fn hash(&self, password: SecretString) -> Result<String, HashError> {
        self.run(move || bcrypt::hash(password.expose_secret(), COST))
            .await?
            .map_err(|e| HashError::Failed(e.to_string()))
    }
}

impl Default for HashPool {
    /// The default size: one core fewer than the machine has, and 32 waiting.
    fn default() -> Self {
        Self::new(0, DEFAULT_QUEUE)
    }
}

/// Hashes that may wait for a worker by default.
pub const DEFAULT_QUEUE: usize = 32;

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from).saturating_sub(1).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seeded admin's hash as the Go platform made it (`$2a$12$`).
    const GO_HASH: &str = "$2a$12$/Swbp/sBqq6JuExkCGSCeOkvuzc2pdhfkI5cOQNrjbZRZCtCiLQna";

    #[tokio::test]
    async fn go_hashes_verify_and_wrong_passwords_do_not() {
        assert!(HashPool::default().verify("verysecret".into(), GO_HASH.into()).await.expect("checked"));
        assert!(!HashPool::default().verify("verysecreT".into(), GO_HASH.into()).await.expect("checked"));
        assert!(!HashPool::default().verify("anything".into(), "not a hash".into()).await.expect("checked"));
    }

    #[tokio::test]
    async fn the_dummy_hash_has_the_same_cost_and_matches_nothing_typed() {
        assert!(DUMMY_HASH.starts_with("$2a$12$"));
        assert!(!HashPool::default().verify("verysecret".into(), DUMMY_HASH.into()).await.expect("checked"));
    }

    #[tokio::test]
    async fn new_hashes_verify() {
        let h = HashPool::default().hash("correct horse".into()).await.expect("hashes");
        assert!(h.starts_with("$2b$12$"));
        assert!(HashPool::default().verify("correct horse".into(), h).await.expect("checked"));
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once_and_a_freed_worker_serves_again() {
        let pool = HashPool::new(1, 0);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let first = tokio::spawn({
            let pool = pool.clone();
            async move {
                pool.run(move || {
                    let _ = started_tx.send(());
                    release_rx.recv().is_ok()
                })
                .await
            }
        });
        started.await.expect("the first hash runs");
        assert!(matches!(HashPool::verify(&pool, "x".into(), DUMMY_HASH.into()).await, Err(HashError::Busy)));
        release.send(()).expect("the first hash waits");
        assert!(first.await.expect("joins").expect("ran"));
        assert!(!pool.verify("x".into(), DUMMY_HASH.into()).await.expect("a free worker serves"));
    }
}
