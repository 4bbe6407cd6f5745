//! Starting services: the actors, then their HTTP servers, for `troupe up` (everything in
//! one process) and `troupe serve <service>` (one service per process).
//!
//! Every function binds its own listener, so tests pass port 0 and read the bound port back.

use std::net::{IpAddr, TcpListener};

use actix::{Actor, Addr, Recipient};
use anyhow::Context as _;
use futures_util::future::try_join_all;
use troupe_actors::auth::{AuthActor, AuthConfig};
use troupe_core::config::{AuthSettings, BrokerSettings, CommonSettings, FrontendSettings, UpstreamSettings};
use troupe_core::health::Readiness;
use troupe_core::messages::Authenticate;

use crate::api::{RunningServer, ServerOptions, serve};
use crate::auth::AuthState;
use crate::broker::BrokerState;
use crate::proxy::AuthProxy;
use crate::status::StatusSource;

/// The servers running in this process.
pub struct Platform {
    /// One per service.
    pub servers: Vec<RunningServer>,
    /// Backend states of this process.
    pub readiness: Readiness,
}

impl Platform {
    /// The port a service got.
    pub fn port(&self, name: &str) -> Option<u16> {
        self.servers.iter().find(|s| s.name == name).map(|s| s.port)
    }

    /// Serve until SIGTERM / Ctrl-C; every server drains its in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        try_join_all(self.servers.into_iter().map(RunningServer::run_until_stopped)).await.map(drop)
    }
}

/// Bind `addr:port`; the error names the variable that chose the port.
pub fn bind(addr: IpAddr, port: u16, variable: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind((addr, port)).with_context(|| format!("{variable}: cannot listen on {addr}:{port}"))
}

fn options(common: &CommonSettings, readiness: &Readiness, cors_origins: &[String]) -> ServerOptions {
    ServerOptions {
        cors_origins: cors_origins.to_vec(),
        shutdown_timeout: common.shutdown_timeout,
        readiness: readiness.clone(),
    }
}

/// Start the auth actor and its HTTP server. `ephemeral_key`: allow a random JWT key.
pub fn start_auth(
    common: &CommonSettings,
    settings: &AuthSettings,
    readiness: &Readiness,
    ephemeral_key: bool,
) -> anyhow::Result<(Addr<AuthActor>, RunningServer)> {
    let config =
        AuthConfig::from_settings(settings, common.backoff(), ephemeral_key).map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.auth_port, "AUTH_PORT")?;
    let keys = config.keys.clone();
    let actor = AuthActor::start(config, readiness);
    let state = AuthState { actor: actor.clone(), keys, timeout: settings.db_timeout * 3 };
    let server = serve("auth", listener, options(common, readiness, &[]), crate::auth::routes(state))?;
    Ok((actor, server))
}

/// Start the broker, sending `auth` actions to `auth`.
pub fn start_broker(
    common: &CommonSettings,
    settings: &BrokerSettings,
    auth: Recipient<Authenticate>,
    readiness: &Readiness,
    status: StatusSource,
) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.broker_port, "BROKER_PORT")?;
    let state = BrokerState { auth, timeout: settings.request_timeout };
    let (broker, status) = (crate::broker::routes(state), crate::status::routes(status));
    Ok(serve(
        "broker",
        listener,
        options(common, readiness, &settings.cors_allowed_origins),
        move |cfg: &mut actix_web::web::ServiceConfig| {
            broker(cfg);
            status(cfg);
        },
    )?)
}

/// Start the web console.
pub fn start_frontend(common: &CommonSettings, settings: &FrontendSettings) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.frontend_port, "FRONTEND_PORT")?;
    let routes = troupe_frontend::routes(troupe_frontend::ConsoleUrls {
        broker: settings.broker_url.to_string(),
        catcher: settings.catcher_url.to_string(),
    });
    Ok(serve("frontend", listener, options(common, &Readiness::default(), &[]), routes)?)
}

/// `troupe up`: every service in this process, actors addressed directly.
pub fn up(
    common: &CommonSettings,
    broker: &BrokerSettings,
    auth: &AuthSettings,
    frontend: &FrontendSettings,
) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let (auth_actor, auth_server) = start_auth(common, auth, &readiness, true)?;
    let services = ["broker", "auth", "frontend"].map(String::from).to_vec();
    let status = StatusSource::Local { readiness: readiness.clone(), services };
    let broker_server = start_broker(common, broker, auth_actor.recipient(), &readiness, status)?;
    let frontend_server = start_frontend(common, frontend)?;
    Ok(Platform { servers: vec![broker_server, frontend_server, auth_server], readiness })
}

/// `troupe serve broker`: the broker alone, reaching the services over HTTP.
pub fn serve_broker(
    common: &CommonSettings,
    broker: &BrokerSettings,
    upstream: &UpstreamSettings,
) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let auth = AuthProxy::new(&upstream.auth_url, broker.request_timeout).context("AUTH_URL")?.start();
    let status = StatusSource::remote(vec![("auth".into(), upstream.auth_url.clone())]);
    let server = start_broker(common, broker, auth.recipient(), &readiness, status)?;
    Ok(Platform { servers: vec![server], readiness })
}

/// `troupe serve auth`: the authentication service alone.
pub fn serve_auth(common: &CommonSettings, auth: &AuthSettings) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let (_, server) = start_auth(common, auth, &readiness, false)?;
    Ok(Platform { servers: vec![server], readiness })
}

/// `troupe serve frontend`: the console alone.
pub fn serve_frontend(common: &CommonSettings, frontend: &FrontendSettings) -> anyhow::Result<Platform> {
    let server = start_frontend(common, frontend)?;
    Ok(Platform { servers: vec![server], readiness: Readiness::default() })
}
