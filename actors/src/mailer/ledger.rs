//! Idempotency keys of mails (the `Idempotency-Key` header of the broker's `mail` action and
//! the mailer's `POST /send`): a mail sent with a key is sent once however often the client
//! retries it, as long as the mailer process lives (the last [`REMEMBERED`] keys, for
//! [`KEPT_FOR`]).
//!
//! As in the IETF `Idempotency-Key` draft: a key whose mail was sent answers as the first
//! send did, without sending; a key whose mail is being sent is a conflict (409: retry
//! shortly); a key used before for a different mail is refused (422). A send that failed
//! forgets its key, so the retry sends. Keys are not scoped to a user: use a fresh UUID.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, Instant};

use troupe_core::messages::SendMail;

/// Most keys remembered.
pub const REMEMBERED: usize = 10_000;
/// How long a sent mail's key is remembered.
pub const KEPT_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// What to do with a mail sent with a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it (the key is now marked as being sent).
    Send,
    /// It was sent: answer as if it had been sent now.
    AlreadySent,
    /// The same key's mail is being sent right now.
    InFlight,
    /// The key was used for a different mail.
    Mismatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mark {
    Sending,
    Sent,
}

/// The keys of the mails sent or being sent, each with its mail's fingerprint.
#[derive(Debug, Default)]
pub struct Ledger {
    keys: HashMap<String, (u64, Mark, Instant)>,
    /// Keys in the order they were first seen, for the bound.
    order: VecDeque<String>,
}

/// What identifies a mail: sender, recipient, subject and body.
pub fn fingerprint(mail: &SendMail) -> u64 {
    let mut h = DefaultHasher::new();
    (mail.from.as_ref().map(|f| f.as_str()), mail.to.as_str(), mail.subject.as_str(), mail.message.as_str())
        .hash(&mut h);
    h.finish()
}

impl Ledger {
    /// Decide about a mail with fingerprint `print` sent with `key`, at `now`.
    pub fn begin(&mut self, key: &str, print: u64, now: Instant) -> Admit {
        match self.keys.get(key) {
            Some(&(p, _, _)) if p != print => Admit::Mismatch,
            Some(&(_, Mark::Sending, _)) => Admit::InFlight,
            Some(&(_, Mark::Sent, at)) if now.duration_since(at) < KEPT_FOR => Admit::AlreadySent,
            _ => {
                if self.keys.insert(key.to_owned(), (print, Mark::Sending, now)).is_none() {
                    self.order.push_back(key.to_owned());
                }
                self.evict();
                Admit::Send
            }
        }
    }

    /// The mail sent with `key` was sent (`true`: remember it) or failed (forget the key).
    pub fn finish(&mut self, key: &str, sent: bool, now: Instant) {
        if sent {
            if let Some(entry) = self.keys.get_mut(key) {
                *entry = (entry.0, Mark::Sent, now);
            }
        } else if self.keys.remove(key).is_some() {
            // Out of the order too (failures are rare; a stale entry there would later evict
            // the key when it is used again).
            self.order.retain(|k| k != key);
        }
    }

    /// Drop the oldest keys beyond [`REMEMBERED`] (never one being sent).
    fn evict(&mut self) {
        while self.order.len() > REMEMBERED {
            let Some(old) = self.order.pop_front() else { break };
            if matches!(self.keys.get(&old), Some((_, Mark::Sending, _))) {
                self.order.push_back(old);
                break;
            }
            self.keys.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe_core::messages::MailRequest;

    fn mail(subject: &str) -> SendMail {
        MailRequest {
            from: String::new(),
            to: "you@there.com".into(),
            subject: subject.into(),
            message: "Hello".into(),
        }
        .parse()
        .expect("valid mail")
    }

    #[test]
    fn a_key_sends_once_then_answers_as_sent() {
        let (mut ledger, now, print) = (Ledger::default(), Instant::now(), fingerprint(&mail("Hi")));
        assert_eq!(ledger.begin("k", print, now), Admit::Send);
        assert_eq!(ledger.begin("k", print, now), Admit::InFlight);
        ledger.finish("k", true, now);
        assert_eq!(ledger.begin("k", print, now), Admit::AlreadySent);
        assert_eq!(ledger.begin("k", print, now + KEPT_FOR), Admit::Send, "forgotten after KEPT_FOR");
    }

    #[test]
    fn a_failed_send_forgets_its_key_and_another_mail_is_refused() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        let (hi, other) = (fingerprint(&mail("Hi")), fingerprint(&mail("Other")));
        assert_ne!(hi, other);
        assert_eq!(ledger.begin("k", hi, now), Admit::Send);
        ledger.finish("k", false, now);
        assert_eq!(ledger.begin("k", hi, now), Admit::Send, "a failed send may be retried");
        assert_eq!(ledger.begin("k", other, now), Admit::Mismatch);
    }

    #[test]
    fn the_oldest_sent_keys_go_beyond_the_bound() {
        let (mut ledger, now) = (Ledger::default(), Instant::now());
        for i in 0..=REMEMBERED {
            let key = i.to_string();
            assert_eq!(ledger.begin(&key, 1, now), Admit::Send);
            ledger.finish(&key, true, now);
        }
        assert_eq!(ledger.keys.len(), REMEMBERED);
        assert_eq!(ledger.begin("1", 1, now), Admit::AlreadySent);
        assert_eq!(ledger.begin("0", 1, now), Admit::Send, "the first key was forgotten");
    }
}
