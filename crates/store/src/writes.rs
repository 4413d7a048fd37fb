//! The writes that share commits on SQLite (see `sqlite::group_commit`): SCIM creates,
//! replaces, patches and deletes, and host upserts. Each is data, so that the writer can
//! run it inside a shared transaction, again alone if that transaction fails, and on
//! PostgreSQL again after a conflict with a concurrent one.

use custodian_domain::hosts::{Actor, HostInput, UpsertOutcome};
use custodian_domain::{ConnectionId, Precondition, StoreError, StoreResult, Written};
use custodian_scim::patch::PatchRequest;
use custodian_scim::resource::ResourceInput;
use custodian_scim::schema::ResourceKind;

use crate::db::{Conn, Db};
use crate::hosts::upsert_hosts_in_tx;
use crate::scim::{create_in_tx, delete_in_tx, patch_in_tx, replace_in_tx};

pub(crate) enum Write {
    ScimCreate {
        conn: ConnectionId,
        kind: ResourceKind,
        input: ResourceInput,
        actor: Actor,
    },
    ScimReplace {
        conn: ConnectionId,
        kind: ResourceKind,
        id: String,
        input: ResourceInput,
        if_match: Precondition,
        actor: Actor,
    },
    ScimPatch {
        conn: ConnectionId,
        kind: ResourceKind,
        id: String,
        patch: PatchRequest,
        if_match: Precondition,
        actor: Actor,
    },
    ScimDelete {
        conn: ConnectionId,
        kind: ResourceKind,
        id: String,
        if_match: Precondition,
        actor: Actor,
    },
    UpsertHosts {
        hosts: Vec<HostInput>,
        actor: Actor,
    },
}

/// What a write answers.
pub(crate) enum Outcome {
    Written(Written),
    Deleted,
    Hosts(Vec<UpsertOutcome>),
}

impl Write {
    /// Runs the write in `tx`; the caller commits.
    pub(crate) async fn run(&self, tx: &mut Conn) -> StoreResult<Outcome> {
        Ok(match self {
            Write::ScimCreate { conn, kind, input, actor } => {
                Outcome::Written(create_in_tx(tx, *conn, *kind, input.clone(), actor).await?)
            }
            Write::ScimReplace { conn, kind, id, input, if_match, actor } => {
                Outcome::Written(replace_in_tx(tx, *conn, *kind, id, input, if_match, actor).await?)
            }
            Write::ScimPatch { conn, kind, id, patch, if_match, actor } => {
                Outcome::Written(patch_in_tx(tx, *conn, *kind, id, patch, if_match, actor).await?)
            }
            Write::ScimDelete { conn, kind, id, if_match, actor } => {
                delete_in_tx(tx, *conn, *kind, id, if_match, actor).await?;
                Outcome::Deleted
            }
            Write::UpsertHosts { hosts, actor } => Outcome::Hosts(upsert_hosts_in_tx(tx, hosts, actor).await?),
        })
    }
}

/// Whether an error is the client's (the write is refused and wrote nothing that stays)
/// rather than the database's (the whole transaction is in doubt).
pub(crate) fn is_client_error(e: &StoreError) -> bool {
    matches!(e, StoreError::Scim(_) | StoreError::NotFound | StoreError::Conflict(_))
}

fn unexpected() -> StoreError {
    StoreError::Database("a write answered with another write's outcome".into())
}

impl Outcome {
    pub(crate) fn written(self) -> StoreResult<Written> {
        match self {
            Outcome::Written(w) => Ok(w),
            _ => Err(unexpected()),
        }
    }
    pub(crate) fn deleted(self) -> StoreResult<()> {
        match self {
            Outcome::Deleted => Ok(()),
            _ => Err(unexpected()),
        }
    }
    pub(crate) fn hosts(self) -> StoreResult<Vec<UpsertOutcome>> {
        match self {
            Outcome::Hosts(h) => Ok(h),
            _ => Err(unexpected()),
        }
    }
}

/// Runs a write in a transaction of its own and commits it.
pub(crate) async fn run_alone(db: &Db, write: &Write) -> StoreResult<Outcome> {
    let mut tx = db.write().await?;
    let outcome = write.run(&mut tx).await?;
    tx.commit().await?;
    Ok(outcome)
}
