//! The listener: a supervised stream actor consuming the shared durable queue.
//!
//! On (re)start it connects (lapin's own recovery off), declares the topic exchange, the
//! dead-letter exchange `<queue>.dlx` (fanout) with its queue `<queue>.dead`, and the durable
//! named queue (dead-lettering to `<queue>.dlx`) bound to `log.INFO`, `log.WARNING`,
//! `log.ERROR` and `log.*`; sets the prefetch; and attaches the consumer as a stream. Every
//! listener instance consumes the same queue, so N listeners split the work.
//!
//! Each delivery is decoded and handed to the [`Sink`] concurrently (at most `prefetch` at
//! a time). It is acked only after the sink succeeded; a transient failure (store down) is
//! retried with backoff while the delivery stays unacked; a malformed message or a
//! permanent refusal is rejected without requeue, landing in the dead-letter queue. When
//! the stream errors or ends, or the connection check fails, the actor stops and its
//! supervisor restarts it, which reconnects and re-declares; unacked deliveries are
//! redelivered by RabbitMQ and stored once thanks to their event id (an event published
//! without one gets a fresh id per delivery: a redelivery of it may be stored twice).
//!
//! Shutdown ([`Drain`]): the consumer is cancelled, so RabbitMQ sends nothing more; what it
//! had already sent (up to `prefetch`) is still stored and acked, and the reply comes once
//! nothing is in flight (or the grace period is over). A stopped process thus hands nothing
//! back to the queue half-done, and a `mail` job is not sent twice by the next listener.

use std::sync::Arc;
use std::time::Duration;

use actix::fut::wrap_future;
use actix::{Addr, Arbiter, AsyncContext, Context, Handler, ResponseFuture, StreamHandler, Supervisor};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Consumer, ExchangeKind};
use secrecy::SecretString;
use tokio::sync::watch;
use troupe_core::backoff::BackoffPolicy;
use troupe_core::config::QueueType;
use troupe_core::health::Readiness;

use super::publisher::{AmqpChannel, declare_exchange, open};
use super::{Drain, ListenerStats, Sink, SinkError, decode, wait_drained};
use crate::supervision::{self, Backend, Checking, Connecting, Link, Misconfigured, supervised};

/// The routing keys the queue is bound to.
pub const BINDINGS: [&str; 4] = ["log.INFO", "log.WARNING", "log.ERROR", "log.*"];

/// What the listener needs.
#[derive(Clone)]
pub struct ListenerConfig {
    /// `amqp://` URL of RabbitMQ.
    pub url: SecretString,
    /// The topic exchange events are published to.
    pub exchange: String,
    /// The shared durable queue.
    pub queue: String,
    /// Classic or quorum (then the dead-letter queue is quorum too).
    pub queue_type: QueueType,
    /// Most unacked deliveries at once.
    pub prefetch: u16,
    /// Deadline for connecting and declaring.
    pub timeout: Duration,
    /// Reconnect policy; also the retry delays of a transiently failing store.
    pub backoff: BackoffPolicy,
    /// Connection name shown by RabbitMQ.
    pub connection_name: String,
}

impl ListenerConfig {
    /// The dead-letter exchange of the queue.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.queue)
    }

    /// The dead-letter queue.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }
}

/// An open consumer and its channel.
#[derive(Clone)]
pub struct ListenerConn {
    amqp: AmqpChannel,
    consumer: Consumer,
}

/// The listener actor.
pub struct ListenerActor {
    config: ListenerConfig,
    link: Link<ListenerConn>,
    sink: Sink,
    stats: Arc<ListenerStats>,
    /// Set by [`Drain`]: consume nothing more, never reconnect.
    draining: bool,
    /// The cancelled consumer's stream has ended (every delivery it had was handed over).
    drained: Arc<watch::Sender<bool>>,
}

impl ListenerActor {
    /// Start under a supervisor on its own arbiter; reports as `events.listener` in
    /// readiness. `stats` is what `GET /status` shows. Keep the address: the supervisor
    /// restarts the actor only while an address to it exists.
    pub fn start(
        config: ListenerConfig,
        sink: Sink,
        stats: Arc<ListenerStats>,
        readiness: &Readiness,
    ) -> Addr<Self> {
        let probe = readiness.probe("events.listener");
        let link = Link::new("listener", probe, config.backoff).with_check_every(Duration::from_millis(500));
        Supervisor::start_in_arbiter(&Arbiter::new().handle(), move |_| Self {
            config,
            link,
            sink,
            stats,
            draining: false,
            drained: Arc::new(watch::Sender::new(false)),
        })
    }

    /// The counters this listener updates.
    pub fn stats(&self) -> Arc<ListenerStats> {
        self.stats.clone()
    }
}

/// The arguments of a queue of `c`'s type. Classic queues are declared without
/// `x-queue-type`, so queues made before it existed stay equivalent; a quorum queue names
/// its type, and RabbitMQ refuses (406) to declare a queue that exists as the other type.
fn typed(c: &ListenerConfig) -> FieldTable {
    let mut args = FieldTable::default();
    if c.queue_type == QueueType::Quorum {
        args.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    }
    args
}

/// Declare the dead-letter exchange (fanout) and its queue `<queue>.dead`, bound to it.
async fn declare_dead_letters(ch: &lapin::Channel, c: &ListenerConfig) -> lapin::Result<()> {
    let durable_ex = ExchangeDeclareOptions { durable: true, ..ExchangeDeclareOptions::default() };
    let (exchange, queue) = (c.dead_letter_exchange(), c.dead_letter_queue());
    ch.exchange_declare(exchange.as_str().into(), ExchangeKind::Fanout, durable_ex, FieldTable::default())
        .await?;
    let durable_q = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    ch.queue_declare(queue.as_str().into(), durable_q, typed(c)).await?;
    let bind = QueueBindOptions::default();
    ch.queue_bind(queue.as_str().into(), exchange.as_str().into(), "#".into(), bind, FieldTable::default())
        .await
}

/// Declare the exchange, the dead letters, and the main queue with its bindings; set the
/// prefetch; start consuming.
async fn declare_and_consume(amqp: &AmqpChannel, c: &ListenerConfig) -> lapin::Result<Consumer> {
    let ch = &amqp.channel;
    declare_exchange(ch, &c.exchange).await?;
    declare_dead_letters(ch, c).await?;
    let mut args = typed(c);
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(c.dead_letter_exchange().as_str().into()),
    );
    let durable_q = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    ch.queue_declare(c.queue.as_str().into(), durable_q, args).await?;
    for key in BINDINGS {
        ch.queue_bind(
            c.queue.as_str().into(),
            c.exchange.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    ch.basic_qos(c.prefetch.max(1), BasicQosOptions::default()).await?;
    let tag = format!("{}-{}", c.connection_name, uuid::Uuid::new_v4().simple());
    ch.basic_consume(
        c.queue.as_str().into(),
        tag.as_str().into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
}

/// A declare error, marked [`Misconfigured`] when RabbitMQ refused the queue as it is
/// declared (PRECONDITION_FAILED, 406: it exists with other arguments, e.g. another type).
fn declare_refusal(err: lapin::Error, c: &ListenerConfig) -> anyhow::Error {
    let lapin::ErrorKind::ProtocolError(amqp) = err.kind() else { return err.into() };
    if amqp.get_id() != 406 {
        return err.into();
    }
    let wrong = Misconfigured(format!(
        "LISTENER_QUEUE {:?} exists with other arguments than LISTENER_QUEUE_TYPE={:?} declares \
         (delete it or change the setting): {}",
        c.queue,
        c.queue_type,
        amqp.get_message()
    ));
    anyhow::Error::new(err).context(wrong)
}

supervised!(ListenerActor, ListenerConn);

impl Backend for ListenerActor {
    fn connect(&mut self) -> Connecting<ListenerConn> {
        let c = self.config.clone();
        Box::pin(async move {
            let amqp = open(&c.url, &c.connection_name, c.timeout).await?;
            let consumer = match tokio::time::timeout(c.timeout, declare_and_consume(&amqp, &c)).await {
                Ok(Ok(consumer)) => consumer,
                Ok(Err(err)) => return Err(declare_refusal(err, &c)),
                Err(_) => anyhow::bail!("declaring the listener's queue timed out"),
            };
            Ok(ListenerConn { amqp, consumer })
        })
    }

    fn check(conn: ListenerConn) -> Checking {
        Box::pin(async move {
            if conn.amqp.is_open() { Ok(()) } else { Err(anyhow::anyhow!("RabbitMQ connection closed")) }
        })
    }

    fn on_connected(&mut self, conn: &ListenerConn, ctx: &mut Context<Self>) {
        let tag = conn.consumer.tag().to_string();
        tracing::info!(queue = %self.config.queue, consumer = %tag, "consuming");
        self.stats.set_consumer(Some(tag));
        ctx.add_stream(conn.consumer.clone());
    }

    fn on_start(&mut self, _: &mut Context<Self>) -> bool {
        !self.draining
    }

    fn on_restart(&mut self) {
        self.stats.set_consumer(None);
    }
}

impl StreamHandler<lapin::Result<Delivery>> for ListenerActor {
    fn handle(&mut self, item: lapin::Result<Delivery>, ctx: &mut Context<Self>) {
        let delivery = match item {
            Ok(d) => d,
            Err(e) => return supervision::lost(self, ctx, &e),
        };
        ListenerStats::bump(&self.stats.delivered);
        let Ok(conn) = self.link.conn() else { return };
        let message_id = delivery.properties.message_id().as_ref().map(ToString::to_string);
        let routing_key = super::dead::original_routing_key(&delivery);
        let decoded = decode(&delivery.data, message_id.as_deref(), &routing_key);
        let sink = self.sink.clone();
        let stats = self.stats.clone();
        let delays = self.config.backoff.delays();
        let in_flight = stats.start_delivery();
        let ack_within = self.config.timeout;
        ctx.spawn(wrap_future(async move {
            let _in_flight = in_flight;
            let event = match decoded {
                Ok(ev) => ev,
                Err(why) => {
                    tracing::warn!(error = %why, "dead-lettering a malformed message");
                    return dead_letter(&delivery, &stats).await;
                }
            };
            match sink.deliver_until_done(&event, delays, || conn.amqp.is_open(), &stats).await {
                Ok(()) => match tokio::time::timeout(ack_within, delivery.acker.ack(BasicAckOptions::default())).await {
                    Ok(Ok(true)) => ListenerStats::bump(&stats.acked),
                    // The channel closed under it: RabbitMQ redelivers the message.
                    Ok(Ok(false)) => tracing::debug!(event_id = ?event.id, "not acked: its channel is gone"),
                    Ok(Err(e)) => tracing::warn!(event_id = ?event.id, error = %e, "ack failed; RabbitMQ redelivers"),
                    Err(_) => tracing::warn!(event_id = ?event.id, "ack not sent within the timeout"),
                },
                Err(SinkError::Permanent(why)) => {
                    tracing::warn!(event_id = ?event.id, error = %why, "dead-lettering a refused event");
                    dead_letter(&delivery, &stats).await;
                }
                // The channel closed: the delivery is lost with it and RabbitMQ redelivers it.
                Err(SinkError::Transient(_)) => {}
            }
        }));
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        if self.draining {
            self.drained.send_replace(true);
        } else {
            supervision::lost(self, ctx, &"the consumer stream ended");
        }
    }
}

impl Handler<Drain> for ListenerActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Drain(within): Drain, _: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        let conn = self.link.conn().ok();
        let (stats, drained) = (self.stats.clone(), self.drained.clone());
        Box::pin(async move {
            let deadline = tokio::time::Instant::now() + within;
            let cancelled = match &conn {
                Some(conn) => {
                    let tag = conn.consumer.tag();
                    let cancel = conn.amqp.channel.basic_cancel(tag, BasicCancelOptions::default());
                    matches!(tokio::time::timeout_at(deadline, cancel).await, Ok(Ok(())))
                }
                None => false,
            };
            // Without a consumer (never connected, or the cancel failed) there is no stream
            // to wait for; what is in flight still is.
            // RabbitMQ redelivers whatever is still in flight at the deadline.
            let mut ended = drained.subscribe();
            let stream_done = async move {
                if cancelled {
                    let _ = ended.wait_for(|done| *done).await;
                }
            };
            wait_drained(&stats, stream_done, deadline, "listener").await;
        })
    }
}

async fn dead_letter(delivery: &Delivery, stats: &ListenerStats) {
    if delivery.acker.reject(BasicRejectOptions { requeue: false }).await.is_ok() {
        ListenerStats::bump(&stats.dead_lettered);
    }
}
