//! The listener's dead letters over RabbitMQ: the `<queue>.dead` queue, listed and replayed
//! by the [`DeadLetterQueue`] actor (it answers [`ListDeadLetters`] and
//! [`ReplayDeadLetters`] like the in-process bus does).
//!
//! Each request opens its own connection (the console asks rarely) and is done within one
//! deadline; requests of one process run one after another, so a listing never hides the
//! messages a replay is looking for.
//!
//! - **List** is a peek: `basic.get` without ack of the messages that were in the queue when
//!   it started (at most [`MAX_SCAN`]), then all of them handed back with one
//!   `basic.nack(multiple, requeue)`, confirmed by a passive declare that counts them back
//!   before the reply; a connection lost half-way hands them back too. RabbitMQ puts requeued
//!   messages back in their place, so the order stays; they come back marked `redelivered`
//!   (nothing else reads `.dead`). The newest `limit` are answered, newest first. Each one's
//!   `seq` is a fingerprint of the message (body, id, death), not a place: it names the same
//!   message in a later replay however the queue moved. The reason comes from the `x-death`
//!   header (`rejected`, `expired`, ...; the listener logs the sink's own reason).
//! - **Replay** takes the messages the same way, publishes each chosen one (the one whose
//!   fingerprint is `seq`, or every one) persistent and `mandatory` straight to the queue it
//!   died in (the default exchange), waits for the publisher confirm, and only then acks it
//!   on `.dead`: at least once, a copy left by a lost ack is stored once thanks to its event
//!   id. The message keeps its properties and headers (`x-death` included, so the listener
//!   still reads the routing key it was published with). Messages not chosen are handed back.
//!   A replay of everything stops taking messages after half the deadline and says how many
//!   it queued; the rest waits for the next one.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, Addr, Arbiter, Context, Handler, ResponseFuture};
use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions, ConfirmSelectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use secrecy::SecretString;
use tokio::time::Instant;
use troupe_core::ServiceError;
use troupe_core::messages::{DeadLetter, Event, ListDeadLetters, ReplayDeadLetters};

use super::decode;
use super::listener::ListenerConfig;
use super::publisher::{AmqpChannel, open};

/// Most messages one request takes from `.dead` (a listing shows the newest of these).
pub const MAX_SCAN: usize = 10_000;

/// What the reader of `.dead` needs.
#[derive(Clone)]
pub struct DeadLetterConfig {
    /// `amqp://` URL of RabbitMQ (a cluster's nodes separated by commas).
    pub url: SecretString,
    /// The listener's queue; its dead letters are in `<queue>.dead`.
    pub queue: String,
    /// Deadline for connecting.
    pub connect_within: Duration,
    /// Deadline for a whole request (connect, take, publish, hand back).
    pub within: Duration,
    /// Connection name shown by RabbitMQ.
    pub connection_name: String,
}

impl DeadLetterConfig {
    /// The dead letters of the listener configured by `listener`, each request done within
    /// `within`.
    pub fn of(listener: &ListenerConfig, within: Duration) -> Self {
        Self {
            url: listener.url.clone(),
            queue: listener.queue.clone(),
            connect_within: listener.timeout,
            within,
            connection_name: format!("{}-dead-letters", listener.connection_name),
        }
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }
}

/// The reader of `<queue>.dead`.
pub struct DeadLetterQueue {
    config: DeadLetterConfig,
    /// One request at a time.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl DeadLetterQueue {
    /// Start on its own arbiter.
    pub fn start(config: DeadLetterConfig) -> Addr<Self> {
        let turn = Arc::default();
        Self::start_in_arbiter(&Arbiter::new().handle(), move |_| Self { config, turn })
    }
}

impl Actor for DeadLetterQueue {
    type Context = Context<Self>;
}

impl Handler<ListDeadLetters> for DeadLetterQueue {
    type Result = ResponseFuture<Result<Vec<DeadLetter>, ServiceError>>;

    fn handle(&mut self, ListDeadLetters(limit): ListDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let (config, turn) = (self.config.clone(), self.turn.clone());
        Box::pin(async move {
            let _turn = turn.lock().await;
            within(&config, list(&config, limit)).await
        })
    }
}

impl Handler<ReplayDeadLetters> for DeadLetterQueue {
    type Result = ResponseFuture<Result<u64, ServiceError>>;

    fn handle(&mut self, ReplayDeadLetters(seq): ReplayDeadLetters, _: &mut Context<Self>) -> Self::Result {
        let (config, turn) = (self.config.clone(), self.turn.clone());
        Box::pin(async move {
            let _turn = turn.lock().await;
            let stop_taking = Instant::now() + config.within / 2;
            within(&config, replay(&config, seq, stop_taking)).await
        })
    }
}

/// `work` within the request deadline; a failure is logged and answered `Unavailable`.
/// Dropped at the deadline, `work` drops its connection, which hands back what it held.
async fn within<T>(
    config: &DeadLetterConfig,
    work: impl Future<Output = anyhow::Result<T>>,
) -> Result<T, ServiceError> {
    match tokio::time::timeout(config.within, work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(err)) => {
            tracing::warn!(queue = %config.dead_queue(), error = %format!("{err:#}"), "dead letters unavailable");
            Err(ServiceError::unavailable("events"))
        }
        Err(_) => {
            tracing::warn!(queue = %config.dead_queue(), within = ?config.within, "dead letters: no answer in time");
            Err(ServiceError::unavailable("events"))
        }
    }
}

/// A connection of its own with a channel in confirm mode.
async fn session(config: &DeadLetterConfig) -> anyhow::Result<AmqpChannel> {
    let amqp = open(&config.url, &config.connection_name, config.connect_within).await?;
    amqp.channel.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(amqp)
}

/// The messages in `.dead` now, one `basic.get` at a time, unacked, at most [`MAX_SCAN`]
/// and none that arrived after the first was taken.
struct Taking {
    queue: String,
    bound: usize,
    taken: usize,
    /// The highest delivery tag taken before the last one and not acked.
    held: Option<u64>,
    /// The last one taken, unless it was acked.
    last: Option<u64>,
}

impl Taking {
    fn new(queue: String) -> Self {
        Self { queue, bound: MAX_SCAN, taken: 0, held: None, last: None }
    }

    async fn next(&mut self, ch: &Channel) -> lapin::Result<Option<Delivery>> {
        if self.taken >= self.bound {
            return Ok(None);
        }
        let Some(got) = ch.basic_get(self.queue.as_str().into(), BasicGetOptions { no_ack: false }).await?
        else {
            return Ok(None);
        };
        if self.taken == 0 {
            let there = usize::try_from(got.message_count).unwrap_or(usize::MAX);
            self.bound = self.bound.min(there.saturating_add(1));
        }
        self.taken += 1;
        self.held = self.last.or(self.held);
        self.last = Some(got.delivery.delivery_tag);
        Ok(Some(got.delivery))
    }

    /// Ack the message [`Taking::next`] gave last.
    async fn ack_last(&mut self, ch: &Channel) -> lapin::Result<()> {
        if let Some(tag) = self.last.take() {
            ch.basic_ack(tag, BasicAckOptions::default()).await?;
        }
        Ok(())
    }

    /// Requeue every message taken and not acked, and wait until the queue has them back.
    /// (RabbitMQ closes the channel on a nack naming a tag it does not hold, hence the
    /// highest one *held*.)
    async fn hand_back(self, ch: &Channel) -> lapin::Result<()> {
        if let Some(tag) = self.last.or(self.held) {
            ch.basic_nack(tag, BasicNackOptions { multiple: true, requeue: true }).await?;
            // The queue handles this channel's requests in order: once it answers the
            // declare, the requeue is done.
            let passive = QueueDeclareOptions { passive: true, ..QueueDeclareOptions::default() };
            ch.queue_declare(self.queue.as_str().into(), passive, FieldTable::default()).await?;
        }
        ch.close(200, "done".into()).await
    }
}

async fn list(config: &DeadLetterConfig, limit: u32) -> anyhow::Result<Vec<DeadLetter>> {
    let amqp = session(config).await?;
    let mut taking = Taking::new(config.dead_queue());
    let mut letters = Vec::new();
    while let Some(delivery) = taking.next(&amqp.channel).await? {
        letters.push(letter(&delivery));
    }
    taking.hand_back(&amqp.channel).await?;
    letters.reverse();
    letters.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(letters)
}

async fn replay(config: &DeadLetterConfig, seq: Option<i64>, stop_taking: Instant) -> anyhow::Result<u64> {
    let amqp = session(config).await?;
    let ch = &amqp.channel;
    let mut taking = Taking::new(config.dead_queue());
    let mut replayed = 0;
    while Instant::now() < stop_taking {
        let Some(delivery) = taking.next(ch).await? else { break };
        if seq.is_some_and(|seq| fingerprint(&delivery) != seq) {
            continue;
        }
        let to = death(&delivery.properties).map_or_else(|| config.queue.clone(), |d| d.queue);
        republish(ch, &to, &delivery).await?;
        taking.ack_last(ch).await?;
        replayed += 1;
        if seq.is_some() {
            break;
        }
    }
    taking.hand_back(ch).await?;
    Ok(replayed)
}

/// Publish `delivery` to `queue` (the default exchange routes by queue name) and wait for
/// the confirm.
async fn republish(ch: &Channel, queue: &str, delivery: &Delivery) -> anyhow::Result<()> {
    let props = delivery.properties.clone().with_delivery_mode(2);
    let opts = BasicPublishOptions { mandatory: true, ..BasicPublishOptions::default() };
    let confirm = ch.basic_publish("".into(), queue.into(), opts, &delivery.data, props).await?;
    match confirm.await? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(_)) => anyhow::bail!("replaying to {queue}: unroutable (the queue is gone)"),
        Confirmation::Nack(_) | Confirmation::NotRequested => anyhow::bail!("replaying to {queue}: refused"),
    }
}

/// What the first `x-death` entry says: the latest death, in which queue, why, how often.
struct Death {
    reason: String,
    queue: String,
    count: i64,
    time: Option<DateTime<Utc>>,
    routing_key: Option<String>,
}

fn text(value: &AMQPValue) -> Option<String> {
    match value {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn death(props: &BasicProperties) -> Option<Death> {
    let AMQPValue::FieldArray(deaths) = props.headers().as_ref()?.inner().get("x-death")? else {
        return None;
    };
    let AMQPValue::FieldTable(first) = deaths.as_slice().first()? else { return None };
    let field = |key: &str| first.inner().get(key);
    let count = match field("count") {
        Some(AMQPValue::LongLongInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => i64::from(*n),
        _ => 1,
    };
    let time = match field("time") {
        Some(AMQPValue::Timestamp(t)) => i64::try_from(*t).ok().and_then(|t| DateTime::from_timestamp(t, 0)),
        _ => None,
    };
    let routing_key = match field("routing-keys") {
        Some(AMQPValue::FieldArray(keys)) => keys.as_slice().first().and_then(text),
        _ => None,
    };
    Some(Death {
        reason: field("reason").and_then(text).unwrap_or_else(|| "dead-lettered".into()),
        queue: field("queue").and_then(text).unwrap_or_default(),
        count,
        time,
        routing_key,
    })
}

/// The routing key a delivery was first published with: its own, or for a replayed one
/// (published by queue name) the one its `x-death` header kept.
pub fn original_routing_key(delivery: &Delivery) -> String {
    let own = delivery.routing_key.as_str();
    match own.starts_with("log.") {
        true => own.to_owned(),
        false => death(&delivery.properties).and_then(|d| d.routing_key).unwrap_or_else(|| own.to_owned()),
    }
}

/// FNV-1a over what makes a dead letter this one, cut to 53 bits (exact in JavaScript).
fn fingerprint(delivery: &Delivery) -> i64 {
    let props = &delivery.properties;
    let id = props.message_id().as_ref().map(|id| id.as_str().to_owned()).unwrap_or_default();
    let when = death(props).map(|d| (d.count, d.time.map(|t| t.timestamp()))).unwrap_or_default();
    let death = format!("\u{0}{id}\u{0}{}\u{0}{:?}", when.0, when.1);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in delivery.data.iter().chain(death.as_bytes()) {
        hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3);
    }
    i64::try_from(hash & ((1 << 53) - 1)).unwrap_or_default()
}

/// The dead letter `delivery` is, as the console lists it.
fn letter(delivery: &Delivery) -> DeadLetter {
    let props = &delivery.properties;
    let message_id = props.message_id().as_ref().map(|id| id.as_str().to_owned());
    let death = death(props);
    let mut reason = match &death {
        Some(d) if d.count > 1 => format!("{} in {} ({} times)", d.reason, d.queue, d.count),
        Some(d) => format!("{} in {}", d.reason, d.queue),
        None => "dead-lettered".to_owned(),
    };
    let event = match decode(&delivery.data, message_id.as_deref(), &original_routing_key(delivery)) {
        // An event without an id gets a fresh one per decoding: show none.
        Ok(event) if event.id.as_deref().is_some_and(|id| id.starts_with("anonymous-")) => {
            Event { id: None, ..event }
        }
        Ok(event) => event,
        Err(malformed) => {
            reason = format!("{reason}: {malformed}");
            Event {
                id: message_id,
                name: String::new(),
                data: String::from_utf8_lossy(&delivery.data).into_owned(),
                level: troupe_core::messages::LogLevel::default(),
                request_id: None,
                traceparent: None,
                tracestate: None,
            }
        }
    };
    let dead_at = death.and_then(|d| d.time).unwrap_or_else(Utc::now);
    let queued_at = props
        .timestamp()
        .and_then(|t| i64::try_from(t).ok())
        .and_then(|t| DateTime::from_timestamp(t, 0))
        .unwrap_or(dead_at);
    DeadLetter { seq: fingerprint(delivery), event, reason, queued_at, dead_at }
}

#[cfg(test)]
mod tests {
    use lapin::types::FieldArray;

    use super::*;

    /// A message as RabbitMQ dead-letters it: `x-death` naming `queue`, `count` deaths.
    fn dead(body: &[u8], message_id: Option<&str>, count: i64) -> Delivery {
        let mut entry = FieldTable::default();
        entry.insert("reason".into(), AMQPValue::LongString("rejected".into()));
        entry.insert("queue".into(), AMQPValue::LongString("troupe.logs".into()));
        entry.insert("count".into(), AMQPValue::LongLongInt(count));
        entry.insert("time".into(), AMQPValue::Timestamp(1_700_000_000));
        let keys = FieldArray::from(vec![AMQPValue::LongString("log.WARNING".into())]);
        entry.insert("routing-keys".into(), AMQPValue::FieldArray(keys));
        let mut headers = FieldTable::default();
        headers.insert("x-death".into(), AMQPValue::FieldArray(vec![AMQPValue::FieldTable(entry)].into()));
        let mut d = Delivery::mock(1, "troupe.logs.dlx".into(), "log.WARNING".into(), false, body.to_vec());
        let mut props = BasicProperties::default().with_headers(headers).with_timestamp(1_699_999_999);
        if let Some(id) = message_id {
            props = props.with_message_id(id.into());
        }
        d.properties = props;
        d
    }

    #[test]
    fn a_dead_letter_reads_its_reason_times_and_event_from_the_message() {
        let d = dead(br#"{"id":"e-1","name":"mail","data":"x"}"#, Some("e-1"), 2);
        let letter = letter(&d);
        assert_eq!(letter.reason, "rejected in troupe.logs (2 times)");
        assert_eq!((letter.event.name.as_str(), letter.event.id.as_deref()), ("mail", Some("e-1")));
        assert_eq!(letter.event.level, troupe_core::messages::LogLevel::Warning, "from the routing key");
        assert_eq!(letter.dead_at.timestamp(), 1_700_000_000);
        assert_eq!(letter.queued_at.timestamp(), 1_699_999_999);
        assert_eq!(letter.seq, fingerprint(&d), "the same message, the same seq");
        assert!((0..1_i64 << 53).contains(&letter.seq));
        let other = dead(br#"{"id":"e-2","name":"mail","data":"x"}"#, Some("e-2"), 2);
        assert_ne!(fingerprint(&other), letter.seq);
        let died_again = dead(br#"{"id":"e-1","name":"mail","data":"x"}"#, Some("e-1"), 3);
        assert_ne!(fingerprint(&died_again), letter.seq, "a later death is another dead letter");
    }

    #[test]
    fn a_malformed_or_id_less_message_is_still_listed() {
        let bad = letter(&dead(b"not json", None, 1));
        assert!(
            bad.reason.starts_with("rejected in troupe.logs: malformed event: body is not JSON"),
            "{bad:?}"
        );
        assert_eq!((bad.event.name.as_str(), bad.event.data.as_str()), ("", "not json"));
        let go = letter(&dead(br#"{"name":"event","data":"Go"}"#, None, 1));
        assert_eq!((go.event.name.as_str(), go.event.id), ("event", None), "no made-up id");
    }

    #[test]
    fn a_replayed_message_keeps_the_routing_key_it_was_published_with() {
        let mut d = dead(br#"{"name":"event","data":"x"}"#, None, 1);
        assert_eq!(original_routing_key(&d), "log.WARNING");
        d.routing_key = "troupe.logs".into();
        assert_eq!(original_routing_key(&d), "log.WARNING", "from x-death");
        d.properties = BasicProperties::default();
        assert_eq!(original_routing_key(&d), "troupe.logs");
    }
}
