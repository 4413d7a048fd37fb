//! Retries with exponential backoff and full jitter, for what Google documents as
//! transient (429, 5xx, rate-limit 403s, timeouts). `Retry-After` is honoured up to
//! `max_delay`, and a run waits at most `max_wait_per_run` in all, so a throttled
//! directory ends a run with an error instead of holding it for hours.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use rand::Rng;

use crate::error::GoogleError;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per request, the first included.
    pub attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub max_wait_per_run: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(32),
            max_wait_per_run: Duration::from_secs(300),
        }
    }
}

/// One attempt's outcome.
pub enum Attempt<T> {
    Done(T),
    /// Transient: try again, after `after` if Google said so.
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    Fail(GoogleError),
}

/// Applies a policy and keeps the run's total wait.
pub struct Retrier {
    policy: RetryPolicy,
    waited: Mutex<Duration>,
}

impl Retrier {
    pub fn new(policy: RetryPolicy) -> Self {
        Retrier { policy, waited: Mutex::new(Duration::ZERO) }
    }

    /// Starts a new run's budget of waiting.
    pub fn reset(&self) {
        if let Ok(mut w) = self.waited.lock() {
            *w = Duration::ZERO;
        }
    }

    /// The delay before retry number `retry` (from 0): full jitter over an exponential
    /// ceiling, or Google's `Retry-After` (capped) when it gave one.
    fn delay(&self, retry: u32, after: Option<Duration>) -> Duration {
        let ceiling = self.policy.base_delay.saturating_mul(1u32 << retry.min(16)).min(self.policy.max_delay);
        match after {
            Some(after) => after.min(self.policy.max_delay),
            None => ceiling.mul_f64(rand::rng().random_range(0.5..=1.0)),
        }
    }

    /// Runs `attempt` until it is done, fails, or the policy gives up.
    pub async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, GoogleError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Attempt<T>>,
    {
        let mut tries = 0u32;
        loop {
            tries += 1;
            let (reason, after) = match attempt().await {
                Attempt::Done(v) => return Ok(v),
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry { reason, after } => (reason, after),
            };
            if tries >= self.policy.attempts {
                return Err(GoogleError::Unavailable { message: reason, attempts: tries });
            }
            let delay = self.delay(tries - 1, after);
            let within_budget = match self.waited.lock() {
                Ok(mut waited) if *waited + delay <= self.policy.max_wait_per_run => {
                    *waited += delay;
                    true
                }
                _ => false,
            };
            if !within_budget {
                return Err(GoogleError::Unavailable {
                    message: format!("{reason}; this run already waited as long as it may"),
                    attempts: tries,
                });
            }
            tracing::info!(reason = %reason, retry_in_ms = delay.as_millis() as u64, "Google asked to retry");
            tokio::time::sleep(delay).await;
        }
    }
}

/// `Retry-After` in seconds (Google sends seconds, not dates).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn quick() -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(20),
            max_wait_per_run: Duration::from_millis(100),
        }
    }

    #[tokio::test]
    async fn retries_until_done_and_gives_up_after_the_attempts() {
        let r = Retrier::new(quick());
        let mut n = 0;
        let v = r
            .run(|| {
                n += 1;
                let done = n == 3;
                async move { if done { Attempt::Done(n) } else { Attempt::Retry { reason: "429".into(), after: None } } }
            })
            .await
            .unwrap();
        assert_eq!(v, 3);
        let e = r.run(|| async { Attempt::<()>::Retry { reason: "HTTP 503".into(), after: None } }).await.unwrap_err();
        assert_eq!(e, GoogleError::Unavailable { message: "HTTP 503".into(), attempts: 4 });
    }

    #[test]
    fn delays_grow_are_jittered_and_retry_after_is_capped() {
        let r = Retrier::new(quick());
        for retry in 0..6 {
            let d = r.delay(retry, None);
            let ceiling = Duration::from_millis(1u64 << retry).min(Duration::from_millis(20));
            assert!(d <= ceiling && d >= ceiling / 2, "{retry}: {d:?}");
        }
        assert_eq!(r.delay(0, Some(Duration::from_secs(120))), Duration::from_millis(20));
        assert_eq!(r.delay(0, Some(Duration::from_millis(3))), Duration::from_millis(3));
    }

    #[tokio::test]
    async fn a_run_waits_no_longer_than_its_budget() {
        let r = Retrier::new(RetryPolicy { attempts: 100, ..quick() });
        let e = r
            .run(|| async { Attempt::<()>::Retry { reason: "429".into(), after: Some(Duration::from_millis(20)) } })
            .await
            .unwrap_err();
        assert!(matches!(&e, GoogleError::Unavailable { attempts, .. } if *attempts == 6), "{e:?}");
        assert!(e.to_string().contains("already waited"), "{e}");
    }
}
