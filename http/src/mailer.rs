//! The mailer's HTTP adapter (:8084): `POST /send` `{"from","to","subject","message"}` ->
//! 202 `sent to <to>` (Go contract). Addresses, subject and size are parsed here (422 when
//! bad); the mailer actor renders and sends.

use std::time::Duration;

use actix::Recipient;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::web::{self, ServiceConfig};
use troupe_core::messages::{MailRequest, SendMail};
use troupe_core::{Envelope, RequestId};

use crate::api::{ApiError, CurrentRequestId, JsonBody, ask, reply};

/// What the mailer routes need.
#[derive(Clone)]
pub struct MailerState {
    /// The mailer actor.
    pub mailer: Recipient<SendMail>,
    /// Deadline for each send.
    pub timeout: Duration,
}

/// The mailer's routes.
pub fn routes(state: MailerState) -> impl Fn(&mut ServiceConfig) + Clone + Send + 'static {
    move |cfg: &mut ServiceConfig| {
        cfg.app_data(web::Data::new(state.clone())).route("/send", web::post().to(send));
    }
}

/// Send a parsed mail for request `request_id` through `mailer` within `timeout`; returns
/// the recipient.
pub async fn send_mail(
    mailer: &Recipient<SendMail>,
    request: MailRequest,
    request_id: RequestId,
    timeout: Duration,
) -> Result<String, ApiError> {
    let msg = request.parse()?.for_request(Some(request_id));
    let to = msg.to.to_string();
    ask(mailer, msg, timeout, "mailer").await?;
    Ok(to)
}

#[tracing::instrument(name = "mailer.send", skip_all)]
async fn send(
    state: web::Data<MailerState>,
    request_id: CurrentRequestId,
    JsonBody(request): JsonBody<MailRequest>,
) -> Result<HttpResponse, ApiError> {
    let to = send_mail(&state.mailer, request, request_id.into_inner(), state.timeout).await?;
    Ok(reply(StatusCode::ACCEPTED, Envelope::ok(format!("sent to {to}"))))
}
