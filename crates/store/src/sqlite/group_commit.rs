//! Group commit for SCIM creates. An IdP's initial push is thousands of concurrent
//! POSTs; SQLite has one writer, and each transaction costs several trips to its worker
//! thread (begin, statements, commit with its fsync). Creates queued while the writer is
//! busy therefore share one transaction: each is acknowledged only after that
//! transaction commits, so every acknowledged create is durable, and a create that
//! fails for the client (a taken name) writes nothing and does not disturb the others.
//! Should the database itself fail mid-batch, the batch is rolled back and each create
//! retried alone, so one create's failure never becomes another's.

use custodian_domain::hosts::Actor;
use custodian_domain::{StoreError, StoreResult, Written};
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;
use tokio::sync::{mpsc, oneshot};

use crate::db::Db;
use crate::scim::create_in_tx;

/// The most creates one transaction carries.
const MAX_BATCH: usize = 256;

struct Job {
    kind: ResourceKind,
    input: ResourceInput,
    actor: Actor,
    reply: oneshot::Sender<StoreResult<Written>>,
}

/// The handle through which creates are queued for the writer.
pub(crate) struct Creates {
    tx: mpsc::Sender<Job>,
}

impl Creates {
    /// Starts the task that commits queued creates; it ends when the store is dropped.
    pub(super) fn start(write: Db) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(write, rx));
        Creates { tx }
    }

    pub(crate) async fn create(&self, kind: ResourceKind, input: ResourceInput, actor: Actor) -> StoreResult<Written> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Database("the database writer has stopped".into());
        self.tx.send(Job { kind, input, actor, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(write: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&write, jobs).await;
    }
}

async fn commit_batch(write: &Db, jobs: Vec<Job>) {
    let together = async {
        let mut tx = write.write().await?;
        let mut results = Vec::with_capacity(jobs.len());
        for job in &jobs {
            match create_in_tx(&mut tx, job.kind, job.input.clone(), &job.actor).await {
                // A client error wrote nothing: the others go on.
                Err(e @ StoreError::Scim(_)) => results.push(Err(e)),
                Err(e) => return Err(e),
                Ok(written) => results.push(Ok(written)),
            }
        }
        tx.commit().await?;
        Ok(results)
    };
    match together.await {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.reply.send(result);
            }
        }
        Err(e) if jobs.len() == 1 => {
            if let Some(job) = jobs.into_iter().next() {
                let _ = job.reply.send(Err(e));
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, creates = jobs.len(), "a grouped commit failed; retrying each create alone");
            for job in jobs {
                let alone = async {
                    let mut tx = write.write().await?;
                    let written = create_in_tx(&mut tx, job.kind, job.input, &job.actor).await?;
                    tx.commit().await?;
                    Ok(written)
                };
                let result = alone.await;
                let _ = job.reply.send(result);
            }
        }
    }
}
