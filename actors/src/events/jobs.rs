//! Background jobs run by the event consumers (see `docs/events.md`, "Which names do what").
//!
//! [`MailJob`] turns a `mail` event into [`SendMail`]: its `data` is the mailer's request
//! body `{"from","to","subject","message"}` (as JSON text, or a JSON string holding it),
//! parsed and validated with [`MailRequest::parse`]. A job that can never succeed (not JSON,
//! a bad address, an oversize body) answers `Invalid`, so the consumer dead-letters it; a
//! mailer outage answers `Unavailable`, so the consumer retries it without acking.
//!
//! Redelivery safety: the job remembers the ids of the last [`REMEMBERED`] events it mailed
//! and does not mail them again, so a redelivery after a lost ack (same process) sends no
//! second mail. Across a restart of the consumer a redelivered mail may still be sent twice.

use std::collections::{HashSet, VecDeque};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, Context, Handler, Recipient, ResponseActFuture, WrapFuture};
use serde_json::Value;
use troupe_core::ServiceError;
use troupe_core::messages::{MailRequest, RunJob, SendMail};

/// How many mailed event ids a [`MailJob`] remembers.
pub const REMEMBERED: usize = 10_000;

/// Parse a `mail` event's `data` into a [`SendMail`] (`Invalid` when it never can be).
pub fn mail_request(data: &str) -> Result<SendMail, ServiceError> {
    let value: Value = serde_json::from_str(data)
        .map_err(|e| ServiceError::Invalid(format!("mail job data is not JSON: {e}")))?;
    // A JSON string holding the request (double-encoded by some publishers).
    let value = match value {
        Value::String(inner) => serde_json::from_str(&inner)
            .map_err(|e| ServiceError::Invalid(format!("mail job data is not JSON: {e}")))?,
        other => other,
    };
    let request: MailRequest = serde_json::from_value(value).map_err(|e| {
        ServiceError::Invalid(format!(
            "mail job data must be {{\"from\",\"to\",\"subject\",\"message\"}}: {e}"
        ))
    })?;
    request.parse()
}

/// Runs `mail` jobs by sending [`SendMail`] to the mailer (the local actor or `MailerProxy`).
pub struct MailJob {
    mailer: Recipient<SendMail>,
    timeout: Duration,
    sent: HashSet<String>,
    order: VecDeque<String>,
}

impl MailJob {
    /// Start the job runner; each mail waits at most `timeout` for the mailer.
    pub fn start(mailer: Recipient<SendMail>, timeout: Duration) -> Addr<Self> {
        Self { mailer, timeout, sent: HashSet::new(), order: VecDeque::new() }.start()
    }

    fn remember(&mut self, id: String) {
        if self.sent.insert(id.clone()) {
            self.order.push_back(id);
            while self.order.len() > REMEMBERED {
                if let Some(old) = self.order.pop_front() {
                    self.sent.remove(&old);
                }
            }
        }
    }
}

impl Actor for MailJob {
    type Context = Context<Self>;
}

impl Handler<RunJob> for MailJob {
    type Result = ResponseActFuture<Self, Result<(), ServiceError>>;

    fn handle(&mut self, RunJob(event): RunJob, _: &mut Context<Self>) -> Self::Result {
        if event.id.as_ref().is_some_and(|id| self.sent.contains(id)) {
            tracing::debug!(event_id = ?event.id, "mail job already done; not mailing again");
            return Box::pin(actix::fut::ready(Ok(())));
        }
        let mail = match mail_request(&event.data) {
            // Sent in the event's trace (the mail joins the request that asked for it).
            Ok(mail) => super::consumer_span(&event).in_scope(|| mail.for_request(event.request_id.clone())),
            Err(e) => {
                tracing::warn!(event_id = ?event.id, error = %e, "refusing an invalid mail job");
                return Box::pin(actix::fut::ready(Err(e)));
            }
        };
        let (mailer, timeout) = (self.mailer.clone(), self.timeout);
        let send = async move {
            match mailer.send(mail).timeout(timeout).await {
                Ok(result) => result,
                Err(e) => {
                    tracing::warn!(error = %e, "mailer did not answer the mail job");
                    Err(ServiceError::unavailable("mailer"))
                }
            }
        };
        Box::pin(send.into_actor(self).map(move |result, act, _| {
            if let (Ok(()), Some(id)) = (&result, event.id) {
                act.remember(id);
            }
            result
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_data_parses_as_an_object_or_a_string_holding_one() {
        let obj = r#"{"from":"","to":"you@there.com","subject":"Hi","message":"Hello"}"#;
        let quoted = serde_json::to_string(obj).expect("json string");
        for data in [obj.to_owned(), quoted] {
            let mail = mail_request(&data).expect("valid");
            assert_eq!((mail.to.as_str(), mail.subject.as_str()), ("you@there.com", "Hi"));
        }
    }

    #[test]
    fn bad_mail_jobs_are_invalid_for_good() {
        for data in ["nope", "[1]", r#"{"to":"not an address","subject":"s","message":"m"}"#] {
            let err = mail_request(data).expect_err("refused");
            assert_eq!(err.status(), 422, "{data}: {err}");
        }
    }
}
