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

use custodian_domain::ConnectionId;
use custodian_domain::hosts::{Actor, LinkCause, LinkState, normalize_identity};
use custodian_domain::{StoreError, StoreResult};
use std::collections::HashMap;

use serde_json::{Value, json};

use crate::db::{Conn, Sql};
use crate::rows::{self, Candidate};
use crate::time;

/// A user an identity matches in some connection.
#[derive(Debug, Clone)]
pub(crate) struct Matched {
    pub seq: i64,
    pub id: String,
    pub user_name: String,
    /// Its connection's priority (lower wins).
    priority: i64,
    /// Matched by `userName` rather than by one of its emails.
    by_user_name: bool,
}

impl Matched {
    pub(crate) fn candidate(&self) -> Candidate {
        (self.seq, self.id.clone(), self.user_name.clone())
    }
}

/// The users each identity matches, in every connection, in one query per 500
/// identities: by `userName` and by email, with their connections' priorities.
pub(crate) async fn candidates_of(tx: &mut Conn, identities: &[String]) -> StoreResult<HashMap<String, Vec<Matched>>> {
    let d = tx.dialect();
    let mut found: HashMap<String, Vec<Matched>> = HashMap::new();
    for chunk in identities.chunks(500) {
        let mut sql = Sql::new(format!(
            "SELECT r.unique_norm AS k, r.seq, r.id, {} AS user_name, c.priority, CAST(1 AS BIGINT) AS by_user_name \
             FROM scim_resources r JOIN idp_connections c ON c.id = r.connection_id \
             WHERE r.kind = 'User' AND r.unique_norm IN (",
            d.user_name_of("r.doc")
        ));
        let mut sep = sql.separated(", ");
        for i in chunk {
            sep.push_bind(i.as_str());
        }
        sql.push(format!(
            ") UNION ALL SELECT v.text_value, r.seq, r.id, {} AS user_name, c.priority, 0 FROM scim_values v{} \
             JOIN idp_connections c ON c.id = r.connection_id \
             WHERE v.kind = 'User' AND v.path = 'emails.value' AND v.text_value IN (",
            d.user_name_of("r.doc"),
            d.email_owner_join(),
        ));
        let mut sep = sql.separated(", ");
        for i in chunk {
            sep.push_bind(i.as_str());
        }
        sql.push(")");
        for row in tx.fetch_all(&sql).await? {
            let (seq, id, user_name) = rows::candidate(&row)?;
            let matched = Matched {
                seq,
                id,
                user_name,
                priority: row.int("priority")?,
                by_user_name: row.int("by_user_name")? != 0,
            };
            let list = found.entry(row.text("k")?).or_default();
            // A user with the same email twice is one candidate.
            if !list.iter().any(|m| m.seq == matched.seq && m.by_user_name == matched.by_user_name) {
                list.push(matched);
            }
        }
    }
    Ok(found)
}

/// What the rules say about a host, given every connection's matches for its identity.
#[derive(Debug)]
pub(crate) enum Decision {
    /// The host stays linked to its user: its connection comes first among those with a
    /// match, and within a connection a link follows its user (rule 3).
    Keep,
    /// The users of the first connection that has any match: one is a link, several are
    /// an ambiguity (the next connection is not consulted past it); none, no match.
    Winners(Vec<Candidate>),
}

/// The rules across connections: the connection with the lowest priority number that
/// has a match decides. Within it, the `userName` match wins, else the email matches. `linked` is
/// the priority of the connection of the host's current user, when its link may stand.
pub(crate) fn decide(matches: &[Matched], linked: Option<i64>) -> Decision {
    let Some(first) = matches.iter().map(|m| m.priority).min() else {
        return if linked.is_some() { Decision::Keep } else { Decision::Winners(Vec::new()) };
    };
    if linked.is_some_and(|p| p <= first) {
        return Decision::Keep;
    }
    let here: Vec<&Matched> = matches.iter().filter(|m| m.priority == first).collect();
    if let Some(by_name) = here.iter().find(|m| m.by_user_name) {
        return Decision::Winners(vec![by_name.candidate()]);
    }
    let mut by_email: Vec<Candidate> = here.iter().map(|m| m.candidate()).collect();
    by_email.sort_by_key(|c| c.0);
    by_email.dedup_by_key(|c| c.0);
    Decision::Winners(by_email)
}

/// The users one identity matches, by the rules' precedence.
async fn matching_users(tx: &mut Conn, identity: &str, linked: Option<i64>) -> StoreResult<Decision> {
    tx.lock_identities(&[identity.to_string()]).await?;
    let mut found = candidates_of(tx, &[identity.to_string()]).await?;
    Ok(decide(&found.remove(identity).unwrap_or_default(), linked))
}

pub(crate) async fn record_activity(tx: &mut Conn, actor: &Actor, kind: &str, details: Value) -> StoreResult<()> {
    let (host_id, user) = activity_subjects(&details);
    tx.execute(&Sql::with(
        "INSERT INTO activities (created_at, actor_id, actor_name, type, details, host_id, idp_username_norm) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        [
            time::to_text(time::now()).into(),
            actor.id.into(),
            (&actor.name).into(),
            kind.into(),
            details.to_string().into(),
            host_id.into(),
            user.into(),
        ],
    ))
    .await?;
    Ok(())
}

/// The host and the IdP user (lower case) an activity is about, from its details: the
/// columns the feed is filtered by.
pub(crate) fn activity_subjects(details: &Value) -> (Option<i64>, Option<String>) {
    (
        details.get("host_id").and_then(Value::as_i64),
        details.get("idp_username").and_then(Value::as_str).map(str::to_lowercase),
    )
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
    /// The priority of the linked user's connection.
    linked_priority: Option<i64>,
}

async fn load_link(tx: &mut Conn, host_id: i64) -> StoreResult<HostLinkRow> {
    let lock = tx.dialect().for_update();
    let row = tx
        .fetch_optional(&Sql::with(
            format!(
                "SELECT CASE WHEN computer_name <> '' THEN computer_name ELSE hostname END AS display_name, \
                 identity_norm, end_user_seq, link_state, orphaned, \
                 (SELECT c.priority FROM scim_resources r JOIN idp_connections c ON c.id = r.connection_id \
                  WHERE r.seq = hosts.end_user_seq) AS linked_priority FROM hosts WHERE id = $1{lock}"
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
        linked_priority: row.opt_int("linked_priority")?,
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

/// Re-evaluates one host's link under the rules. `cause` says what changed: after a
/// change of users or connections (anything but the host's own), a linked host is
/// checked too, since a connection that comes first may now have its user.
pub(crate) async fn relink_host(tx: &mut Conn, host_id: i64, cause: LinkCause, actor: &Actor) -> StoreResult<()> {
    let host = load_link(tx, host_id).await?;
    let identity = current_identity(tx, host_id).await?;
    apply_rules(tx, host_id, host, identity, cause, actor).await
}

fn recheck_linked(cause: LinkCause) -> bool {
    matches!(cause, LinkCause::ScimChange | LinkCause::PriorityChanged | LinkCause::ConnectionRemoved)
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
    // RULE 3: a link follows its user while the identity stays, unless (after a change of
    // users) a connection that comes first now has a match.
    let identity_kept = host.end_user_seq.is_some() && host.identity_norm == identity;
    if identity_kept && !recheck_linked(cause) {
        return Ok(());
    }
    let decision = match &identity {
        Some(id) => matching_users(tx, id, host.linked_priority.filter(|_| identity_kept)).await?,
        None => Decision::Winners(Vec::new()),
    };
    let matches = match decision {
        Decision::Keep => return Ok(()),
        Decision::Winners(matches) => matches,
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
        let reason = if identity_kept { "another_connection_first" } else { "identity_changed" };
        unlink(tx, host_id, &host, old, cause, reason, actor).await?;
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

/// RULE 4 after a user of connection `conn` was created or changed: every host whose
/// identity the user answered to before or answers to now is matched again, if it is
/// unlinked or linked to a user of a connection that comes after `conn`.
pub(crate) async fn rematch_identities(
    tx: &mut Conn,
    conn: ConnectionId,
    identities: &[String],
    actor: &Actor,
) -> StoreResult<()> {
    if identities.is_empty() {
        return Ok(());
    }
    tx.lock_identities(identities).await?;
    let mut sql = Sql::new("SELECT h.id FROM hosts h WHERE h.identity_norm IN (");
    let mut sep = sql.separated(", ");
    for i in identities {
        sep.push_bind(i.as_str());
    }
    sql.push(") AND ");
    push_may_change(&mut sql, conn);
    sql.push(" ORDER BY h.id");
    for host_id in tx.ints(&sql).await? {
        relink_host(tx, host_id, LinkCause::ScimChange, actor).await?;
    }
    Ok(())
}

/// The condition on hosts `h` that a change of connection `conn`'s users may relink:
/// unlinked ones, and those linked to a user of a connection that comes after it.
pub(crate) fn push_may_change(sql: &mut Sql, conn: ConnectionId) {
    sql.push(
        "(h.end_user_seq IS NULL OR EXISTS (SELECT 1 FROM scim_resources lr \
         JOIN idp_connections lc ON lc.id = lr.connection_id WHERE lr.seq = h.end_user_seq \
         AND lc.priority > (SELECT priority FROM idp_connections WHERE id = ",
    );
    sql.push_bind(conn.0);
    sql.push(")))");
}

/// Before a user is deleted: its hosts are unlinked (state `user_deleted`), with history.
/// The caller deletes the user and then rematches the user's identities.
pub(crate) async fn unlink_deleted_user(tx: &mut Conn, user_seq: i64, actor: &Actor) -> StoreResult<()> {
    let lock = tx.dialect().for_update();
    let hosts = tx
        .ints(&Sql::with(format!("SELECT id FROM hosts WHERE end_user_seq = $1 ORDER BY id{lock}"), [user_seq.into()]))
        .await?;
    unlink_hosts(tx, &hosts, LinkCause::ScimChange, "user_deleted", true, actor).await
}

/// Unlinks linked hosts, with history: as laptops to recover (`orphan`, state
/// `user_deleted`) when the IdP deleted their user, else as unlinked (their user's
/// connection went). The caller matches them again once the users are gone.
pub(crate) async fn unlink_hosts(
    tx: &mut Conn,
    hosts: &[i64],
    cause: LinkCause,
    reason: &str,
    orphan: bool,
    actor: &Actor,
) -> StoreResult<()> {
    let state = if orphan { LinkState::UserDeleted } else { LinkState::Unlinked };
    for &host_id in hosts {
        let host = load_link(tx, host_id).await?;
        let Some(seq) = host.end_user_seq else { continue };
        unlink(tx, host_id, &host, seq, cause, reason, actor).await?;
        tx.execute(&Sql::with(
            "UPDATE hosts SET end_user_seq = NULL, link_state = $1, candidates = NULL, orphaned = $2 WHERE id = $3",
            [state.as_str().into(), i64::from(orphan || host.orphaned).into(), host_id.into()],
        ))
        .await?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::panic)]
mod tests {
    use super::*;

    fn m(seq: i64, priority: i64, by_user_name: bool) -> Matched {
        Matched { seq, id: format!("u{seq}"), user_name: format!("n{seq}"), priority, by_user_name }
    }

    fn winners(d: Decision) -> Vec<i64> {
        match d {
            Decision::Winners(w) => w.into_iter().map(|c| c.0).collect(),
            Decision::Keep => panic!("expected winners, got Keep"),
        }
    }

    #[test]
    fn the_first_connection_with_a_match_decides_and_its_ambiguity_stands() {
        // Connection 10 has two email matches; connection 20 a userName match.
        let matches = [m(1, 10, false), m(2, 10, false), m(3, 20, true)];
        assert_eq!(winners(decide(&matches, None)), vec![1, 2]);
        // Within a connection the userName match wins over emails.
        let matches = [m(1, 10, false), m(4, 10, true), m(3, 20, true)];
        assert_eq!(winners(decide(&matches, None)), vec![4]);
        // A user with the same email twice is one candidate.
        assert_eq!(winners(decide(&[m(1, 10, false), m(1, 10, false)], None)), vec![1]);
        assert!(winners(decide(&[], None)).is_empty());
    }

    #[test]
    fn a_link_stands_unless_a_connection_that_comes_first_has_a_match() {
        assert!(matches!(decide(&[m(3, 20, true)], Some(20)), Decision::Keep));
        assert!(matches!(decide(&[m(3, 20, true)], Some(10)), Decision::Keep));
        assert!(matches!(decide(&[], Some(10)), Decision::Keep));
        assert_eq!(winners(decide(&[m(3, 5, true)], Some(10))), vec![3]);
    }
}
