//! The event pipeline of a process: where events are published (a RabbitMQ publisher, or
//! the in-process bus and its queue on disk without RABBIT_URL), the consumer feeding the
//! [`Sink`] (the RabbitMQ listener, or the bus itself), and the listener's HTTP server
//! (`/status`, `/dead-letters`) on LISTENER_PORT.

use std::time::Duration;

use actix::{Addr, Recipient};
use anyhow::Context as _;
use secrecy::SecretString;
use troupe_actors::events::bus::{BusConfig, EventBus};
use troupe_actors::events::dead::{DeadLetterConfig, DeadLetterQueue};
use troupe_actors::events::jobs::MailJob;
use troupe_actors::events::listener::{ListenerActor, ListenerConfig};
use troupe_actors::events::publisher::{PublisherActor, PublisherConfig};
use troupe_actors::events::queue::QueueConfig;
use troupe_actors::events::{ListenerStats, Sink};
use troupe_core::config::{CommonSettings, EventSettings, ListenerSettings, LoggerSettings};
use troupe_core::health::Readiness;
use troupe_core::messages::{PublishEvent, SendMail, WriteLog};

use super::{Service, bind, options};
use crate::api::serve;
use crate::events::{DEAD_QUEUE_WITHIN, DeadLetters, ListenerState};
use crate::platform::Part;

/// A sink storing into `store` (a logger with `logger`'s settings).
pub fn sink(store: Recipient<WriteLog>, listener: &ListenerSettings, logger: &LoggerSettings) -> Sink {
    Sink::new(store, listener.store_within(logger))
}

/// `sink` also running the `mail` job: a [`MailJob`] sending to `mailer`, which answers one
/// mail within `answer_within`.
pub fn with_mail(sink: Sink, mailer: Recipient<SendMail>, answer_within: Duration) -> Sink {
    let wait = answer_within + Duration::from_secs(1);
    let job = MailJob::start(mailer, wait);
    sink.with_job("mail", job.recipient()).with_job_timeout(wait + Duration::from_secs(1))
}

/// A RabbitMQ publisher for `service` (its connection is named `troupe-<service>`), or
/// `None` when RABBIT_URL is unset.
pub fn publisher(
    common: &CommonSettings,
    events: &EventSettings,
    readiness: &Readiness,
    service: &str,
) -> Option<Addr<PublisherActor>> {
    let config = PublisherConfig {
        url: events.rabbit_url.value()?.clone(),
        exchange: events.events_exchange.clone(),
        timeout: events.publish_timeout,
        backoff: common.backoff(),
        connection_name: format!("troupe-{service}"),
    };
    Some(PublisherActor::start(config, readiness))
}

/// What the event pipeline of this process gives the others.
pub struct Events {
    /// Where to publish.
    pub publish: Recipient<PublishEvent>,
    /// Where its dead letters are listed and replayed (for the broker's console routes).
    pub dead_letters: DeadLetters,
}

/// The whole pipeline in this process, feeding `sink`: with RABBIT_URL a publisher and a
/// listener on the shared queue, without it the in-process bus.
pub fn local(
    common: &CommonSettings,
    events: &EventSettings,
    settings: &ListenerSettings,
    sink: Sink,
    readiness: &Readiness,
) -> anyhow::Result<Service<Events>> {
    let Some(url) = events.rabbit_url.value().cloned() else {
        troupe_actors::auth::ensure_data_dir(&events.events_data_dir).map_err(anyhow::Error::msg)?;
        let config = BusConfig {
            queue: QueueConfig {
                path: events.events_data_dir.join("events.db"),
                max_pending: events.events_queue_max,
                timeout: events.publish_timeout,
            },
            backoff: common.backoff(),
            in_flight: usize::from(settings.listener_prefetch),
        };
        let stats = EventBus::new_stats();
        if let Some(c) = stats.collector() {
            readiness.metrics().register(c);
        }
        let bus = EventBus::start(config, sink, stats.clone(), readiness);
        let letters = DeadLetters::of(&bus);
        let state = ListenerState { stats, drain: bus.clone().recipient(), dead_letters: letters.clone() };
        let parts = server(common, settings, state, readiness)?;
        let handle = Events { publish: bus.recipient(), dead_letters: letters };
        return Ok(Service::new("events", handle, parts));
    };
    let publisher = publisher(common, events, readiness, "events").context("RABBIT_URL is set")?;
    let consumer = consumer(common, url, events, settings, sink, readiness)?;
    let handle = Events { publish: publisher.recipient(), dead_letters: consumer.handle };
    Ok(Service::new("events", handle, consumer.parts))
}

/// The RabbitMQ listener alone, feeding `sink`, with its HTTP server (`troupe serve
/// listener`); its handle is where its dead letters (`<queue>.dead`) are listed and replayed.
pub fn consumer(
    common: &CommonSettings,
    url: SecretString,
    events: &EventSettings,
    settings: &ListenerSettings,
    sink: Sink,
    readiness: &Readiness,
) -> anyhow::Result<Service<DeadLetters>> {
    let stats = ListenerStats::new("rabbitmq", &settings.listener_queue);
    if let Some(c) = stats.collector() {
        readiness.metrics().register(c);
    }
    let config = ListenerConfig {
        url,
        exchange: events.events_exchange.clone(),
        queue: settings.listener_queue.clone(),
        queue_type: settings.listener_queue_type,
        prefetch: settings.listener_prefetch,
        timeout: events.publish_timeout,
        backoff: common.backoff(),
        connection_name: "troupe-listener".into(),
    };
    let letters = DeadLetters::of(&DeadLetterQueue::start(DeadLetterConfig::of(&config, DEAD_QUEUE_WITHIN)));
    let addr = ListenerActor::start(config, sink, stats.clone(), readiness);
    let state = ListenerState { stats, drain: addr.recipient(), dead_letters: letters.clone() };
    Ok(Service::new("listener", letters, server(common, settings, state, readiness)?))
}

/// The listener's HTTP server (`/healthz`, `/readyz`, `/status`) and its consumer, drained
/// at shutdown within SHUTDOWN_TIMEOUT.
fn server(
    common: &CommonSettings,
    settings: &ListenerSettings,
    state: ListenerState,
    readiness: &Readiness,
) -> anyhow::Result<Vec<Part>> {
    let listener = bind(common.bind_address, settings.listener_port, "LISTENER_PORT")?;
    let consumer =
        Part::Consumer { name: "events", drain: state.drain.clone(), within: common.shutdown_timeout };
    let server =
        serve("listener", listener, options(common, readiness, &[], 1), crate::events::routes(state))?;
    Ok(vec![Part::Http(server), consumer])
}
