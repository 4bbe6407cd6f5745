//! `GET /status` on the broker: every service's readiness and backend states, for the web
//! console's health view.
//!
//! In `troupe up` every actor reports to the process's one [`Readiness`], so the broker reads
//! it directly and groups backends by service (the part of a backend's name before the first
//! `.`). In split mode each service runs elsewhere: the broker asks each configured service's
//! `/readyz`, with a short deadline, and reports what it heard (an unreachable service is not
//! ready).

use std::collections::BTreeMap;
use std::time::Duration;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use futures_util::future::join_all;
use serde::Serialize;
use serde_json::{Map, Value};
use troupe_core::Envelope;
use troupe_core::health::Readiness;
use url::Url;

use crate::api::reply;

/// Deadline for each `/readyz` call in split mode.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Where the broker learns the services' states.
#[derive(Clone)]
pub enum StatusSource {
    /// Every service runs in this process: read the shared registry. `services` are listed
    /// even when they own no backend.
    Local {
        /// The process's readiness registry.
        readiness: Readiness,
        /// Names of the services running in this process.
        services: crate::platform::ServiceNames,
    },
    /// Services run in their own processes: ask each one's `/readyz`.
    Remote {
        /// Service name and base URL, in display order.
        services: Vec<(String, Url)>,
        /// Client used for the probes.
        client: reqwest::Client,
    },
}

impl StatusSource {
    /// Status of services reached over HTTP, each probed with [`PROBE_TIMEOUT`].
    pub fn remote(services: Vec<(String, Url)>) -> anyhow::Result<Self> {
        Ok(Self::Remote { services, client: crate::proxy::client(PROBE_TIMEOUT)? })
    }
}

/// One service as shown by `/status`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServiceStatus {
    /// True when every backend of the service is ready (and, remotely, it answered).
    pub ready: bool,
    /// Backend name -> status, as `/readyz` reports it.
    pub backends: Map<String, Value>,
    /// Why a remote service could not be asked, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /status`.
pub fn routes(source: StatusSource) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(source.clone())).route("/status", web::get().to(status));
    }
}

/// Every service's readiness and backend states (the console's health view).
#[utoipa::path(get, path = "/status", tag = "broker", security((), ("bearer" = [])),
    responses((status = 200, description = "Each service's `ready` and `backends` in `data`", body = Envelope),
        (status = 401, description = "No valid bearer token where reads need one (`READ_AUTH`)", body = Envelope),
        (status = 503, description = "Auth cannot check the token", body = Envelope)))]
async fn status(source: web::Data<StatusSource>, _reader: crate::reads::Reader) -> HttpResponse {
    let services = match source.get_ref() {
        StatusSource::Local { readiness, services } => local(readiness, &services.list()),
        StatusSource::Remote { services, client } => remote(client, services).await,
    };
    reply(StatusCode::OK, Envelope::with_data("status", serde_json::json!({ "services": services })))
}

/// Group the registry's backends by service.
pub fn local(readiness: &Readiness, services: &[String]) -> BTreeMap<String, ServiceStatus> {
    let mut out: BTreeMap<String, ServiceStatus> = services
        .iter()
        .map(|s| (s.clone(), ServiceStatus { ready: true, backends: Map::new(), error: None }))
        .collect();
    for (name, backend) in readiness.snapshot() {
        let service = name.split('.').next().unwrap_or(&name).to_owned();
        let entry =
            out.entry(service).or_insert(ServiceStatus { ready: true, backends: Map::new(), error: None });
        entry.ready &= backend.state == troupe_core::health::BackendState::Ready;
        entry.backends.insert(name, serde_json::to_value(backend).unwrap_or(Value::Null));
    }
    out
}

async fn remote(client: &reqwest::Client, services: &[(String, Url)]) -> BTreeMap<String, ServiceStatus> {
    let probes = services.iter().map(|(name, base)| async move { (name.clone(), probe(client, base).await) });
    let mut out: BTreeMap<String, ServiceStatus> = join_all(probes).await.into_iter().collect();
    out.insert("broker".into(), ServiceStatus { ready: true, backends: Map::new(), error: None });
    out
}

async fn probe(client: &reqwest::Client, base: &Url) -> ServiceStatus {
    let url = format!("{}/readyz", base.as_str().trim_end_matches('/'));
    let down = |error: String| ServiceStatus { ready: false, backends: Map::new(), error: Some(error) };
    let res = match client.get(&url).send().await {
        Ok(res) => res,
        Err(e) if e.is_timeout() => return down("no answer in time".into()),
        Err(_) => return down("unreachable".into()),
    };
    let ready = res.status().is_success();
    match res.json::<Envelope>().await {
        Ok(env) => {
            let backends = match env.data {
                Some(Value::Object(map)) => map,
                _ => Map::new(),
            };
            ServiceStatus { ready, backends, error: None }
        }
        Err(_) => down("unreadable /readyz reply".into()),
    }
}

/// `GET /status`, for [`crate::openapi`].
#[derive(utoipa::OpenApi)]
#[openapi(paths(status))]
pub(crate) struct Doc;

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_core::health::BackendState;

    #[test]
    fn local_status_groups_backends_by_service() {
        let readiness = Readiness::default();
        let db = readiness.probe("auth.database");
        readiness.probe("logger.store").set(BackendState::Ready, 0);
        db.set(BackendState::Connecting, 2);
        let status = local(&readiness, &["broker".into(), "auth".into()]);
        assert!(status["broker"].ready && status["broker"].backends.is_empty());
        assert!(!status["auth"].ready);
        assert_eq!(status["auth"].backends["auth.database"]["failed_attempts"], 2);
        assert!(status["logger"].ready);
    }
}
