//! Messages of the event pipeline (publisher, listener, in-process bus).
//!
//! An [`Event`] is what travels on the exchange: the Go platform's `{"name","data"}` body
//! plus Troupe's `id` and `level`. [`PublishEvent`] is answered with the event's id only
//! once the transport has taken responsibility for it (a RabbitMQ publisher confirm without
//! a returned message, or acceptance by the in-process bus). [`RunJob`] hands an event
//! named for a background job to the actor that runs it. [`ListDeadLetters`] and
//! [`ReplayDeadLetters`] are answered by whoever keeps the dead letters (the in-process
//! bus, the RabbitMQ `.dead` queue's reader, or a proxy to the listener that does).

use actix::Message;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::messages::LogLevel;
use crate::{RequestId, ServiceError};

/// One event as carried on the exchange (JSON body).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique id; also the AMQP `message_id`. Absent in events from Go-platform publishers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// What happened (`log`, `event`, `auth`, `mail`, ...).
    pub name: String,
    /// Free text (a string, as in the Go platform).
    pub data: String,
    /// Severity; decides the routing key `log.<LEVEL>`.
    #[serde(default)]
    pub level: LogLevel,
    /// The request that published it, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// The W3C trace context it was published in (also sent as AMQP headers), so the
    /// listener's work joins the publisher's trace; kept in the embedded queue's record too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Vendor trace state that goes with `traceparent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

impl Event {
    /// The routing key this event is published with: `log.<LEVEL>`.
    pub fn routing_key(&self) -> String {
        format!("log.{}", self.level.as_str())
    }
}

/// Publish one event; answers with its id once the transport confirmed it.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<String, ServiceError>")]
pub struct PublishEvent {
    /// The event's id; `None` lets the publisher make a fresh one. A caller retrying a
    /// publish that failed passes the same id again, so the retry is stored only once.
    pub id: Option<String>,
    /// What happened.
    pub name: String,
    /// Free text.
    pub data: String,
    /// Severity (routing key `log.<LEVEL>`).
    pub level: LogLevel,
    /// The request that publishes it (travels in the event).
    pub request_id: Option<RequestId>,
    /// The span it is published in (`Span::current()`); its trace context travels with the
    /// event (AMQP headers, the embedded queue's record).
    pub span: tracing::Span,
}

impl PublishEvent {
    /// An `INFO` event.
    pub fn info(name: impl Into<String>, data: impl Into<String>) -> Self {
        Self {
            id: None,
            name: name.into(),
            data: data.into(),
            level: LogLevel::Info,
            request_id: None,
            span: tracing::Span::current(),
        }
    }
}

/// Run the background job an event is named for (e.g. `mail`); `Ok` once it is done.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ServiceError>")]
pub struct RunJob(pub Event);

/// An event refused for good, kept with the reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Names it for a replay: its place among the embedded queue's dead letters; over
    /// RabbitMQ a fingerprint of the message (body, id, death), stable while it waits.
    pub seq: i64,
    /// The event as it was published.
    pub event: Event,
    /// Why it was refused.
    pub reason: String,
    /// When it was published.
    pub queued_at: DateTime<Utc>,
    /// When it was refused.
    pub dead_at: DateTime<Utc>,
}

/// The most recent dead letters, newest first (`GET /dead-letters`).
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<Vec<DeadLetter>, ServiceError>")]
pub struct ListDeadLetters(pub u32);

/// Queue the dead letter with this `seq` again (every one for `None`); answers how many.
#[derive(Debug, Clone, Copy, Message)]
#[rtype(result = "Result<u64, ServiceError>")]
pub struct ReplayDeadLetters(pub Option<i64>);
