//! The readiness registry: each backend-owning actor reports its connection state here,
//! `GET /readyz` reads it, and [`Readiness::wait_ready`] waits on it (woken by every change,
//! never polling).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

/// Where a backend connection stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendState {
    /// Not connected yet, or reconnecting after a loss.
    Connecting,
    /// Connected and serving.
    Ready,
    /// Refused for a reason that retrying will not fix (a wrong vhost, bad credentials, a
    /// missing database): the settings or the server's set-up must change. Still retried,
    /// at the longest backoff delay, so a fix on the server side is picked up.
    Misconfigured,
}

/// One backend's status as shown by `/readyz`.
#[derive(Debug, Clone, Serialize)]
pub struct BackendStatus {
    /// Current state.
    pub state: BackendState,
    /// When it entered that state.
    pub since: DateTime<Utc>,
    /// Failed connection attempts since the last success.
    pub failed_attempts: u32,
    /// Why it is misconfigured, in words that name the setting to fix (never set for
    /// transient failures, whose details stay in the process's log).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Shared map of backend name -> status. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<Registry>);

#[derive(Debug)]
struct Registry {
    backends: Mutex<BTreeMap<String, BackendStatus>>,
    /// Bumped on every change, to wake [`Readiness::wait_ready`].
    changed: watch::Sender<u64>,
}

impl Default for Registry {
    fn default() -> Self {
        Self { backends: Mutex::default(), changed: watch::Sender::new(0) }
    }
}

impl Readiness {
    /// Register a backend (initially connecting) and return its probe.
    pub fn probe(&self, name: impl Into<String>) -> Probe {
        let name = name.into();
        let probe = Probe { name, registry: self.clone() };
        probe.set(BackendState::Connecting, 0);
        probe
    }

    /// A copy of every backend's status.
    pub fn snapshot(&self) -> BTreeMap<String, BackendStatus> {
        self.0.backends.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// True when every registered backend is ready.
    pub fn is_ready(&self) -> bool {
        self.snapshot().values().all(|s| s.state == BackendState::Ready)
    }

    /// Resolves once every registered backend is ready (at once if they are). Bound it
    /// with a timeout: a backend that never comes up keeps it waiting.
    pub async fn wait_ready(&self) {
        let mut changes = self.0.changed.subscribe();
        while !self.is_ready() {
            // The sender lives in the registry this borrows: it cannot close.
            let _ = changes.changed().await;
        }
    }
}

/// A backend's handle for reporting its state.
#[derive(Debug, Clone)]
pub struct Probe {
    name: String,
    registry: Readiness,
}

impl Probe {
    /// Record a new state (the timestamp changes only when the state does).
    pub fn set(&self, state: BackendState, failed_attempts: u32) {
        self.record(state, failed_attempts, None);
    }

    /// Record a permanent refusal, with the reason shown by `/readyz`.
    pub fn misconfigured(&self, failed_attempts: u32, reason: String) {
        self.record(BackendState::Misconfigured, failed_attempts, Some(reason));
    }

    fn record(&self, state: BackendState, failed_attempts: u32, error: Option<String>) {
        {
            let mut map = self.registry.0.backends.lock().unwrap_or_else(PoisonError::into_inner);
            let since = match map.get(&self.name) {
                Some(old) if old.state == state => old.since,
                _ => Utc::now(),
            };
            map.insert(self.name.clone(), BackendStatus { state, since, failed_attempts, error });
        }
        self.registry.0.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_backend_is() {
        let r = Readiness::default();
        assert!(r.is_ready(), "nothing registered is ready");
        let db = r.probe("auth.database");
        assert!(!r.is_ready());
        db.set(BackendState::Ready, 0);
        assert!(r.is_ready());
        db.set(BackendState::Connecting, 3);
        assert_eq!(r.snapshot()["auth.database"].failed_attempts, 3);
        assert!(!r.is_ready());
    }

    #[tokio::test]
    async fn waiting_for_readiness_ends_when_the_last_backend_connects() {
        let r = Readiness::default();
        let (db, store) = (r.probe("auth.database"), r.probe("logger.store"));
        let waiter = tokio::spawn({
            let r = r.clone();
            async move { r.wait_ready().await }
        });
        db.set(BackendState::Ready, 0);
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "one backend is still connecting");
        store.set(BackendState::Ready, 0);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken once every backend is ready")
            .expect("the waiter ran");
    }
}
