//! "Retry until done": the one retry loop, on `backon`, behind the event bus, the listener
//! and the mailer.

use std::future::Future;
use std::time::Duration;

use backon::{Backoff, Retryable};

/// Run `attempt` until it succeeds, fails with an error `retry_on` refuses, or `delays` run
/// out (then its last error is returned), sleeping each delay in between. `on_retry` hears of
/// every failure that is retried, with the wait before the next attempt.
pub async fn retry<T, E, Fut>(
    attempt: impl FnMut() -> Fut,
    delays: impl Backoff,
    retry_on: impl FnMut(&E) -> bool,
    on_retry: impl FnMut(&E, Duration),
) -> Result<T, E>
where
    Fut: Future<Output = Result<T, E>>,
{
    attempt.retry(delays).sleep(tokio::time::sleep).when(retry_on).notify(on_retry).await
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_are_retried_while_asked_and_delays_last() {
        let tries = Cell::new(0);
        let attempt = || async {
            tries.set(tries.get() + 1);
            Err::<(), _>(tries.get())
        };
        let waits = Cell::new(Vec::new());
        let delays = [Duration::from_millis(5), Duration::from_millis(7)].into_iter();
        let note = |_: &u32, d: Duration| waits.set([waits.take(), vec![d]].concat());
        assert_eq!(retry(attempt, delays, |_| true, note).await, Err(3), "the last error, after 3 tries");
        assert_eq!(waits.take(), [Duration::from_millis(5), Duration::from_millis(7)]);

        tries.set(0);
        let refused = retry(attempt, std::iter::repeat(Duration::from_millis(1)), |n| *n < 2, |_, _| {});
        assert_eq!(refused.await, Err(2), "stops at the first error not to retry");
    }
}
