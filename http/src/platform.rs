//! Starting services: the actors, then their HTTP servers, for `troupe up` (everything in
//! one process) and `troupe serve <service>` (one service per process).
//!
//! Every function binds its own listener, so tests pass port 0 and read the bound port back.

use std::net::{IpAddr, TcpListener};
use std::time::Duration;

use actix::{Actor, Addr, Recipient};
use anyhow::Context as _;
use futures_util::future::try_join_all;
use secrecy::SecretString;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use troupe_actors::auth::{AuthActor, AuthConfig};
use troupe_actors::catcher::{self, CatcherStore};
use troupe_actors::events::bus::EventBus;
use troupe_actors::events::jobs::MailJob;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::{Drain, ListenerStats, Sink};
use troupe_actors::logger::{LoggerActor, LoggerConfig};
use troupe_actors::mailer::{Mailer, MailerConfig};
use troupe_core::config::{
    AuthSettings, BrokerSettings, CatcherSettings, CommonSettings, EventSettings, FrontendSettings,
    ListenerSettings, LoggerSettings, MailerSettings, UpstreamSettings,
};
use troupe_core::health::Readiness;
use troupe_core::messages::{Authenticate, PublishEvent, SendMail, WriteLog};
use url::Url;

use crate::api::{RunningServer, ServerOptions, serve};
use crate::auth::AuthState;
use crate::broker::BrokerState;
use crate::catcher::CatcherState;
use crate::cli::UpArgs;
use crate::events::ListenerState;
use crate::grpc::GrpcLogProxy;
use crate::logger::LogClients;
use crate::mailer::MailerState;
use crate::proxy::{AuthProxy, LoggerProxy, MailerProxy};
use crate::status::StatusSource;

/// The servers running in this process.
pub struct Platform {
    /// One per service.
    pub servers: Vec<RunningServer>,
    /// Backend states of this process.
    pub readiness: Readiness,
    /// Non-HTTP servers (gRPC, JSON-RPC): name, port, task.
    pub tasks: Vec<(&'static str, u16, JoinHandle<()>)>,
    /// Stops the non-HTTP servers once the HTTP servers have stopped.
    pub shutdown: CancellationToken,
    /// RabbitMQ listeners to drain (stop consuming, finish what was delivered) at shutdown,
    /// with the grace period (`SHUTDOWN_TIMEOUT`).
    pub drains: Vec<(Recipient<Drain>, Duration)>,
}

impl Platform {
    fn new(servers: Vec<RunningServer>, readiness: Readiness) -> Self {
        Self { servers, readiness, tasks: Vec::new(), shutdown: CancellationToken::new(), drains: Vec::new() }
    }

    /// Drain the listener or bus in `state` when the platform stops.
    fn drain_on_stop(mut self, state: &ListenerState, common: &CommonSettings) -> Self {
        self.drains.push((state.drain.clone(), common.shutdown_timeout));
        self
    }

    /// The port a service got (`broker`, `logger`, `logger-grpc`, `logger-rpc`, ...).
    pub fn port(&self, name: &str) -> Option<u16> {
        self.servers
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.port)
            .or_else(|| self.tasks.iter().find(|t| t.0 == name).map(|t| t.1))
    }

    /// Serve until SIGTERM / Ctrl-C; every server drains its in-flight requests, the RabbitMQ
    /// listeners finish what they were delivered, then the gRPC and JSON-RPC servers are
    /// stopped.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handles: Vec<_> = self.servers.iter().map(RunningServer::handle).collect();
        let servers = try_join_all(self.servers.into_iter().map(RunningServer::run_until_stopped));
        tokio::pin!(servers);
        let res = tokio::select! {
            res = &mut servers => res.map(drop),
            () = stop_signal() => {
                tracing::info!("stopping: draining requests in flight");
                for handle in &handles {
                    // The command is sent at once; the servers' own futures carry it out.
                    drop(handle.stop(true));
                }
                servers.await.map(drop)
            }
        };
        for (listener, within) in self.drains {
            if let Err(err) = listener.send(Drain(within)).timeout(within + Duration::from_secs(1)).await {
                tracing::warn!(error = %err, "the event consumer did not drain");
            }
        }
        self.shutdown.cancel();
        for (name, _, task) in self.tasks {
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                tracing::warn!(server = name, "did not stop in time");
            }
        }
        res
    }
}

/// SIGTERM or Ctrl-C (SIGINT); never resolves if neither can be listened for.
async fn stop_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
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
/// Login attempts are written to `audit` and published as `auth` events to `events`.
pub fn start_auth(
    common: &CommonSettings,
    settings: &AuthSettings,
    readiness: &Readiness,
    ephemeral_key: bool,
    audit: Option<Recipient<WriteLog>>,
    events: Option<Recipient<PublishEvent>>,
) -> anyhow::Result<(Addr<AuthActor>, RunningServer)> {
    let config =
        AuthConfig::from_settings(settings, common.backoff(), ephemeral_key).map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.auth_port, "AUTH_PORT")?;
    let keys = config.keys.clone();
    let config = AuthConfig { audit, events, ..config };
    let actor = AuthActor::start(config, readiness);
    let state = AuthState { actor: actor.clone(), keys, timeout: settings.db_timeout * 3 };
    let server = serve("auth", listener, options(common, readiness, &[]), crate::auth::routes(state))?;
    Ok((actor, server))
}

/// Start the mailer actor and its HTTP server (`MAIL_HOST` must be set).
pub fn start_mailer(
    common: &CommonSettings,
    settings: &MailerSettings,
    readiness: &Readiness,
) -> anyhow::Result<(Addr<Mailer>, RunningServer)> {
    let config = MailerConfig::from_settings(settings, common.backoff()).map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.mailer_port, "MAILER_PORT")?;
    let timeout = settings.answer_within();
    let actor = Mailer::start(config, readiness);
    let state = MailerState { mailer: actor.clone().recipient(), timeout };
    let server = serve("mailer", listener, options(common, readiness, &[]), crate::mailer::routes(state))?;
    Ok((actor, server))
}

/// Start the built-in catcher: its store, its SMTP server on 127.0.0.1 and its JSON API.
/// Returns the SMTP port and the API server.
pub fn start_catcher(
    common: &CommonSettings,
    settings: &CatcherSettings,
) -> anyhow::Result<(u16, RunningServer)> {
    let store = CatcherStore::start(settings.catcher_data_dir.join("catcher")).map_err(anyhow::Error::msg)?;
    let smtp = bind([127, 0, 0, 1].into(), settings.catcher_smtp_port, "CATCHER_SMTP_PORT")?;
    let smtp_port = smtp.local_addr()?.port();
    catcher::start_smtp(smtp, store.clone(), None).map_err(anyhow::Error::msg)?;
    let listener = bind(common.bind_address, settings.catcher_http_port, "CATCHER_HTTP_PORT")?;
    let opts = options(common, &Readiness::default(), &settings.catcher_cors_allowed_origins);
    let server = serve("catcher", listener, opts, crate::catcher::routes(CatcherState { store }))?;
    tracing::info!(smtp_port, "mail catcher listening for SMTP");
    Ok((smtp_port, server))
}

/// The logger actor and its HTTP, gRPC and JSON-RPC servers.
pub struct LoggerService {
    /// The actor.
    pub actor: Addr<LoggerActor>,
    /// Its HTTP server.
    pub server: RunningServer,
    /// gRPC and JSON-RPC servers: name, port, task.
    pub tasks: Vec<(&'static str, u16, JoinHandle<()>)>,
}

fn tokio_listener(listener: TcpListener) -> anyhow::Result<tokio::net::TcpListener> {
    listener.set_nonblocking(true)?;
    Ok(tokio::net::TcpListener::from_std(listener)?)
}

/// Start the logger actor and its servers (HTTP, gRPC, JSON-RPC); the RPC servers stop when
/// `shutdown` is cancelled.
pub fn start_logger(
    common: &CommonSettings,
    settings: &LoggerSettings,
    readiness: &Readiness,
    shutdown: &CancellationToken,
) -> anyhow::Result<LoggerService> {
    let config = LoggerConfig::from_settings(settings, common.backoff()).map_err(anyhow::Error::msg)?;
    let http = bind(common.bind_address, settings.logger_port, "LOGGER_PORT")?;
    let grpc = bind(common.bind_address, settings.logger_grpc_port, "LOGGER_GRPC_PORT")?;
    let rpc = bind(common.bind_address, settings.logger_rpc_port, "LOGGER_RPC_PORT")?;
    let (grpc_port, rpc_port) = (grpc.local_addr()?.port(), rpc.local_addr()?.port());
    let actor = LoggerActor::start(config, readiness);
    // A write waits for its batch; allow a store deadline for the batch ahead and its own.
    let timeout = settings.log_store_timeout * 2 + Duration::from_millis(500);
    let write: Recipient<WriteLog> = actor.clone().recipient();
    let clients = LogClients {
        write: write.clone(),
        write_grpc: write.clone(),
        query: actor.clone().recipient(),
        get: actor.clone().recipient(),
        timeout,
    };
    let server = serve("logger", http, options(common, readiness, &[]), crate::logger::routes(clients))?;

    let (grpc, rpc) = (tokio_listener(grpc)?, tokio_listener(rpc)?);
    let stop = shutdown.clone();
    let grpc_write = write.clone();
    let grpc_task = tokio::spawn(async move {
        let shutdown = async move { stop.cancelled().await };
        if let Err(err) = crate::grpc::serve(grpc, grpc_write, timeout, shutdown).await {
            tracing::error!(error = %err, "gRPC server failed");
        }
    });
    let stop = shutdown.clone();
    let max_connections = settings.logger_rpc_max_connections as usize;
    let rpc_task = tokio::spawn(async move {
        let shutdown = async move { stop.cancelled().await };
        crate::jsonrpc::serve(rpc, write, timeout, max_connections, shutdown).await;
    });
    tracing::info!(grpc_port, rpc_port, "logger RPC servers listening");
    let tasks = vec![("logger-grpc", grpc_port, grpc_task), ("logger-rpc", rpc_port, rpc_task)];
    Ok(LoggerService { actor, server, tasks })
}

/// Log clients reaching a remote logger: HTTP at `logger_url`, gRPC at `grpc_url`. Each is
/// one long-lived client (keep-alive pool / HTTP/2 channel) with a deadline per call.
pub fn remote_logger(logger_url: &Url, grpc_url: &Url, timeout: Duration) -> anyhow::Result<LogClients> {
    let http = LoggerProxy::new(logger_url, timeout).context("LOGGER_URL")?.start();
    let grpc = GrpcLogProxy::new(grpc_url, timeout).context("LOGGER_GRPC_URL")?.start();
    Ok(LogClients {
        write: http.clone().recipient(),
        write_grpc: grpc.recipient(),
        query: http.clone().recipient(),
        get: http.recipient(),
        timeout,
    })
}

/// Where the broker sends each action: local actors (`troupe up`) or proxies (split mode).
pub struct BrokerRecipients {
    /// `auth` actions.
    pub auth: Recipient<Authenticate>,
    /// `mail` actions.
    pub mail: Recipient<SendMail>,
    /// `log` actions, `/log-grpc` and log reads.
    pub logs: LogClients,
    /// `event` actions; `None` answers 503.
    pub events: Option<Recipient<PublishEvent>>,
}

/// Start the broker, sending each action to its recipient.
pub fn start_broker(
    common: &CommonSettings,
    settings: &BrokerSettings,
    to: BrokerRecipients,
    readiness: &Readiness,
    status: StatusSource,
) -> anyhow::Result<RunningServer> {
    let listener = bind(common.bind_address, settings.broker_port, "BROKER_PORT")?;
    let state = BrokerState {
        auth: to.auth,
        mail: to.mail,
        logs: LogClients { timeout: settings.request_timeout, ..to.logs },
        events: to.events,
        timeout: settings.request_timeout,
    };
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

/// How long auth waits for the logger to take an audit entry (in the background).
const AUDIT_TIMEOUT: Duration = Duration::from_secs(2);

/// `troupe up`: every service in this process, actors addressed directly. With no
/// `MAIL_HOST` the built-in catcher is started and the mailer sends to it over SMTP.
pub fn up(args: &UpArgs) -> anyhow::Result<Platform> {
    let UpArgs { common, broker, auth, logger, frontend, mailer, catcher, events, listener } = args;
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let logs = start_logger(common, logger, &readiness, &shutdown)?;
    let write: Recipient<WriteLog> = logs.actor.clone().recipient();
    let mut servers = Vec::new();
    let mut services =
        ["broker", "auth", "logger", "mailer", "events", "frontend"].map(String::from).to_vec();
    let mut mail = mailer.clone();
    if mail.mail_host.as_deref().is_none_or(|h| h.trim().is_empty()) {
        let (smtp_port, catcher_server) = start_catcher(common, catcher)?;
        mail.mail_host = Some("127.0.0.1".into());
        mail.mail_port = smtp_port;
        mail.mail_encryption = troupe_core::config::MailEncryption::None;
        if mail.mail_pool_size > catcher::SESSIONS / 2 {
            tracing::warn!(
                MAIL_POOL_SIZE = mail.mail_pool_size,
                "the built-in catcher serves {} sessions at once: using a pool of {}",
                catcher::SESSIONS,
                catcher::SESSIONS / 2
            );
            mail.mail_pool_size = catcher::SESSIONS / 2;
        }
        servers.push(catcher_server);
        services.push("catcher".into());
    }
    let (mailer, mailer_server) = start_mailer(common, &mail, &readiness)?;
    // The mailer's own deadline (three attempts with backoff), and a little more.
    let mail_timeout = mail.answer_within() + Duration::from_secs(1);
    let sink = Sink::new(write.clone(), listener.store_timeout.max(store_deadline(logger)));
    let sink = with_mail_job(sink, mailer.clone().recipient(), mail_timeout);
    let transport = start_events(common, events, listener, sink, &readiness);
    let publisher = transport.publisher.clone();
    let (auth_actor, auth_server) =
        start_auth(common, auth, &readiness, true, Some(write.clone()), Some(publisher))?;
    let listener_state = transport.listener;
    let listener_server = start_listener_server(common, listener, listener_state.clone(), &readiness)?;
    let clients = LogClients {
        write: write.clone(),
        write_grpc: write,
        query: logs.actor.clone().recipient(),
        get: logs.actor.clone().recipient(),
        timeout: broker.request_timeout,
    };
    let status = StatusSource::Local { readiness: readiness.clone(), services };
    let to = BrokerRecipients {
        auth: auth_actor.recipient(),
        mail: mailer.recipient(),
        logs: clients,
        events: Some(transport.publisher),
    };
    let broker_server = start_broker(common, broker, to, &readiness, status)?;
    let frontend_server = start_frontend(common, frontend)?;
    servers.extend([
        broker_server,
        frontend_server,
        auth_server,
        mailer_server,
        logs.server,
        listener_server,
    ]);
    let platform = Platform { servers, readiness, tasks: logs.tasks, shutdown, drains: Vec::new() };
    Ok(platform.drain_on_stop(&listener_state, common))
}

/// `troupe serve broker`: the broker alone, reaching the services over HTTP;
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
    let mail = MailerProxy::new(&upstream.mailer_url, broker.request_timeout).context("MAILER_URL")?.start();
    let l = &upstream.logger;
    let logs = remote_logger(&l.logger_url, &l.logger_grpc_url, broker.request_timeout)?;
    let mut sources = vec![
        ("auth".into(), upstream.auth_url.clone()),
        ("logger".into(), l.logger_url.clone()),
        ("mailer".into(), upstream.mailer_url.clone()),
    ];
    if let Some(url) = &upstream.listener_url {
        sources.push(("listener".into(), url.clone()));
    }
    let status = StatusSource::remote(sources)?;
    let publisher = start_publisher(common, events, &readiness, "broker").map(Addr::recipient);
    let recipients =
        BrokerRecipients { auth: auth.recipient(), mail: mail.recipient(), logs, events: publisher };
    let server = start_broker(common, broker, recipients, &readiness, status)?;
    Ok(Platform::new(vec![server], readiness))
}

/// `troupe serve auth`: the authentication service alone; login attempts are audited to the
/// logger at `logger_url` when given, and published as `auth` events when `RABBIT_URL` is
/// set (the publisher's state does not gate auth's readiness: events are a side channel).
pub fn serve_auth(
    common: &CommonSettings,
    auth: &AuthSettings,
    logger_url: Option<&Url>,
    events: &EventSettings,
) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let audit = match logger_url {
        Some(url) => Some(LoggerProxy::new(url, AUDIT_TIMEOUT).context("LOGGER_URL")?.start().recipient()),
        None => None,
    };
    let publisher = start_publisher(common, events, &Readiness::default(), "auth").map(Addr::recipient);
    let (_, server) = start_auth(common, auth, &readiness, false, audit, publisher)?;
    Ok(Platform::new(vec![server], readiness))
}

/// `troupe serve logger`: the logger alone (HTTP, gRPC, JSON-RPC).
pub fn serve_logger(common: &CommonSettings, logger: &LoggerSettings) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let shutdown = CancellationToken::new();
    let logs = start_logger(common, logger, &readiness, &shutdown)?;
    Ok(Platform { servers: vec![logs.server], readiness, tasks: logs.tasks, shutdown, drains: Vec::new() })
}

/// `troupe serve frontend`: the console alone.
pub fn serve_frontend(common: &CommonSettings, frontend: &FrontendSettings) -> anyhow::Result<Platform> {
    let server = start_frontend(common, frontend)?;
    Ok(Platform::new(vec![server], Readiness::default()))
}

/// `troupe serve mailer`: the mailer alone, sending to `MAIL_HOST` (unset: 127.0.0.1, where
/// `troupe serve catcher` listens).
pub fn serve_mailer(common: &CommonSettings, mail: &MailerSettings) -> anyhow::Result<Platform> {
    let readiness = Readiness::default();
    let mut mail = mail.clone();
    if mail.mail_host.as_deref().is_none_or(|h| h.trim().is_empty()) {
        tracing::info!(
            port = mail.mail_port,
            "MAIL_HOST is not set: sending to 127.0.0.1 (troupe serve catcher)"
        );
        mail.mail_host = Some("127.0.0.1".into());
    }
    let (_, server) = start_mailer(common, &mail, &readiness)?;
    Ok(Platform::new(vec![server], readiness))
}

/// `troupe serve catcher`: the built-in mail catcher alone.
pub fn serve_catcher(common: &CommonSettings, catcher: &CatcherSettings) -> anyhow::Result<Platform> {
    let (_, server) = start_catcher(common, catcher)?;
    Ok(Platform::new(vec![server], Readiness::default()))
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
            let listener = ListenerState { stats, drain: bus.clone().recipient() };
            EventTransport { publisher: bus.recipient(), listener }
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
    ListenerState { stats, drain: addr.recipient() }
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

/// How long the listener waits for one write: a write waits for its batch, so allow a store
/// deadline for the batch ahead and its own (as the logger's adapters do).
fn store_deadline(logger: &LoggerSettings) -> Duration {
    logger.log_store_timeout * 2 + Duration::from_millis(500)
}

/// How long a split-mode listener waits for the remote mailer to take one mail.
pub const REMOTE_MAIL_TIMEOUT: Duration = Duration::from_secs(60);

/// Register the `mail` job on `sink`: a [`MailJob`] sending to `mailer`, waiting `timeout`.
pub fn with_mail_job(sink: Sink, mailer: Recipient<SendMail>, timeout: Duration) -> Sink {
    let job = MailJob::start(mailer, timeout);
    sink.with_job("mail", job.recipient()).with_job_timeout(timeout + Duration::from_secs(1))
}

/// `troupe serve listener`: the RabbitMQ listener alone (`RABBIT_URL` required), storing
/// through its own logger actor (MongoDB from `MONGO_URL`, else the embedded store), with
/// `/healthz`, `/readyz` and `/status` on LISTENER_PORT. `mail` events are sent to the
/// mailer at `mailer_url` (`MAILER_URL`); without it they are only stored.
pub fn serve_listener(
    common: &CommonSettings,
    events: &EventSettings,
    listener: &ListenerSettings,
    logger: &LoggerSettings,
    mailer_url: Option<&Url>,
) -> anyhow::Result<Platform> {
    let url = events.rabbit_url.clone().context("RABBIT_URL: required by `troupe serve listener`")?;
    let readiness = Readiness::default();
    let config = LoggerConfig::from_settings(logger, common.backoff()).map_err(anyhow::Error::msg)?;
    let store = LoggerActor::start(config, &readiness);
    let mut sink = Sink::new(store.recipient(), listener.store_timeout.max(store_deadline(logger)));
    if let Some(url) = mailer_url {
        let proxy = MailerProxy::new(url, REMOTE_MAIL_TIMEOUT).context("MAILER_URL")?.start();
        sink = with_mail_job(sink, proxy.recipient(), REMOTE_MAIL_TIMEOUT + Duration::from_secs(1));
    } else {
        tracing::warn!("MAILER_URL is not set: `mail` events are stored but not mailed");
    }
    let state = start_listener(common, url, events, listener, sink, &readiness);
    let server = start_listener_server(common, listener, state.clone(), &readiness)?;
    Ok(Platform::new(vec![server], readiness).drain_on_stop(&state, common))
}
