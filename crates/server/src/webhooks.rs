//! The offboarding webhook deliverer: polls the outbox for due events, POSTs each to the
//! configured URL signed with HMAC-SHA256, and records the outcome. Delivery is at least
//! once: an event stays pending or failing (retried with exponential backoff) until the
//! receiver answers 2xx, and survives restarts because it lives in the database. With
//! several instances, the store's lease lets only one deliver a given event at a time.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use custodian_domain::Webhooks;
use custodian_domain::webhooks::{AttemptOutcome, WebhookDelivery, backoff};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long one POST may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed event is held by this instance: longer than a batch of attempts.
const LEASE: Duration = Duration::from_secs(60);
/// Events claimed per poll.
const BATCH: u32 = 20;

/// Where and how offboarding events are sent.
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// The HMAC key; without one, requests are not signed.
    pub secret: Option<String>,
    /// The first retry's delay; each next one doubles, up to `backoff_cap`.
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("backoff_base", &self.backoff_base)
            .field("backoff_cap", &self.backoff_cap)
            .finish()
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `<timestamp>.<body>` with the secret.
pub fn signature(secret: &str, timestamp: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail for it.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else { return String::new() };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Starts the deliverer; it runs until the task is aborted.
pub fn start(store: Arc<dyn Webhooks>, config: WebhookConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "the offboarding webhook client cannot start; events stay pending");
                return;
            }
        };
        if config.secret.is_none() {
            tracing::warn!("no --offboarding-webhook-secret: offboarding webhooks are sent unsigned");
        }
        let idle = config.backoff_base.min(Duration::from_secs(1));
        loop {
            let claimed = match store.claim_webhook_events(BATCH, LEASE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming offboarding events failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::time::sleep(idle).await;
                continue;
            }
            for event in claimed {
                let outcome = attempt(&client, &config, &event).await;
                if let AttemptOutcome::Failed { error, .. } = &outcome {
                    tracing::warn!(event_id = event.id, attempts = event.attempts + 1, error = %error,
                        "offboarding webhook delivery failed; it will be retried");
                } else {
                    tracing::info!(event_id = event.id, event = %event.event, "offboarding webhook delivered");
                }
                if let Err(e) = store.finish_webhook_attempt(event.id, outcome).await {
                    // The lease expires and the event is tried again: at least once.
                    tracing::warn!(event_id = event.id, error = %e, "recording a webhook attempt failed");
                }
            }
        }
    })
}

/// One POST of an event.
async fn attempt(client: &reqwest::Client, config: &WebhookConfig, event: &WebhookDelivery) -> AttemptOutcome {
    let timestamp = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()).to_string();
    let body = event.payload.clone().into_bytes();
    let mut request = client
        .post(&config.url)
        .header("content-type", "application/json")
        .header("user-agent", concat!("custodian/", env!("CARGO_PKG_VERSION")))
        .header("x-custodian-event", &event.event)
        .header("x-custodian-delivery", event.id.to_string())
        .header("x-custodian-timestamp", &timestamp);
    if let Some(secret) = &config.secret {
        request = request.header("x-custodian-signature", signature(secret, &timestamp, &body));
    }
    let failed = |status: Option<u16>, error: String| {
        let delay = backoff(event.attempts + 1, config.backoff_base, config.backoff_cap);
        let retry_at = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::seconds(300));
        AttemptOutcome::Failed { status, error, retry_at }
    };
    match request.body(body).send().await {
        Ok(resp) if resp.status().is_success() => AttemptOutcome::Delivered { status: resp.status().as_u16() },
        Ok(resp) => {
            let status = resp.status().as_u16();
            let text: String = resp.text().await.unwrap_or_default().chars().take(200).collect();
            failed(Some(status), format!("the receiver answered {status}: {text}"))
        }
        Err(e) if e.is_timeout() => failed(None, format!("no answer within {} s", REQUEST_TIMEOUT.as_secs())),
        Err(e) => failed(None, format!("the request failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_timestamp_dot_body() {
        // Python: hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        let sig = signature("key", "1700000000", b"{}");
        assert_eq!(sig, "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae");
        assert_ne!(sig, signature("other", "1700000000", b"{}"));
        assert_ne!(sig, signature("key", "1700000001", b"{}"));
    }
}
