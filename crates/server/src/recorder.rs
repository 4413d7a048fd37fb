//! Records SCIM requests in the connection history without a database write on every
//! request's path: entries are queued and written in batches by one task. `flush` waits
//! until everything queued so far is written, so a status read after a request sees it.

use std::sync::Arc;
use std::time::Duration;

use custodian_domain::{Operations, ScimRequestEntry};
use tokio::sync::{mpsc, oneshot};

enum Message {
    Entry(ScimRequestEntry),
    Flush(oneshot::Sender<()>),
}

#[derive(Clone)]
pub struct RequestRecorder {
    tx: mpsc::Sender<Message>,
}

const BATCH: usize = 256;
const GATHER: Duration = Duration::from_millis(100);
const QUEUE: usize = 10_000;

impl RequestRecorder {
    /// Starts the writer task; it ends when every recorder handle is dropped.
    pub fn start(store: Arc<dyn Operations>) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(run(store, rx));
        (RequestRecorder { tx }, handle)
    }

    pub fn record(&self, entry: ScimRequestEntry) {
        // A full queue means the database is far behind: dropping a history entry is
        // better than slowing the IdP down.
        if self.tx.try_send(Message::Entry(entry)).is_err() {
            tracing::warn!("SCIM request history queue is full; an entry was dropped");
        }
    }

    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Message::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(store: Arc<dyn Operations>, mut rx: mpsc::Receiver<Message>) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut waiters = Vec::new();
    while let Some(first) = rx.recv().await {
        // Gather for a moment, so that a burst of requests costs one write transaction
        // rather than one each (the writer is shared with provisioning); a flush (a
        // status read) or a full batch writes at once.
        let deadline = tokio::time::Instant::now() + GATHER;
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Message::Entry(e) => batch.push(e),
                Message::Flush(w) => waiters.push(w),
            }
            if batch.len() >= BATCH || !waiters.is_empty() {
                break;
            }
            next = tokio::time::timeout_at(deadline, rx.recv()).await.ok().flatten();
        }
        if !batch.is_empty() {
            let entries = std::mem::take(&mut batch);
            let mut attempt = 0;
            loop {
                match store.record_scim_requests(entries.clone()).await {
                    Ok(()) => break,
                    Err(e) if attempt < 3 => {
                        attempt += 1;
                        tracing::warn!(error = %e, "writing the SCIM request history failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, dropped = entries.len(), "SCIM request history entries lost");
                        break;
                    }
                }
            }
        }
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
}
