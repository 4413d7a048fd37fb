//! Group commit for every SCIM write and host upsert. An IdP's push is thousands of
//! concurrent requests; SQLite has one writer, and each transaction costs several trips
//! to its worker thread and a commit with its fsync. Writes queued while the writer is
//! busy therefore share one transaction, each inside a savepoint of its own:
//! - a write the client got wrong (a taken name, a stale `If-Match`, an unknown id) is
//!   rolled back to its savepoint and answered its error; the others go on;
//! - every write is answered only after the shared transaction commits, so every
//!   acknowledged write is durable;
//! - should the database itself fail mid-batch, the batch is rolled back and each write
//!   run again alone, so that one write's failure never becomes another's.
//!
//! Writes in a batch run in the order they arrived and see the ones before them, as they
//! would one transaction after another.

use custodian_domain::{StoreError, StoreResult};
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, SavepointStep};
use crate::writes::{Outcome, Write, is_client_error, run_alone};

/// The most writes one transaction carries.
const MAX_BATCH: usize = 256;

struct Job {
    write: Write,
    reply: oneshot::Sender<StoreResult<Outcome>>,
}

/// The handle through which writes are queued for the writer.
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread that commits queued writes; it ends when the store is dropped.
    /// A thread of its own: a batch is many round trips to SQLite's worker thread, and on
    /// the shared runtime each would wait behind the requests being handled.
    pub(super) fn start(write: Db) -> StoreResult<Self> {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        let failed = |e: std::io::Error| StoreError::Database(format!("cannot start the database writer: {e}"));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(failed)?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || runtime.block_on(run(write, rx)))
            .map_err(failed)?;
        Ok(Writer { tx })
    }

    /// Queues a write and waits until it is committed (or refused). The write runs on
    /// the writer's task: a client that goes away does not cut it short.
    pub(crate) async fn write(&self, write: Write) -> StoreResult<Outcome> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Database("the database writer has stopped".into());
        self.tx.send(Job { write, reply }).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        commit_batch(&db, jobs).await;
    }
}

async fn commit_batch(db: &Db, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        // Alone in its transaction: no savepoint needed.
        for job in jobs {
            let result = run_alone(db, &job.write).await;
            let _ = job.reply.send(result);
        }
        return;
    }
    let together = async {
        let mut tx = db.write().await?;
        let mut results = Vec::with_capacity(jobs.len());
        // The savepoint steps go with each write's first query: no round trips of their own.
        for job in &jobs {
            tx.savepoint(SavepointStep::Open).await?;
            match job.write.run(&mut tx).await {
                Err(e) if is_client_error(&e) => {
                    tx.savepoint(SavepointStep::RollBack).await?;
                    tx.savepoint(SavepointStep::Release).await?;
                    results.push(Err(e));
                }
                Err(e) => return Err(e),
                Ok(outcome) => {
                    tx.savepoint(SavepointStep::Release).await?;
                    results.push(Ok(outcome));
                }
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
        Err(e) => {
            tracing::warn!(error = %e, writes = jobs.len(), "a grouped commit failed; running each write alone");
            for job in jobs {
                let result = run_alone(db, &job.write).await;
                let _ = job.reply.send(result);
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use custodian_domain::{ConnectionId, Scope};
    const DEFAULT: ConnectionId = ConnectionId(1);
    use super::*;
    use crate::schema::MigrateMode;
    use crate::sqlite::SqliteStore;
    use custodian_domain::Directory;
    use custodian_domain::hosts::Actor;
    use custodian_scim::patch::parse_patch;
    use custodian_scim::resource::parse_resource;
    use custodian_scim::schema::ResourceKind;
    use serde_json::json;

    fn user(name: &str) -> custodian_scim::resource::ResourceInput {
        parse_resource(
            ResourceKind::User,
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": name}),
        )
        .unwrap()
    }

    fn patch(ops: serde_json::Value) -> custodian_scim::patch::PatchRequest {
        parse_patch(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})).unwrap()
    }

    /// In one shared transaction, a write the client got wrong after it had already
    /// changed rows (members added, then a taken name) is rolled back to its savepoint:
    /// its changes are gone, the writes before and after it commit, and each gets its
    /// own answer.
    #[tokio::test]
    async fn a_refused_write_in_a_batch_leaves_nothing_and_fails_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("c.db").display());
        let store = SqliteStore::open(&url, MigrateMode::Apply).await.unwrap();
        let actor = Actor { id: None, name: "test".into() };
        let a = store.scim_create(DEFAULT, ResourceKind::User, user("a@example.com"), &actor).await.unwrap().record.id;
        let b = store.scim_create(DEFAULT, ResourceKind::User, user("b@example.com"), &actor).await.unwrap().record.id;
        let group = |name: &str| {
            parse_resource(
                ResourceKind::Group,
                &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": name}),
            )
            .unwrap()
        };
        let eng =
            store.scim_create(DEFAULT, ResourceKind::Group, group("Engineering"), &actor).await.unwrap().record.id;
        store.scim_create(DEFAULT, ResourceKind::Group, group("Sales"), &actor).await.unwrap();

        let writes = vec![
            Write::ScimCreate {
                conn: DEFAULT,
                kind: ResourceKind::User,
                input: user("c@example.com"),
                actor: actor.clone(),
            },
            // Adds a member, then takes a name already taken: 409, and the member with it.
            Write::ScimPatch {
                conn: DEFAULT,
                kind: ResourceKind::Group,
                id: eng.clone(),
                patch: patch(json!([
                    {"op": "add", "path": "members", "value": [{"value": a}]},
                    {"op": "replace", "path": "displayName", "value": "Sales"}
                ])),
                if_match: None,
                actor: actor.clone(),
            },
            // A stale version: 412.
            Write::ScimDelete {
                conn: DEFAULT,
                kind: ResourceKind::User,
                id: b.clone(),
                if_match: Some("W/\"99\"".into()),
                actor: actor.clone(),
            },
            Write::ScimPatch {
                conn: DEFAULT,
                kind: ResourceKind::Group,
                id: eng.clone(),
                patch: patch(json!([{"op": "add", "path": "members", "value": [{"value": b}]}])),
                if_match: None,
                actor: actor.clone(),
            },
        ];
        let mut answers = Vec::new();
        let jobs = writes
            .into_iter()
            .map(|write| {
                let (reply, answer) = oneshot::channel();
                answers.push(answer);
                Job { write, reply }
            })
            .collect();
        commit_batch(&store.db, jobs).await;
        let mut results = Vec::new();
        for answer in answers {
            results.push(answer.await.unwrap());
        }
        assert!(matches!(&results[0], Ok(Outcome::Written(w)) if w.record.doc["userName"] == "c@example.com"));
        assert!(matches!(&results[1], Err(StoreError::Scim(e)) if e.status == 409), "{:?}", results[1].as_ref().err());
        assert!(matches!(&results[2], Err(StoreError::Scim(e)) if e.status == 412), "{:?}", results[2].as_ref().err());
        assert!(matches!(&results[3], Ok(Outcome::Written(_))));

        let members: Vec<String> = store.group_members(&eng).await.unwrap().into_iter().map(|m| m.id).collect();
        assert_eq!(members, vec![b.clone()], "the refused PATCH's member is gone, the later one's is kept");
        let group = store.scim_get(Scope::All, ResourceKind::Group, &eng).await.unwrap();
        assert_eq!(group.doc["displayName"], "Engineering");
        assert!(store.scim_get(Scope::All, ResourceKind::User, &b).await.is_ok(), "the refused delete deleted nothing");
        assert_eq!(store.scim_count(Scope::All, ResourceKind::User).await.unwrap(), 3);
    }
}
