//! The RabbitMQ publisher: one connection, one confirm-mode channel, many publishes in flight.
//!
//! Each [`PublishEvent`] gets a fresh id (the AMQP `message_id` and the body's `id`), is
//! published persistent and `mandatory` to the topic exchange with routing key
//! `log.<LEVEL>`, and is answered only when the broker's confirm arrives. A publish does not
//! wait for earlier ones: handlers run concurrently on the actor's context, so confirms for
//! many messages are outstanding at once. A `Nack`, or an `Ack` carrying a returned message
//! (unroutable: no queue bound), is a failure. While disconnected, callers get
//! `Unavailable` at once; the actor reconnects with backoff through [`supervision`].
//! `amqps://` URLs connect over TLS, trusting the system's roots and TLS_CA_FILE
//! ([`trust_amqps_ca`]); the listener and the dead-letter reader connect the same way.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use actix::{Addr, Arbiter, Context, Handler, ResponseActFuture, Supervisor};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind};
use secrecy::{ExposeSecret, SecretString};
use troupe_core::ServiceError;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::health::Readiness;
use troupe_core::messages::{Event, PublishEvent};
use troupe_core::metrics::EventMetrics;

use crate::supervision::{
    self, Backend, BackendError, Checking, Connecting, Link, Misconfigured, supervised,
};

/// What the publisher needs.
#[derive(Clone)]
pub struct PublisherConfig {
    /// `amqp://` URL of RabbitMQ.
    pub url: SecretString,
    /// The topic exchange (declared durable).
    pub exchange: String,
    /// Deadline for connecting and for each publish (send to confirm).
    pub timeout: Duration,
    /// Reconnect policy.
    pub backoff: BackoffPolicy,
    /// Connection name shown by RabbitMQ (`rabbitmqctl list_connections client_properties`).
    pub connection_name: String,
}

/// An open connection and a channel on it. Cheap to clone; the connection is closed
/// when the last clone is dropped (e.g. when a restarted actor forgets it), so an orphaned
/// consumer never keeps holding unacked deliveries.
#[derive(Clone)]
pub struct AmqpChannel {
    conn: Arc<OwnedConnection>,
    /// The channel.
    pub channel: Channel,
}

struct OwnedConnection(Option<Connection>);

impl Drop for OwnedConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take().filter(|c| c.status().connected()) {
            // Best effort, bounded; the runtime may already be shutting down.
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close(200, "bye".into())).await;
                });
            }
        }
    }
}

impl AmqpChannel {
    /// True while both the connection and the channel are open.
    pub fn is_open(&self) -> bool {
        self.conn.0.as_ref().is_some_and(|c| c.status().connected()) && self.channel.status().connected()
    }
}

/// Open a connection (lapin's automatic recovery left off: the supervised actor owns
/// recovery) and one channel, within `timeout`.
///
/// `url` may list a cluster's nodes separated by commas: they are tried in order, each within
/// `timeout`, and the first that accepts is used (a node that is down refuses at once). The
/// error of the last one is returned when none does.
pub async fn open(url: &SecretString, name: &str, timeout: Duration) -> anyhow::Result<AmqpChannel> {
    let nodes: Vec<&str> = url.expose_secret().split(',').map(str::trim).filter(|u| !u.is_empty()).collect();
    let mut last = anyhow::anyhow!("RABBIT_URL names no node");
    for (n, node) in nodes.iter().enumerate() {
        match open_one(node, name, timeout).await {
            Ok(channel) => return Ok(channel),
            // A misconfiguration is the same on every node: say it at once.
            Err(err) if Misconfigured::find(&err).is_some() => return Err(err),
            Err(err) => {
                if nodes.len() > 1 {
                    tracing::debug!(node = n + 1, of = nodes.len(), error = %format!("{err:#}"), "RabbitMQ node refused; trying the next");
                }
                last = err;
            }
        }
    }
    Err(last)
}

/// What `amqps://` connections trust beyond the system's roots ([`trust_amqps_ca`]).
static AMQPS: OnceLock<OwnedTLSConfig> = OnceLock::new();

/// Trust the certificate authority in `ca_pem` (TLS_CA_FILE) for `amqps://` RabbitMQ URLs,
/// besides the system's roots, for the rest of the process; call before connecting. A
/// second call is ignored (one CA per process, as for the HTTP clients).
pub fn trust_amqps_ca(ca_pem: String) {
    let _ = AMQPS.set(OwnedTLSConfig { identity: None, cert_chain: Some(ca_pem) });
}

async fn open_one(url: &str, name: &str, timeout: Duration) -> anyhow::Result<AmqpChannel> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    let url = default_vhost(url);
    let work = async move {
        let tls = AMQPS.get().cloned().unwrap_or_default();
        let runtime = lapin::runtime::default_runtime()?;
        let conn = Connection::connect_with_config(&url, props, tls, runtime).await?;
        let channel = conn.create_channel().await?;
        Ok::<_, lapin::Error>(AmqpChannel { conn: Arc::new(OwnedConnection(Some(conn))), channel })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(channel)) => Ok(channel),
        Ok(Err(err)) => Err(match misconfigured(&err) {
            Some(wrong) => anyhow::Error::new(err).context(wrong),
            None => err.into(),
        }),
        Err(_) => anyhow::bail!("connecting to RabbitMQ timed out after {timeout:?}"),
    }
}

/// The refusals of a connection attempt that retrying will not fix: bad credentials
/// (ACCESS_REFUSED, 403) and a vhost that does not exist or is not permitted (NOT_ALLOWED,
/// 530).
fn misconfigured(err: &lapin::Error) -> Option<Misconfigured> {
    let lapin::ErrorKind::ProtocolError(amqp) = err.kind() else { return None };
    let what = match amqp.get_id() {
        403 => "RabbitMQ refused the user or password in RABBIT_URL",
        530 => "RabbitMQ refused the vhost in RABBIT_URL",
        _ => return None,
    };
    Some(Misconfigured(format!("{what} ({}: {})", amqp.kind(), amqp.get_message())))
}

/// Declare the durable topic exchange events go to.
pub async fn declare_exchange(channel: &Channel, exchange: &str) -> lapin::Result<()> {
    let opts = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    channel.exchange_declare(exchange.into(), ExchangeKind::Topic, opts, FieldTable::default()).await
}

/// The publisher actor.
pub struct PublisherActor {
    config: PublisherConfig,
    link: Link<AmqpChannel>,
    /// Published, confirmed, returned, failed (`None` with TROUPE_METRICS=off).
    metrics: Option<EventMetrics>,
}

impl PublisherActor {
    /// Start under a supervisor on its own arbiter; reports as `events.publisher` in readiness.
    pub fn start(config: PublisherConfig, readiness: &Readiness) -> Addr<Self> {
        let probe = readiness.probe("events.publisher");
        let link = Link::new("events", probe, config.backoff).with_check_every(Duration::from_millis(500));
        let metrics = readiness.metrics().events();
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self { config, link, metrics })
    }
}

supervised!(PublisherActor, AmqpChannel);

impl Backend for PublisherActor {
    fn connect(&mut self) -> Connecting<AmqpChannel> {
        let c = self.config.clone();
        Box::pin(async move {
            let amqp = open(&c.url, &c.connection_name, c.timeout).await?;
            let setup = async {
                amqp.channel.confirm_select(ConfirmSelectOptions::default()).await?;
                declare_exchange(&amqp.channel, &c.exchange).await
            };
            match tokio::time::timeout(c.timeout, setup).await {
                Ok(res) => res?,
                Err(_) => anyhow::bail!("declaring the exchange timed out"),
            }
            Ok(amqp)
        })
    }

    fn check(amqp: AmqpChannel) -> Checking {
        Box::pin(async move {
            if amqp.is_open() { Ok(()) } else { Err(anyhow::anyhow!("RabbitMQ connection closed")) }
        })
    }
}

/// Why a publish failed.
#[derive(Debug)]
pub enum PublishError {
    /// The connection or channel failed.
    Lost(lapin::Error),
    /// No confirm within the deadline (the connection is presumed stuck).
    TimedOut,
    /// The broker refused the message.
    Nacked,
    /// The message reached no queue (returned under `mandatory`).
    Unroutable,
}

impl fmt::Display for PublishError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lost(e) => write!(f, "RabbitMQ connection failed: {e}"),
            Self::TimedOut => f.write_str("no publisher confirm in time"),
            Self::Nacked => f.write_str("the broker refused the message (nack)"),
            Self::Unroutable => f.write_str("the message was unroutable (returned)"),
        }
    }
}

impl BackendError for PublishError {
    fn is_connection_lost(&self) -> bool {
        // A nack too: a channel whose quorum queue changed leader while it was being opened
        // can go on nacking every publish (seen on RabbitMQ 3.10); a fresh channel recovers.
        matches!(self, Self::Lost(_) | Self::TimedOut | Self::Nacked)
    }

    fn into_service_error(self, service: &str) -> ServiceError {
        match self {
            Self::Lost(_) | Self::TimedOut | Self::Nacked => ServiceError::unavailable(service),
            Self::Unroutable => {
                tracing::warn!("published event was unroutable: no queue is bound to its routing key");
                ServiceError::unavailable(service)
            }
        }
    }
}

/// Publish `event` on `channel` and wait for its confirm. The event must carry an id.
pub async fn publish(channel: &Channel, exchange: &str, event: &Event) -> Result<(), PublishError> {
    let body = serde_json::to_vec(event).map_err(|_| PublishError::Nacked)?;
    let mut props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_timestamp(chrono::Utc::now().timestamp().try_into().unwrap_or_default());
    if let Some(id) = &event.id {
        props = props.with_message_id(id.as_str().into());
    }
    // The trace context as AMQP headers too, where other consumers look for it.
    if let Some(parent) = &event.traceparent {
        let mut headers = lapin::types::FieldTable::default();
        headers.insert("traceparent".into(), lapin::types::AMQPValue::LongString(parent.as_str().into()));
        if let Some(state) = &event.tracestate {
            headers.insert("tracestate".into(), lapin::types::AMQPValue::LongString(state.as_str().into()));
        }
        props = props.with_headers(headers);
    }
    let opts = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let confirm = channel
        .basic_publish(exchange.into(), event.routing_key().as_str().into(), opts, &body, props)
        .await
        .map_err(PublishError::Lost)?;
    match confirm.await.map_err(PublishError::Lost)? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => Err(PublishError::Unroutable),
        Confirmation::Nack(_) => Err(PublishError::Nacked),
        // Confirms are always enabled on this channel; treat the impossible as a refusal.
        Confirmation::NotRequested => Err(PublishError::Nacked),
    }
}

/// A fresh event id: a time-ordered UUID (version 7), so the store's unique `event_id` index
/// takes new ids at its end instead of on random pages.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// The event a publish request stands for, with its id (the caller's, else a fresh one).
pub fn stamp(msg: PublishEvent) -> (String, Event) {
    let id = msg.id.unwrap_or_else(new_event_id);
    let trace = troupe_core::telemetry::carrier(&msg.span);
    let header = |name: &str| trace.0.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let event = Event {
        id: Some(id.clone()),
        name: msg.name,
        data: msg.data,
        level: msg.level,
        request_id: msg.request_id,
        traceparent: header("traceparent"),
        tracestate: header("tracestate"),
    };
    (id, event)
}

/// `url` with the default vhost spelled out when its path is empty (`amqp://host/`), which
/// the Go platform's client reads as the default vhost `/` and lapin as a vhost named "".
pub fn default_vhost(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    match path {
        Some(p) if p.is_empty() || p.starts_with('?') => format!("{scheme}://{authority}/%2f{p}"),
        _ => url.to_owned(),
    }
}

impl Handler<PublishEvent> for PublisherActor {
    type Result = ResponseActFuture<Self, Result<String, ServiceError>>;

    fn handle(&mut self, msg: PublishEvent, _: &mut Context<Self>) -> Self::Result {
        let exchange = self.config.exchange.clone();
        let (timeout, counts) = (self.config.timeout, self.metrics.clone());
        supervision::call(self, move |amqp: AmqpChannel| async move {
            let (id, event) = stamp(msg);
            counts.as_ref().inspect(|c| c.published.inc());
            let done = match tokio::time::timeout(timeout, publish(&amqp.channel, &exchange, &event)).await {
                Ok(Ok(())) => Ok(id),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(PublishError::TimedOut),
            };
            if let Some(c) = &counts {
                match &done {
                    Ok(_) => c.confirmed.inc(),
                    Err(PublishError::Unroutable) => c.returned.inc(),
                    Err(_) => c.failed.inc(),
                }
            }
            done
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_vhost_means_the_default_one() {
        let cases = [
            ("amqp://guest:guest@host:5672/", "amqp://guest:guest@host:5672/%2f"),
            ("amqp://host/?heartbeat=10", "amqp://host/%2f?heartbeat=10"),
            ("amqp://host", "amqp://host"),
            ("amqp://host/%2f", "amqp://host/%2f"),
            ("amqp://host/prod", "amqp://host/prod"),
        ];
        for (given, used) in cases {
            assert_eq!(default_vhost(given), used, "{given}");
        }
    }
}
