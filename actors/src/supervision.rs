//! Supervision: connect with backoff, answer "unavailable" while down, restart on loss.
//!
//! An actor that owns a backend connection implements [`Backend`] and keeps a [`Link`]:
//!
//! - `started()` calls [`connect`]. The attempt runs on the actor's context without blocking
//!   its mailbox, so requests that arrive meanwhile are answered at once with
//!   `ServiceError::Unavailable` (HTTP 503) instead of queueing behind the connect.
//! - A failed attempt waits the next backoff delay ([`BackoffPolicy`]: jittered, capped,
//!   unlimited) and then stops the actor; its actix `Supervisor` restarts it (same value, so
//!   the backoff state in the `Link` survives) and `started()` tries again.
//! - Once connected, a periodic [`Backend::check`] and every call made through [`call`] watch
//!   for connection loss; on loss the actor stops, and the supervisor restarts it, which
//!   reconnects. Requests in flight at that moment get "unavailable".
//! - The state (connecting / ready) is reported to the process's [`Readiness`] registry,
//!   which `GET /readyz` shows.
//! - A refusal that retrying cannot fix (a wrong vhost, bad credentials, a missing
//!   database: the backend's `connect` says so with a [`Misconfigured`] error) is said once,
//!   at `error` level, and shown in `/readyz` as `misconfigured` with the reason; it is
//!   retried at the longest backoff delay only, quietly, so a fix on the server is picked up.
//!
//! [`Readiness`]: troupe_core::health::Readiness

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use actix::fut::{ActorFutureExt, ready, wrap_future};
use actix::{Actor, ActorContext, AsyncContext, Context, ResponseActFuture, Supervised};
use futures_util::future::LocalBoxFuture;
use troupe_core::ServiceError;
use troupe_core::backoff::{BackoffPolicy, Delays};
use troupe_core::health::{BackendState, Probe};

/// A connection refused for a reason retrying will not fix. The text names the setting
/// to change (e.g. "RabbitMQ refused the vhost in RABBIT_URL"); it is shown by `/readyz`, so
/// it carries no secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Misconfigured(pub String);

impl Misconfigured {
    /// The misconfiguration somewhere in `err`'s chain, if any.
    pub fn find(err: &anyhow::Error) -> Option<&Self> {
        // anyhow looks through every context layer, and at the root error.
        err.downcast_ref::<Self>()
    }
}

/// What [`Backend::connect`] returns: the connection, opened without blocking the mailbox.
pub type Connecting<C> = LocalBoxFuture<'static, anyhow::Result<C>>;

/// What [`Backend::check`] returns.
pub type Checking = LocalBoxFuture<'static, anyhow::Result<()>>;

/// The connection type of a backend-owning actor and the accessor of its [`Link`];
/// written by [`supervised!`](crate::supervision::supervised), not by hand.
pub trait Linked {
    /// The connection (or pool) handed to each request; cloned per request.
    type Conn: Clone + 'static;

    /// The actor's link state.
    fn link(&mut self) -> &mut Link<Self::Conn>;
}

/// An actor that owns a connection to a backend. Its `Actor`, `Supervised` and [`Linked`]
/// impls come from [`supervised!`](crate::supervision::supervised); the hooks let it add to
/// them.
pub trait Backend: Actor<Context = Context<Self>> + Supervised + Linked {
    /// Open a connection. Must time out on its own (no unbounded waits).
    fn connect(&mut self) -> Connecting<Self::Conn>;

    /// A cheap liveness check of an open connection, run periodically.
    fn check(conn: Self::Conn) -> Checking;

    /// Called once a connection is open, before any request uses it (e.g. to attach a
    /// consumer stream to the context). Does nothing by default.
    fn on_connected(&mut self, _conn: &Self::Conn, _ctx: &mut Context<Self>) {}

    /// Called when the actor starts (and at each restart), before it connects; `false`
    /// keeps it from connecting (e.g. while draining). Connects by default.
    fn on_start(&mut self, _ctx: &mut Context<Self>) -> bool {
        true
    }

    /// Called when its supervisor restarts the actor, before the link forgets the
    /// connection. Does nothing by default.
    fn on_restart(&mut self) {}

    /// Called when the actor stops (for a restart or for good). Does nothing by default.
    fn on_stop(&mut self) {}
}

/// The `Actor`, `Supervised` and [`Linked`] impls of a backend-owning actor `$actor`, whose
/// [`Link`] is its field `link` and whose connection is a `$conn`: it connects when it
/// starts ([`connect`], after [`Backend::on_start`]) and forgets the connection when its
/// supervisor restarts it (after [`Backend::on_restart`]).
macro_rules! supervised {
    ($actor:ty, $conn:ty) => {
        impl ::actix::Actor for $actor {
            type Context = ::actix::Context<Self>;

            fn started(&mut self, ctx: &mut Self::Context) {
                if $crate::supervision::Backend::on_start(self, ctx) {
                    $crate::supervision::connect(self, ctx);
                }
            }

            fn stopped(&mut self, _: &mut Self::Context) {
                $crate::supervision::Backend::on_stop(self);
            }
        }

        impl ::actix::Supervised for $actor {
            fn restarting(&mut self, _: &mut Self::Context) {
                $crate::supervision::Backend::on_restart(self);
                self.link.reset();
            }
        }

        impl $crate::supervision::Linked for $actor {
            type Conn = $conn;

            fn link(&mut self) -> &mut $crate::supervision::Link<$conn> {
                &mut self.link
            }
        }
    };
}
pub(crate) use supervised;

/// An error from a backend call that knows whether the connection is gone.
pub trait BackendError {
    /// True when the connection itself failed (the actor should reconnect).
    fn is_connection_lost(&self) -> bool;
    /// The client-safe error; `service` names the service for "unavailable".
    fn into_service_error(self, service: &str) -> ServiceError;
}

/// Connection state, backoff and readiness reporting of one backend-owning actor.
pub struct Link<C> {
    service: &'static str,
    probe: Probe,
    policy: BackoffPolicy,
    delays: Delays,
    check_every: Duration,
    conn: Option<C>,
    failed_attempts: u32,
    /// The misconfiguration last said, so that it is said once.
    said: Option<Misconfigured>,
    /// Whether [`connect`] ran before: every later run is a restart by the supervisor.
    started: bool,
}

impl<C: Clone> Link<C> {
    /// A link for `service` (used in "`service` unavailable") reporting to `probe`.
    pub fn new(service: &'static str, probe: Probe, policy: BackoffPolicy) -> Self {
        Self {
            service,
            probe,
            policy,
            delays: policy.delays(),
            check_every: Duration::from_secs(2),
            conn: None,
            failed_attempts: 0,
            said: None,
            started: false,
        }
    }

    /// How often an open connection is checked (default 2 s).
    pub fn with_check_every(mut self, every: Duration) -> Self {
        self.check_every = every;
        self
    }

    /// The open connection, or `Unavailable` at once when there is none.
    pub fn conn(&self) -> Result<C, ServiceError> {
        self.conn.clone().ok_or_else(|| ServiceError::unavailable(self.service))
    }

    /// True when connected.
    pub fn is_ready(&self) -> bool {
        self.conn.is_some()
    }

    /// Forget the connection (on restart or loss) and report "connecting".
    pub fn reset(&mut self) {
        self.conn = None;
        match &self.said {
            // Trying again changes nothing about what was found wrong.
            Some(wrong) => self.probe.misconfigured(self.failed_attempts, wrong.0.clone()),
            None => self.probe.set(BackendState::Connecting, self.failed_attempts),
        }
    }

    /// The service name used in errors.
    pub fn service(&self) -> &'static str {
        self.service
    }

    fn connected(&mut self, conn: C) {
        self.conn = Some(conn);
        self.failed_attempts = 0;
        self.said = None;
        self.delays = self.policy.delays();
        self.probe.set(BackendState::Ready, 0);
    }

    /// Report `wrong` (said once) and wait the longest delay before trying again.
    fn misconfigured(&mut self, wrong: Misconfigured) -> Duration {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        self.probe.misconfigured(self.failed_attempts, wrong.0.clone());
        if self.said.as_ref() != Some(&wrong) {
            tracing::error!(
                backend = self.probe.name(),
                retry_every = ?self.policy.max,
                "{wrong}; this will not fix itself: change the setting or the server"
            );
            self.said = Some(wrong);
        }
        self.policy.max
    }

    fn failed(&mut self) -> Duration {
        self.failed_attempts = self.failed_attempts.saturating_add(1);
        self.probe.set(BackendState::Connecting, self.failed_attempts);
        self.delays.next_delay()
    }
}

/// Start connecting; call from `started()`.
pub fn connect<A: Backend>(act: &mut A, ctx: &mut Context<A>) {
    let link = act.link();
    if std::mem::replace(&mut link.started, true) {
        link.probe.restarted();
    }
    link.reset();
    let attempt = act.connect();
    ctx.spawn(wrap_future::<_, A>(attempt).map(|res, act, ctx| {
        let link = act.link();
        match res {
            Ok(conn) => {
                tracing::info!(backend = link.probe.name(), "connected");
                link.connected(conn.clone());
                ctx.run_interval(link.check_every, check::<A>);
                act.on_connected(&conn, ctx);
            }
            Err(err) => {
                let delay = match Misconfigured::find(&err) {
                    Some(wrong) => link.misconfigured(wrong.clone()),
                    None => {
                        link.said = None;
                        let delay = link.failed();
                        tracing::warn!(
                            backend = link.probe.name(),
                            attempt = link.failed_attempts,
                            retry_in = ?delay,
                            error = %format!("{err:#}"),
                            "connection failed"
                        );
                        delay
                    }
                };
                ctx.run_later(delay, |_, ctx| ctx.stop());
            }
        }
    }));
}

/// Report a lost connection: the actor stops and its supervisor restarts it.
pub fn lost<A: Backend>(act: &mut A, ctx: &mut Context<A>, why: &dyn Display) {
    let link = act.link();
    if link.conn.is_none() {
        return;
    }
    tracing::warn!(backend = link.probe.name(), error = %why, "connection lost; reconnecting");
    link.reset();
    ctx.stop();
}

fn check<A: Backend>(act: &mut A, ctx: &mut Context<A>) {
    let Ok(conn) = act.link().conn() else { return };
    ctx.spawn(wrap_future::<_, A>(A::check(conn)).map(|res, act, ctx| {
        if let Err(err) = res {
            lost(act, ctx, &format!("{err:#}"));
        }
    }));
}

/// Run one request against the connection.
///
/// Answers `Unavailable` at once when disconnected; when the request fails because the
/// connection is gone, the actor is told to reconnect. The future runs concurrently with
/// other requests on the actor's arbiter.
pub fn call<A, T, E, F, Fut>(act: &mut A, request: F) -> ResponseActFuture<A, Result<T, ServiceError>>
where
    A: Backend,
    T: 'static,
    E: BackendError + Display + 'static,
    F: FnOnce(A::Conn) -> Fut,
    Fut: Future<Output = Result<T, E>> + 'static,
{
    let conn = match act.link().conn() {
        Ok(conn) => conn,
        Err(err) => return Box::pin(ready(Err(err))),
    };
    Box::pin(wrap_future::<_, A>(request(conn)).map(|res, act: &mut A, ctx| {
        res.map_err(|err| {
            if err.is_connection_lost() {
                lost(act, ctx, &err);
            }
            err.into_service_error(act.link().service())
        })
    }))
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use actix::{Handler, Message, Supervisor};
    use tokio::sync::mpsc;
    use tokio::time::Instant;
    use troupe_core::health::Readiness;

    use super::*;

    /// A backend whose connect fails `fail_first` times; reports each attempt's time.
    struct Flaky {
        link: Link<u32>,
        attempts: Rc<RefCell<u32>>,
        fail_first: u32,
        /// Fail as misconfigured (with this reason) instead of as unreachable.
        wrong: Option<&'static str>,
        report: mpsc::UnboundedSender<Instant>,
    }

    supervised!(Flaky, u32);

    impl Backend for Flaky {
        fn connect(&mut self) -> Connecting<u32> {
            *self.attempts.borrow_mut() += 1;
            let n = *self.attempts.borrow();
            let _ = self.report.send(Instant::now());
            let ok = n > self.fail_first;
            let err = match self.wrong {
                Some(why) => anyhow::Error::new(Misconfigured(why.into())).context("connecting"),
                None => anyhow::anyhow!("refused"),
            };
            Box::pin(async move { if ok { Ok(n) } else { Err(err) } })
        }
        fn check(_: u32) -> Checking {
            Box::pin(async { Ok(()) })
        }
    }

    #[derive(Message)]
    #[rtype(result = "Result<u32, ServiceError>")]
    struct Which;

    impl Handler<Which> for Flaky {
        type Result = Result<u32, ServiceError>;
        fn handle(&mut self, _: Which, _: &mut Context<Self>) -> Self::Result {
            self.link.conn()
        }
    }

    fn flaky(
        fail_first: u32,
        policy: BackoffPolicy,
        readiness: &Readiness,
    ) -> (actix::Addr<Flaky>, mpsc::UnboundedReceiver<Instant>) {
        flaky_because(fail_first, None, policy, readiness)
    }

    fn flaky_because(
        fail_first: u32,
        wrong: Option<&'static str>,
        policy: BackoffPolicy,
        readiness: &Readiness,
    ) -> (actix::Addr<Flaky>, mpsc::UnboundedReceiver<Instant>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let probe = readiness.probe("test.backend");
        let link = Link::new("test", probe, policy);
        let actor = Flaky { link, attempts: Rc::default(), fail_first, wrong, report: tx };
        (Supervisor::start(|_| actor), rx)
    }

    #[actix_rt::test]
    async fn a_misconfiguration_is_shown_with_its_reason_and_retried_only_at_the_longest_delay() {
        tokio::time::pause();
        let policy = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_millis(1000) };
        let readiness = Readiness::default();
        let (addr, mut attempts) = flaky_because(3, Some("vhost not found"), policy, &readiness);
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(attempts.recv().await.expect("an attempt"));
            let backend = &readiness.snapshot()["test.backend"];
            assert_eq!(
                (backend.state, backend.error.as_deref()),
                (BackendState::Misconfigured, Some("vhost not found"))
            );
        }
        for gap in times.windows(2).map(|w| w[1] - w[0]) {
            assert!(gap >= policy.max && gap <= policy.max + Duration::from_millis(1), "{gap:?}");
        }
        attempts.recv().await.expect("the attempt after the fix");
        assert_eq!(addr.send(Which).await.ok(), Some(Ok(4)), "the fix on the server side is picked up");
        let backend = &readiness.snapshot()["test.backend"];
        assert_eq!((backend.state, backend.error.as_deref()), (BackendState::Ready, None));
    }

    #[actix_rt::test]
    async fn reconnects_with_exponential_capped_backoff() {
        tokio::time::pause();
        let policy = BackoffPolicy { min: Duration::from_millis(100), max: Duration::from_millis(1000) };
        let readiness = Readiness::default();
        let (addr, mut attempts) = flaky(6, policy, &readiness);

        let mut times = Vec::new();
        for _ in 0..7 {
            times.push(attempts.recv().await.expect("an attempt"));
        }
        let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
        // The timer wheel has 1 ms granularity and rounds deadlines up.
        let tick = Duration::from_millis(1);
        for (n, gap) in gaps.iter().enumerate() {
            let base = (policy.min * 2u32.pow(n as u32)).min(policy.max);
            assert!(*gap >= base && *gap <= (base * 2).min(policy.max) + tick, "gap {n}: {gap:?}");
        }
        let last = gaps.last().copied().unwrap_or_default();
        assert!(last >= policy.max && last <= policy.max + tick, "capped: {last:?}");

        assert_eq!(addr.send(Which).await.ok(), Some(Ok(7)), "the 7th attempt connected");
        assert!(readiness.is_ready());
    }

    #[actix_rt::test]
    async fn answers_unavailable_at_once_while_connecting() {
        tokio::time::pause();
        let policy = BackoffPolicy { min: Duration::from_secs(60), max: Duration::from_secs(60) };
        let readiness = Readiness::default();
        let (addr, mut attempts) = flaky(1, policy, &readiness);
        attempts.recv().await.expect("first attempt");

        let started = Instant::now();
        let reply = addr.send(Which).await.expect("mailbox open");
        assert_eq!(reply, Err(ServiceError::unavailable("test")));
        assert_eq!(Instant::now(), started, "no waiting while disconnected");
        assert!(!readiness.is_ready());
        assert_eq!(readiness.snapshot()["test.backend"].failed_attempts, 1);

        attempts.recv().await.expect("second attempt after the delay");
        assert_eq!(addr.send(Which).await.ok(), Some(Ok(2)));
    }

    #[actix_rt::test]
    async fn a_lost_connection_restarts_the_actor_which_reconnects() {
        let policy = BackoffPolicy { min: Duration::from_millis(10), max: Duration::from_millis(10) };
        let readiness = Readiness::default();
        let (addr, mut attempts) = flaky(0, policy, &readiness);
        attempts.recv().await.expect("first attempt");
        assert_eq!(addr.send(Which).await.ok(), Some(Ok(1)));

        assert_eq!(readiness.snapshot()["test.backend"].restarts, 0);

        addr.do_send(LoseConnection);
        attempts.recv().await.expect("reconnect attempt after the loss");
        assert_eq!(addr.send(Which).await.ok(), Some(Ok(2)), "same address serves again");
        assert_eq!(readiness.snapshot()["test.backend"].restarts, 1, "one restart counted");
    }

    #[derive(Message)]
    #[rtype(result = "()")]
    struct LoseConnection;

    impl Handler<LoseConnection> for Flaky {
        type Result = ();
        fn handle(&mut self, _: LoseConnection, ctx: &mut Context<Self>) {
            lost(self, ctx, &"socket closed");
        }
    }
}
