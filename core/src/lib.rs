//! Troupe's shared vocabulary, used by every other crate and free of I/O.
//!
//! - [`envelope`]: the `{"error","message","data"}` JSON reply every service speaks.
//! - [`error`]: [`ServiceError`], the one error type that crosses service boundaries.
//! - [`domain`]: parsed domain types (`Email`, `Password`, `User`, tokens).
//! - [`messages`]: the actor messages that are the contract between services.
//! - [`config`]: typed settings read from the environment (names compatible with the Go platform).
//! - [`backoff`]: the reconnect policy every supervised actor uses.
//! - [`health`]: the readiness registry behind `GET /readyz`.
//! - [`metrics`]: the process's Prometheus registry and the platform's metric families.
//! - [`telemetry`]: one `tracing` subscriber setup, filtered by `RUST_LOG`.

pub mod backoff;
pub mod config;
pub mod domain;
pub mod envelope;
pub mod error;
pub mod health;
pub mod limits;
pub mod messages;
pub mod metrics;
pub mod request_id;
pub mod telemetry;

pub use envelope::Envelope;
pub use error::ServiceError;
pub use request_id::RequestId;
