//! Messages of the mailer and of the built-in mail catcher.

use actix::Message;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::domain::Email;
use crate::{RequestId, ServiceError};

/// Longest subject accepted, in characters (RFC 5322 line limit).
pub const MAX_SUBJECT_LEN: usize = 998;
/// Longest `message` accepted, in bytes; larger mail is refused with 422 before anything is sent.
pub const MAX_MESSAGE_LEN: usize = 512 * 1024;

/// A mail subject: one line, no control characters (so no header injection).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Subject(String);

impl Subject {
    /// Parse a subject.
    pub fn parse(raw: &str) -> Result<Self, ServiceError> {
        if raw.chars().any(char::is_control) {
            return Err(ServiceError::Invalid("subject must be one line without control characters".into()));
        }
        if raw.chars().count() > MAX_SUBJECT_LEN {
            return Err(ServiceError::Invalid(format!(
                "subject must be at most {MAX_SUBJECT_LEN} characters"
            )));
        }
        Ok(Self(raw.trim().to_owned()))
    }

    /// The subject as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A mail body as given by the caller, at most [`MAX_MESSAGE_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct MailBody(String);

impl MailBody {
    /// Check the size limit.
    pub fn parse(raw: String) -> Result<Self, ServiceError> {
        if raw.len() > MAX_MESSAGE_LEN {
            return Err(ServiceError::Invalid(format!("message must be at most {MAX_MESSAGE_LEN} bytes")));
        }
        Ok(Self(raw))
    }

    /// The body as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The mail as a client sends it (`{"from","to","subject","message"}`), before parsing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MailRequest {
    /// Sender address; empty or missing means the configured `FROM_ADDRESS`.
    #[serde(default)]
    #[schema(schema_with = email_or_empty)]
    pub from: String,
    /// Recipient address.
    #[serde(default)]
    #[schema(required = true, format = Email, max_length = 255)]
    pub to: String,
    /// Subject line: one line, no control characters.
    #[serde(default)]
    #[schema(max_length = 998, pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")]
    pub subject: String,
    /// Body text, rendered into the HTML and plain-text templates.
    #[serde(default)]
    pub message: String,
}

/// The schema of `from`: an address, or empty for `FROM_ADDRESS`.
fn email_or_empty() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
    let email = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
        .max_length(Some(255));
    let empty = ObjectBuilder::new().schema_type(Type::String).max_length(Some(0));
    Schema::AnyOf(AnyOfBuilder::new().item(email).item(empty).build())
}

impl MailRequest {
    /// Parse into a [`SendMail`] (422 on a bad address, subject or size).
    pub fn parse(self) -> Result<SendMail, ServiceError> {
        let from = match self.from.trim() {
            "" => None,
            raw => Some(
                Email::parse(raw)
                    .map_err(|_| ServiceError::Invalid(format!("invalid from address: {raw:?}")))?,
            ),
        };
        let to = Email::parse(&self.to)
            .map_err(|_| ServiceError::Invalid(format!("invalid to address: {:?}", self.to)))?;
        Ok(SendMail {
            from,
            to,
            subject: Subject::parse(&self.subject)?,
            message: MailBody::parse(self.message)?,
            request_id: None,
            span: tracing::Span::current(),
            bearer: None,
            idempotency_key: None,
        })
    }
}

/// Render the templates with `message` and send the mail over SMTP.
#[derive(Debug, Clone, Message)]
#[rtype(result = "Result<(), ServiceError>")]
pub struct SendMail {
    /// Sender; `None` uses `FROM_ADDRESS`.
    pub from: Option<Email>,
    /// Recipient.
    pub to: Email,
    /// Subject line.
    pub subject: Subject,
    /// Body text.
    pub message: MailBody,
    /// The request (or event) this mail is sent for; logged with it and forwarded.
    pub request_id: Option<RequestId>,
    /// The span it is sent in: the mailer's work is traced as its child.
    pub span: tracing::Span,
    /// The sender's bearer token, forwarded to a mailer in another process (which checks it
    /// where mail can leave the machine, `MAIL_AUTH`).
    pub bearer: Option<SecretString>,
    /// The client's `Idempotency-Key`: the mailer sends a mail with a key once.
    pub idempotency_key: Option<String>,
}

impl SendMail {
    /// The same mail, sent for request `id` (in the current span).
    pub fn for_request(self, id: Option<RequestId>) -> Self {
        Self { request_id: id, span: tracing::Span::current(), ..self }
    }

    /// The same mail, sent on behalf of the holder of `bearer` (a token from the request).
    pub fn with_bearer(self, bearer: Option<SecretString>) -> Self {
        Self { bearer, ..self }
    }

    /// The same mail, sent once however often it comes with `key` (an `Idempotency-Key`).
    pub fn with_idempotency_key(self, key: Option<String>) -> Self {
        Self { idempotency_key: key, ..self }
    }
}

impl SendMail {
    /// The request this message came from (for forwarding over HTTP).
    pub fn to_request(&self) -> MailRequest {
        MailRequest {
            from: self.from.as_ref().map(ToString::to_string).unwrap_or_default(),
            to: self.to.to_string(),
            subject: self.subject.as_str().to_owned(),
            message: self.message.as_str().to_owned(),
        }
    }
}

/// One caught mail in the catcher's list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaughtSummary {
    /// Id (sortable by arrival).
    pub id: String,
    /// Envelope sender (`MAIL FROM`).
    pub from: String,
    /// Envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// Arrival time, RFC 3339.
    pub received_at: String,
    /// Size of the raw message in bytes.
    pub size: usize,
}

/// One caught mail in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CaughtMail {
    /// Id.
    pub id: String,
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// Decoded subject.
    pub subject: String,
    /// Arrival time, RFC 3339.
    pub received_at: String,
    /// Header fields in order, values decoded, as `[name, value]`.
    pub headers: Vec<(String, String)>,
    /// The plain-text part, if any.
    pub text: Option<String>,
    /// The HTML part, if any.
    pub html: Option<String>,
}

/// Store a mail the catcher's SMTP server received.
#[derive(Debug, Message)]
#[rtype(result = "Result<String, ServiceError>")]
pub struct CatchMail {
    /// Envelope sender.
    pub from: String,
    /// Envelope recipients.
    pub to: Vec<String>,
    /// The message as received (headers and body).
    pub raw: Vec<u8>,
}

/// List caught mail, newest first.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<CaughtSummary>, ServiceError>")]
pub struct ListCaught;

/// Read one caught mail, parsed.
#[derive(Debug, Message)]
#[rtype(result = "Result<CaughtMail, ServiceError>")]
pub struct GetCaught {
    /// Which.
    pub id: String,
}

/// Read one caught mail as received.
#[derive(Debug, Message)]
#[rtype(result = "Result<Vec<u8>, ServiceError>")]
pub struct GetCaughtRaw {
    /// Which.
    pub id: String,
}

/// Delete one caught mail (`Some(id)`) or all of them (`None`).
#[derive(Debug, Message)]
#[rtype(result = "Result<(), ServiceError>")]
pub struct DeleteCaught {
    /// Which; `None` for all.
    pub id: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(from: &str, to: &str, subject: &str) -> MailRequest {
        MailRequest { from: from.into(), to: to.into(), subject: subject.into(), message: "Hi".into() }
    }

    #[test]
    fn a_valid_request_parses_and_an_empty_from_means_the_default() {
        let msg = request("", "You@There.com", " Hello ").parse().expect("valid");
        assert_eq!((msg.from, msg.to.as_str(), msg.subject.as_str()), (None, "you@there.com", "Hello"));
        assert_eq!(msg.message.as_str(), "Hi");
    }

    #[test]
    fn bad_addresses_injections_and_oversize_bodies_are_invalid() {
        let cases = [
            request("", "nope", "s"),
            request("a@@b.c", "you@there.com", "s"),
            request("", "you@there.com\r\nBcc: x@y.z", "s"),
            request("", "you@there.com", "s\r\nBcc: x@y.z"),
            request("", "you@there.com", &"s".repeat(MAX_SUBJECT_LEN + 1)),
            MailRequest { message: "x".repeat(MAX_MESSAGE_LEN + 1), ..request("", "you@there.com", "s") },
        ];
        for case in cases {
            let err = case.clone().parse().expect_err("rejected");
            assert_eq!(err.status(), 422, "{case:?}: {err}");
        }
    }
}
