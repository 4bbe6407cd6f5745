//! `troupe up`: every service in this process, actors addressed directly. With no
//! MAIL_HOST the built-in catcher is started and the mailer sends to it over SMTP.

use troupe_actors::auth::AuditTo;

use super::Platform;
use super::services::{auth, broker, catcher, events, frontend, logger, mailer};
use crate::cli::UpArgs;
use crate::reads::ReadGate;
use crate::status::StatusSource;

/// Start every service; the platform runs once [`Platform::run_until`] is awaited.
pub fn up(a: &UpArgs) -> anyhow::Result<Platform> {
    let mut p = Platform::all_in_one().measured(&a.common.metrics);
    let (r, w) = (p.readiness().clone(), p.workers(false));
    let logs = p.add(logger::local(&a.common, &a.logger, &r, w)?);
    let mail_settings = match mailer::wants_catcher(&a.mailer) {
        true => mailer::towards_catcher(&a.mailer, p.add(catcher::local(&a.common, &a.catcher, w)?)),
        false => a.mailer.clone(),
    };
    let mail = mailer::actor(&a.common, &mail_settings, &r)?;
    let sink = events::sink(logs.write.clone(), &a.listener, &a.logger);
    // Mail jobs run in this process: trusted, the gate is at the broker that took the event.
    let sink = events::with_mail(sink, mail.clone(), mail_settings.answer_within());
    let events = p.add(events::local(&a.common, &a.events, &a.listener, sink, &r)?);
    let (publish, dead_letters) = (events.publish, events.dead_letters);
    let audit = AuditTo::Events(publish.clone());
    let auth = p.add(auth::local(&a.common, &a.auth, &r, w, auth::Key::EphemeralAllowed, audit)?);
    // Decided on the settings as configured: no MAIL_HOST means the catcher, nothing leaves.
    let mail_gate = mailer::gate(&a.mailer, auth.clone().recipient(), a.auth.answer_within());
    let mail = p.add(mailer::server(&a.common, &mail_settings, mail, mail_gate.clone(), &r, w)?);
    // Open reads only for development: `troupe up` on loopback under READ_AUTH=auto.
    let read_gate = match a.broker.read_auth.needs_token(true, a.common.bind_address) {
        true => ReadGate::token_required(auth.clone().recipient(), a.auth.answer_within()),
        false => ReadGate::open(),
    };
    let status = StatusSource::Local { readiness: r.clone(), services: p.names() };
    let to = broker::Recipients {
        auth: auth.recipient(),
        mail,
        mail_gate,
        read_gate,
        logs,
        events: Some(publish),
        dead_letters,
    };
    p.add(broker::local(&a.common, &a.broker, &r, p.workers(true), to, status)?);
    p.add(frontend::local(&a.common, &a.frontend, w)?);
    Ok(p)
}
