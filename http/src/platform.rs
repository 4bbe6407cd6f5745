//! Starting services: the actors, then their HTTP servers, for `troupe up` (everything in
//! one process) and `troupe serve <service>` (one service per process).
//!
//! Every function binds its own listener, so tests pass port 0 and read the bound port back.

use std::net::{IpAddr, TcpListener};

use actix::{Actor, Addr, Recipient};
use anyhow::Context as _;
use futures_util::future::try_join_all;
use secrecy::SecretString;
use troupe_actors::auth::{AuthActor, AuthConfig};
use troupe_actors::events::bus::EventBus;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::{ListenerStats, Sink};
use troupe_core::config::{
    AuthSettings, BrokerSettings, CommonSettings, EventSettings, FrontendSettings, ListenerSettings,
    UpstreamSettings,
};
use troupe_core::health::Readiness;
use troupe_core::messages::{Authenticate, PublishEvent};

use crate::api::{RunningServer, ServerOptions, serve};
use crate::auth::AuthState;
use crate::broker::BrokerState;
use crate::events::ListenerState;
use crate::proxy::AuthProxy;

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
    events: Option<Recipient<PublishEvent>>,
    readiness: &Readiness,
) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.broker_port, "BROKER_PORT")?;
    let state = BrokerState { auth, events, timeout: settings.request_timeout };
    Ok(serve(
        "broker",
        listener,
        options(common, readiness, &settings.cors_allowed_origins),
        crate::broker::routes(state),
    )?)
}

/// Start the web console.
pub fn start_frontend(common: &CommonSettings, settings: &FrontendSettings) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.frontend_port, "FRONTEND_PORT")?;
    let routes = troupe_frontend::routes(settings.broker_url.to_string());
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
    let broker_server = start_broker(common, broker, auth_actor.recipient(), None, &readiness)?;
    let frontend_server = start_frontend(common, frontend)?;
    Ok(Platform { servers: vec![broker_server, frontend_server, auth_server], readiness })
}

/// `troupe serve broker`: the broker alone, reaching the services over HTTP.
/// `events` gives the broker its own RabbitMQ publisher (without `RABBIT_URL` the `event`
/// action answers 503).
pub fn serve_broker(
    common: &CommonSettings,
    broker: &BrokerSettings,
    upstream: &UpstreamSettings,
    events: &EventSettings,
) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let auth = AuthProxy::new(&upstream.auth_url, broker.request_timeout).context("AUTH_URL")?.start();
    let publisher = start_publisher(common, events, &readiness, "broker").map(Addr::recipient);
    let server = start_broker(common, broker, auth.recipient(), publisher, &readiness)?;
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

/// A RabbitMQ publisher for `service` (its connection is named `troupe-<service>`), or
/// `None` when `RABBIT_URL` is unset.
pub fn start_publisher(
    common: &CommonSettings,
    events: &EventSettings,
    readiness: &Readiness,
    service: &str,
) -> Option<Addr<PublisherActor>> {
    let url = events.rabbit_url.clone()?;
    let config = PublisherConfig {
        url,
        exchange: events.events_exchange.clone(),
        timeout: events.publish_timeout,
        backoff: common.backoff(),
        connection_name: format!("troupe-{service}"),
    };
    Some(PublisherActor::start(config, readiness))
}

/// The event transport of a process: where to publish, and the consumer's state.
pub struct EventTransport {
    /// Publish here (the RabbitMQ publisher or the in-process bus).
    pub publisher: Recipient<PublishEvent>,
    /// The consumer feeding `sink` (for the listener's routes).
    pub listener: ListenerState,
}

/// Start the event pipeline feeding `sink`: with `RABBIT_URL`, a RabbitMQ publisher and a
/// listener on the shared queue; without, the in-process bus.
pub fn start_events(
    common: &CommonSettings,
    events: &EventSettings,
    settings: &ListenerSettings,
    sink: Sink,
    readiness: &Readiness,
) -> EventTransport {
    match (start_publisher(common, events, readiness, "events"), events.rabbit_url.clone()) {
        (Some(publisher), Some(url)) => {
            let listener = start_listener(common, url, events, settings, sink, readiness);
            EventTransport { publisher: publisher.recipient(), listener }
        }
        _ => {
            let stats = EventBus::new_stats();
            let bus = EventBus::start(sink, stats.clone(), common.backoff(), 100_000);
            EventTransport { publisher: bus.recipient(), listener: ListenerState { stats, listener: None } }
        }
    }
}

/// Start a RabbitMQ listener on `url` feeding `sink`.
pub fn start_listener(
    common: &CommonSettings,
    url: SecretString,
    events: &EventSettings,
    settings: &ListenerSettings,
    sink: Sink,
    readiness: &Readiness,
) -> ListenerState {
    let stats = ListenerStats::new("rabbitmq", &settings.listener_queue);
    let config = ListenerConfig {
        url,
        exchange: events.events_exchange.clone(),
        queue: settings.listener_queue.clone(),
        prefetch: settings.listener_prefetch,
        timeout: events.publish_timeout,
        backoff: common.backoff(),
        connection_name: "troupe-listener".into(),
    };
    let addr = ListenerActor::start(config, sink, stats.clone(), readiness);
    ListenerState { stats, listener: Some(addr) }
}

/// The listener's HTTP server (`/healthz`, `/readyz`, `/status`) on LISTENER_PORT.
pub fn start_listener_server(
    common: &CommonSettings,
    settings: &ListenerSettings,
    state: ListenerState,
    readiness: &Readiness,
) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.listener_port, "LISTENER_PORT")?;
    Ok(serve("listener", listener, options(common, readiness, &[]), crate::events::routes(state))?)
}
