//! The mapping rules, evaluated in the transaction of the change that affects them, so
//! that a host's end user is never stale and no cron is needed.
//!
//! 1. A host's identity is its `idp` mapping, else its `mdm_idp_accounts` email.
//! 2. An unlinked host is linked to the user whose `userName` equals its identity (any
//!    case); failing that, to the single user that has it among its emails. Several
//!    such users: linked to none, and the ambiguity is recorded.
//! 3. A link follows its user (renames, email changes) and changes only when the
//!    host's identity changes or the user is deleted.
//! 4. Unlinked hosts are matched again whenever something could now match them.
//!
//! On PostgreSQL, every match first takes the identity's advisory lock
//! (`Conn::lock_identities`) and every host is locked before its link is read, so that
//! instances do not race; SQLite's single writer needs neither.

use custodian_domain::hosts::{Actor, LinkCause, LinkState, normalize_identity};
use custodian_domain::{StoreError, StoreResult};
use serde_json::{Value, json};

use crate::db::{Conn, Sql};
use crate::rows::{self, Candidate};
use crate::time;

/// The users an identity matches, by the rules' precedence.
async fn matching_users(tx: &mut Conn, identity: &str) -> StoreResult<Vec<Candidate>> {
    tx.lock_identities(&[identity.to_string()]).await?;
    let d = tx.dialect();
    let by_user_name = tx
        .fetch_optional(&Sql::with(
            format!(
                "SELECT seq, id, {} AS user_name FROM scim_resources WHERE kind = 'User' AND unique_norm = $1",
                d.user_name_of("doc")
            ),
            [identity.into()],
        ))
        .await?;
    if let Some(row) = by_user_name {
        return Ok(vec![rows::candidate(&row)?]);
    }
    let rows = tx
        .fetch_all(&Sql::with(
            format!(
                "SELECT DISTINCT r.seq, r.id, {} AS user_name FROM scim_values v{} \
                 WHERE v.kind = 'User' AND v.path = 'emails.value' AND v.text_value = $1 ORDER BY r.seq",
                d.user_name_of("r.doc"),
                d.email_owner_join(),
            ),
            [identity.into()],
        ))
        .await?;
    rows.iter().map(rows::candidate).collect()
}

pub(crate) async fn record_activity(tx: &mut Conn, actor: &Actor, kind: &str, details: Value) -> StoreResult<()> {
    tx.execute(&Sql::with(
        "INSERT INTO activities (created_at, actor_id, actor_name, type, details) VALUES ($1, $2, $3, $4, $5)",
        [
            time::to_text(time::now()).into(),
            actor.id.into(),
            (&actor.name).into(),
            kind.into(),
            details.to_string().into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The host's current identity, from its mappings.
async fn current_identity(tx: &mut Conn, host_id: i64) -> StoreResult<Option<String>> {
    let row = tx
        .fetch_optional(&Sql::with(
            "SELECT email FROM host_emails WHERE host_id = $1 AND source IN ('idp', 'mdm_idp_accounts') \
             ORDER BY source = 'idp' DESC, position LIMIT 1",
            [host_id.into()],
        ))
        .await?;
    Ok(row.map(|r| r.text(0)).transpose()?.map(|e| normalize_identity(&e)))
}

struct HostLinkRow {
    display_name: String,
    identity_norm: Option<String>,
    end_user_seq: Option<i64>,
    state: LinkState,
    orphaned: bool,
}

async fn load_link(tx: &mut Conn, host_id: i64) -> StoreResult<HostLinkRow> {
    let lock = tx.dialect().for_update();
    let row = tx
        .fetch_optional(&Sql::with(
            format!(
                "SELECT CASE WHEN computer_name <> '' THEN computer_name ELSE hostname END AS display_name, \
                 identity_norm, end_user_seq, link_state, orphaned FROM hosts WHERE id = $1{lock}"
            ),
            [host_id.into()],
        ))
        .await?
        .ok_or(StoreError::NotFound)?;
    Ok(HostLinkRow {
        display_name: row.text("display_name")?,
        identity_norm: row.opt_text("identity_norm")?,
        end_user_seq: row.opt_int("end_user_seq")?,
        state: LinkState::parse(&row.text("link_state")?).unwrap_or(LinkState::NoIdentity),
        orphaned: row.int("orphaned")? != 0,
    })
}

async fn user_of_seq(tx: &mut Conn, seq: i64) -> StoreResult<(String, String)> {
    let user_name = tx.dialect().user_name_of("doc");
    let row = tx
        .fetch_one(&Sql::with(
            format!("SELECT id, {user_name} AS user_name FROM scim_resources WHERE seq = $1"),
            [seq.into()],
        ))
        .await?;
    Ok((row.text("id")?, row.opt_text("user_name")?.unwrap_or_default()))
}

/// Closes the host's open history entry and records the unlink.
async fn unlink(
    tx: &mut Conn,
    host_id: i64,
    host: &HostLinkRow,
    seq: i64,
    cause: LinkCause,
    reason: &str,
    actor: &Actor,
) -> StoreResult<()> {
    let (idp_id, user_name) = user_of_seq(tx, seq).await?;
    tx.execute(&Sql::with(
        "UPDATE host_end_user_history SET unlinked_at = $1, unlink_cause = $2 \
         WHERE host_id = $3 AND unlinked_at IS NULL",
        [time::to_text(time::now()).into(), cause.as_str().into(), host_id.into()],
    ))
    .await?;
    record_activity(
        tx,
        actor,
        "unlinked_host_end_user",
        json!({"host_id": host_id, "host_display_name": host.display_name, "idp_id": idp_id,
               "idp_username": user_name, "cause": cause.as_str(), "reason": reason}),
    )
    .await
}

/// Re-evaluates one host's link under the rules. `cause` says what changed.
pub(crate) async fn relink_host(tx: &mut Conn, host_id: i64, cause: LinkCause, actor: &Actor) -> StoreResult<()> {
    let host = load_link(tx, host_id).await?;
    let identity = current_identity(tx, host_id).await?;
    apply_rules(tx, host_id, host, identity, cause, actor).await
}

/// The rules for a host whose state and current identity (normalised) are known.
async fn apply_rules(
    tx: &mut Conn,
    host_id: i64,
    host: HostLinkRow,
    identity: Option<String>,
    cause: LinkCause,
    actor: &Actor,
) -> StoreResult<()> {
    // RULE 3: a link follows its user while the identity stays.
    if host.end_user_seq.is_some() && host.identity_norm == identity {
        return Ok(());
    }
    let matches = match &identity {
        Some(id) => matching_users(tx, id).await?,
        None => Vec::new(),
    };
    let new_seq = match matches.as_slice() {
        [(seq, _, _)] => Some(*seq),
        _ => None,
    };
    if host.end_user_seq.is_some() && host.end_user_seq == new_seq {
        // The identity changed but still names the same user.
        tx.execute(&Sql::with(
            "UPDATE hosts SET identity_norm = $1 WHERE id = $2",
            [(&identity).into(), host_id.into()],
        ))
        .await?;
        return Ok(());
    }
    if let Some(old) = host.end_user_seq {
        unlink(tx, host_id, &host, old, cause, "identity_changed", actor).await?;
    }
    let state = match (&identity, matches.len()) {
        (Some(_), 1) => LinkState::Linked,
        (Some(_), n) if n > 1 => LinkState::Ambiguous,
        // Until someone is linked, a host whose user was deleted stays a laptop to recover.
        _ if host.orphaned => LinkState::UserDeleted,
        (None, _) => LinkState::NoIdentity,
        (Some(_), _) => LinkState::Unlinked,
    };
    let orphaned = host.orphaned && state != LinkState::Linked;
    let candidates: Option<String> = (state == LinkState::Ambiguous)
        .then(|| Value::from(matches.iter().map(|(_, id, _)| id.clone()).collect::<Vec<_>>()).to_string());
    tx.execute(&Sql::with(
        "UPDATE hosts SET identity_norm = $1, end_user_seq = $2, link_state = $3, candidates = $4, orphaned = $5 \
         WHERE id = $6",
        [
            (&identity).into(),
            new_seq.into(),
            state.as_str().into(),
            candidates.into(),
            i64::from(orphaned).into(),
            host_id.into(),
        ],
    ))
    .await?;
    match (state, matches.first()) {
        (LinkState::Linked, Some((_, idp_id, user_name))) => {
            tx.execute(&Sql::with(
                "INSERT INTO host_end_user_history (host_id, scim_user_id, user_name, linked_at, link_cause) \
                 VALUES ($1, $2, $3, $4, $5)",
                [
                    host_id.into(),
                    idp_id.into(),
                    user_name.into(),
                    time::to_text(time::now()).into(),
                    cause.as_str().into(),
                ],
            ))
            .await?;
            record_activity(
                tx,
                actor,
                "linked_host_end_user",
                json!({"host_id": host_id, "host_display_name": host.display_name, "idp_id": idp_id,
                       "idp_username": user_name, "cause": cause.as_str()}),
            )
            .await?;
        }
        (LinkState::Ambiguous, _) if host.state != LinkState::Ambiguous || host.identity_norm != identity => {
            record_activity(
                tx,
                actor,
                "ambiguous_host_end_user",
                json!({"host_id": host_id, "host_display_name": host.display_name, "identity": identity,
                       "candidates": matches.iter().map(|(_, id, u)| json!({"idp_id": id, "idp_username": u})).collect::<Vec<_>>(),
                       "cause": cause.as_str()}),
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// RULE 4 after a user was created or changed: every unlinked host whose identity the
/// user answered to before or answers to now is matched again.
pub(crate) async fn rematch_identities(tx: &mut Conn, identities: &[String], actor: &Actor) -> StoreResult<()> {
    if identities.is_empty() {
        return Ok(());
    }
    tx.lock_identities(identities).await?;
    let mut sql = Sql::new("SELECT id FROM hosts WHERE end_user_seq IS NULL AND identity_norm IN (");
    let mut sep = sql.separated(", ");
    for i in identities {
        sep.push_bind(i.as_str());
    }
    sql.push(") ORDER BY id");
    for host_id in tx.ints(&sql).await? {
        relink_host(tx, host_id, LinkCause::ScimChange, actor).await?;
    }
    Ok(())
}

/// Before a user is deleted: its hosts are unlinked (state `user_deleted`), with history.
/// The caller deletes the user and then rematches the user's identities.
pub(crate) async fn unlink_deleted_user(tx: &mut Conn, user_seq: i64, actor: &Actor) -> StoreResult<()> {
    let lock = tx.dialect().for_update();
    let hosts = tx
        .ints(&Sql::with(format!("SELECT id FROM hosts WHERE end_user_seq = $1 ORDER BY id{lock}"), [user_seq.into()]))
        .await?;
    for host_id in hosts {
        let host = load_link(tx, host_id).await?;
        unlink(tx, host_id, &host, user_seq, LinkCause::ScimChange, "user_deleted", actor).await?;
        tx.execute(&Sql::with(
            "UPDATE hosts SET end_user_seq = NULL, link_state = 'user_deleted', candidates = NULL, orphaned = 1 \
             WHERE id = $1",
            [host_id.into()],
        ))
        .await?;
    }
    Ok(())
}
