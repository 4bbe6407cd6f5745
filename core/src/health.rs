//! The readiness registry: each backend-owning actor reports its connection state here,
//! `GET /readyz` reads it, and [`Readiness::wait_ready`] waits on it (woken by every change,
//! never polling).
//!
//! The registry also carries the process's [`Metrics`]: both are made once per process and
//! reach every actor the same way. Its backends are exported at scrape time as
//! `troupe_backend_up{backend}` and `troupe_actor_restarts_total{actor}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::watch;

use crate::metrics::{Family, Metrics, ReadOnScrape};

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
    /// Times the actor owning it was restarted by its supervisor (each reconnect attempt
    /// after the first start); exported as `troupe_actor_restarts_total`.
    #[serde(skip)]
    pub restarts: u64,
}

/// Shared map of backend name -> status, and the process's metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Readiness(Arc<Registry>);

#[derive(Debug)]
struct Registry {
    backends: Mutex<BTreeMap<String, BackendStatus>>,
    /// Bumped on every change, to wake [`Readiness::wait_ready`].
    changed: watch::Sender<u64>,
    metrics: Metrics,
}

impl Default for Readiness {
    fn default() -> Self {
        Self::with_metrics(Metrics::default())
    }
}

impl Readiness {
    /// A registry reporting to `metrics` (its backends exported at scrape time).
    pub fn with_metrics(metrics: Metrics) -> Self {
        let readiness = Self::ungated_with(metrics.clone());
        let weak = Arc::downgrade(&readiness.0);
        let families = [
            Family {
                name: "backend_up",
                help: "1 when the backend is connected",
                counter: false,
                labels: &["backend"],
            },
            Family {
                name: "actor_restarts_total",
                help: "Restarts of the actor owning a backend (each reconnect attempt)",
                counter: true,
                labels: &["actor"],
            },
        ];
        if let Ok(collector) = ReadOnScrape::new(&families, move || read_backends(&weak)) {
            metrics.register(collector);
        }
        readiness
    }

    /// A registry of its own (not `/readyz`'s) sharing this one's metrics: for a backend
    /// that must not gate readiness.
    pub fn ungated(&self) -> Self {
        Self::ungated_with(self.0.metrics.clone())
    }

    fn ungated_with(metrics: Metrics) -> Self {
        Self(Arc::new(Registry { backends: Mutex::default(), changed: watch::Sender::new(0), metrics }))
    }

    /// The process's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

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
            let restarts = map.get(&self.name).map_or(0, |old| old.restarts);
            let status = BackendStatus { state, since, failed_attempts, error, restarts };
            map.insert(self.name.clone(), status);
        }
        self.registry.0.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Count one restart of the actor owning the backend.
    pub fn restarted(&self) {
        let mut map = self.registry.0.backends.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(status) = map.get_mut(&self.name) {
            status.restarts += 1;
        }
    }

    /// The backend's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The readings of `troupe_backend_up` and `troupe_actor_restarts_total`.
fn read_backends(registry: &Weak<Registry>) -> Vec<crate::metrics::Reading> {
    let Some(registry) = registry.upgrade() else { return Vec::new() };
    let map = registry.backends.lock().unwrap_or_else(PoisonError::into_inner);
    map.iter()
        .flat_map(|(name, s)| {
            let up = i64::from(s.state == BackendState::Ready);
            [
                (0, vec![name.clone()], up),
                (1, vec![name.clone()], i64::try_from(s.restarts).unwrap_or(i64::MAX)),
            ]
        })
        .collect()
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
