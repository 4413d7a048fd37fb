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

use custodian_domain::hosts::{Actor, LinkCause, LinkState, normalize_identity};
use custodian_domain::{StoreError, StoreResult};
use serde_json::{Value, json};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::db_err;
use super::scim::Tx;
use crate::rows::{self, Candidate};
use crate::time;

/// The users an identity matches, by the rules' precedence.
async fn matching_users(tx: &mut Tx<'_>, identity: &str) -> StoreResult<Vec<Candidate>> {
    let by_user_name = sqlx::query(
        "SELECT seq, id, json_extract(doc, '$.userName') AS user_name FROM scim_resources \
         WHERE kind = 'User' AND unique_norm = ?",
    )
    .bind(identity)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    if let Some(row) = by_user_name {
        return Ok(vec![rows::candidate(&row)?]);
    }
    let rows = sqlx::query(
        "SELECT DISTINCT r.seq, r.id, json_extract(r.doc, '$.userName') AS user_name FROM scim_values v \
         CROSS JOIN scim_resources r ON r.seq = v.resource_seq \
         WHERE v.kind = 'User' AND v.path = 'emails.value' AND v.text_value = ? ORDER BY r.seq",
    )
    .bind(identity)
    .fetch_all(&mut **tx)
    .await
    .map_err(db_err)?;
    rows.iter().map(rows::candidate).collect()
}

pub(super) async fn record_activity(tx: &mut Tx<'_>, actor: &Actor, kind: &str, details: Value) -> StoreResult<()> {
    sqlx::query("INSERT INTO activities (created_at, actor_id, actor_name, type, details) VALUES (?, ?, ?, ?, ?)")
        .bind(time::to_text(time::now()))
        .bind(actor.id)
        .bind(&actor.name)
        .bind(kind)
        .bind(details.to_string())
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok(())
}

/// The host's current identity, from its mappings.
async fn current_identity(tx: &mut Tx<'_>, host_id: i64) -> StoreResult<Option<String>> {
    let email: Option<String> = sqlx::query_scalar(
        "SELECT email FROM host_emails WHERE host_id = ? AND source IN ('idp', 'mdm_idp_accounts') \
         ORDER BY source = 'idp' DESC, position LIMIT 1",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?;
    Ok(email.map(|e| normalize_identity(&e)))
}

struct HostLinkRow {
    display_name: String,
    identity_norm: Option<String>,
    end_user_seq: Option<i64>,
    state: LinkState,
    orphaned: bool,
}

async fn load_link(tx: &mut Tx<'_>, host_id: i64) -> StoreResult<HostLinkRow> {
    let row = sqlx::query(
        "SELECT CASE WHEN computer_name <> '' THEN computer_name ELSE hostname END AS display_name, \
         identity_norm, end_user_seq, link_state, orphaned FROM hosts WHERE id = ?",
    )
    .bind(host_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(db_err)?
    .ok_or(StoreError::NotFound)?;
    let state: String = row.try_get("link_state").map_err(db_err)?;
    Ok(HostLinkRow {
        display_name: row.try_get("display_name").map_err(db_err)?,
        identity_norm: row.try_get("identity_norm").map_err(db_err)?,
        end_user_seq: row.try_get("end_user_seq").map_err(db_err)?,
        state: LinkState::parse(&state).unwrap_or(LinkState::NoIdentity),
        orphaned: row.try_get::<i64, _>("orphaned").map_err(db_err)? != 0,
    })
}

async fn user_of_seq(tx: &mut Tx<'_>, seq: i64) -> StoreResult<(String, String)> {
    let row = sqlx::query("SELECT id, json_extract(doc, '$.userName') AS user_name FROM scim_resources WHERE seq = ?")
        .bind(seq)
        .fetch_one(&mut **tx)
        .await
        .map_err(db_err)?;
    Ok((
        row.try_get("id").map_err(db_err)?,
        row.try_get::<Option<String>, _>("user_name").map_err(db_err)?.unwrap_or_default(),
    ))
}

/// Closes the host's open history entry and records the unlink.
async fn unlink(
    tx: &mut Tx<'_>,
    host_id: i64,
    host: &HostLinkRow,
    seq: i64,
    cause: LinkCause,
    reason: &str,
    actor: &Actor,
) -> StoreResult<()> {
    let (idp_id, user_name) = user_of_seq(tx, seq).await?;
    sqlx::query(
        "UPDATE host_end_user_history SET unlinked_at = ?, unlink_cause = ? \
         WHERE host_id = ? AND unlinked_at IS NULL",
    )
    .bind(time::to_text(time::now()))
    .bind(cause.as_str())
    .bind(host_id)
    .execute(&mut **tx)
    .await
    .map_err(db_err)?;
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
pub(super) async fn relink_host(tx: &mut Tx<'_>, host_id: i64, cause: LinkCause, actor: &Actor) -> StoreResult<()> {
    let host = load_link(tx, host_id).await?;
    let identity = current_identity(tx, host_id).await?;
    apply_rules(tx, host_id, host, identity, cause, actor).await
}

/// The rules for a host whose state and current identity (normalised) are known.
async fn apply_rules(
    tx: &mut Tx<'_>,
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
        sqlx::query("UPDATE hosts SET identity_norm = ? WHERE id = ?")
            .bind(&identity)
            .bind(host_id)
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
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
    sqlx::query(
        "UPDATE hosts SET identity_norm = ?, end_user_seq = ?, link_state = ?, candidates = ?, orphaned = ? WHERE id = ?",
    )
    .bind(&identity)
    .bind(new_seq)
    .bind(state.as_str())
    .bind(&candidates)
    .bind(orphaned)
    .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    match (state, matches.first()) {
        (LinkState::Linked, Some((_, idp_id, user_name))) => {
            sqlx::query(
                "INSERT INTO host_end_user_history (host_id, scim_user_id, user_name, linked_at, link_cause) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(host_id)
            .bind(idp_id)
            .bind(user_name)
            .bind(time::to_text(time::now()))
            .bind(cause.as_str())
            .execute(&mut **tx)
            .await
            .map_err(db_err)?;
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
pub(super) async fn rematch_identities(tx: &mut Tx<'_>, identities: &[String], actor: &Actor) -> StoreResult<()> {
    if identities.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<Sqlite> =
        QueryBuilder::new("SELECT id FROM hosts WHERE end_user_seq IS NULL AND identity_norm IN (");
    let mut sep = qb.separated(", ");
    for i in identities {
        sep.push_bind(i.as_str());
    }
    qb.push(") ORDER BY id");
    let hosts: Vec<i64> = qb.build_query_scalar().fetch_all(&mut **tx).await.map_err(db_err)?;
    for host_id in hosts {
        relink_host(tx, host_id, LinkCause::ScimChange, actor).await?;
    }
    Ok(())
}

/// Before a user is deleted: its hosts are unlinked (state `user_deleted`), with history.
/// The caller deletes the user and then rematches the user's identities.
pub(super) async fn unlink_deleted_user(tx: &mut Tx<'_>, user_seq: i64, actor: &Actor) -> StoreResult<()> {
    let hosts: Vec<i64> = sqlx::query_scalar("SELECT id FROM hosts WHERE end_user_seq = ? ORDER BY id")
        .bind(user_seq)
        .fetch_all(&mut **tx)
        .await
        .map_err(db_err)?;
    for host_id in hosts {
        let host = load_link(tx, host_id).await?;
        unlink(tx, host_id, &host, user_seq, LinkCause::ScimChange, "user_deleted", actor).await?;
        sqlx::query(
            "UPDATE hosts SET end_user_seq = NULL, link_state = 'user_deleted', candidates = NULL, orphaned = 1 \
             WHERE id = ?",
        )
        .bind(host_id)
        .execute(&mut **tx)
        .await
        .map_err(db_err)?;
    }
    Ok(())
}
