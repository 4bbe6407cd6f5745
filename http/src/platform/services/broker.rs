//! The broker (API gateway) on BROKER_PORT: `/handle` and friends plus `GET /status` and
//! the dead letters (`/dead-letters`, for the console), `GET /metrics/history` and its sampler,
//! sending each action to the recipient it was given, local actor or proxy alike.

use actix::Recipient;
use troupe_core::config::{BrokerSettings, CommonSettings};
use troupe_core::health::Readiness;
use troupe_core::messages::{Authenticate, PublishEvent, SendMail};

use super::{Service, bind, options};
use crate::api::serve;
use crate::broker::BrokerState;
use crate::events::DeadLetters;
use crate::logger::LogClients;
use crate::mailer::MailGate;
use crate::platform::Part;
use crate::reads::ReadGate;
use crate::status::StatusSource;

/// Where the broker sends each action.
pub struct Recipients {
    /// `auth` actions.
    pub auth: Recipient<Authenticate>,
    /// `mail` actions.
    pub mail: Recipient<SendMail>,
    /// Who may send mail (`mail` actions and `mail` events).
    pub mail_gate: MailGate,
    /// Who may read the log and `/status` (`READ_AUTH`).
    pub read_gate: ReadGate,
    /// `log` actions, `/log-grpc` and log reads.
    pub logs: LogClients,
    /// `event` actions; `None` answers 503.
    pub events: Option<Recipient<PublishEvent>>,
    /// The event pipeline's dead letters (`GET /dead-letters`, `POST /dead-letters/replay`).
    pub dead_letters: DeadLetters,
}

/// Start the broker; every call it makes is answered within REQUEST_TIMEOUT.
pub fn local(
    common: &CommonSettings,
    settings: &BrokerSettings,
    readiness: &Readiness,
    workers: usize,
    to: Recipients,
    status: StatusSource,
) -> anyhow::Result<Service<()>> {
    let listener = bind(common.bind_address, settings.broker_port, "BROKER_PORT")?;
    let streams = Part::Streams(to.logs.tail.closing.clone());
    let state = BrokerState {
        auth: to.auth,
        mail: to.mail,
        mail_gate: to.mail_gate,
        logs: LogClients { timeout: settings.request_timeout, ..to.logs },
        events: to.events,
        timeout: settings.request_timeout,
        actions: crate::broker::ActionCounts::new(readiness.metrics()),
    };
    let sources = crate::history::Sources::from_status(readiness.metrics().registry().clone(), &status);
    let every = common.metrics.metrics_sample_interval;
    let history = std::sync::Arc::new(std::sync::Mutex::new(crate::history::History::new(every)));
    let shared = history.clone();
    let sampler = Part::background("metrics-sampler", move |stop| {
        crate::history::sampler(sources, shared, every, stop)
    });
    let history = crate::history::routes(history);
    let traces = crate::traces::broker_config(&status)?;
    let (broker, status) = (crate::broker::routes(state), crate::status::routes(status));
    let dead_letters = crate::events::broker_routes(to.dead_letters);
    let read_gate = actix_web::web::Data::new(to.read_gate);
    let opts = options(common, readiness, &settings.cors_allowed_origins, workers);
    let server = serve("broker", listener, opts, move |cfg: &mut actix_web::web::ServiceConfig| {
        cfg.app_data(read_gate.clone());
        broker(cfg);
        status(cfg);
        dead_letters(cfg);
        traces(cfg);
        history(cfg);
    })?;
    Ok(Service::new("broker", (), vec![streams, Part::Http(server), sampler]))
}
