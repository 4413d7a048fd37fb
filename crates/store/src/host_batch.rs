//! Hosts that a batch creates, written set-wise: a few statements per thousand hosts
//! instead of several per host. Each trip to SQLite's worker thread costs more than the
//! statement, so importing 100,000 hosts is bounded by trips, not by SQL. The mapping
//! rules are the same as `linking::apply_rules` for a host with no previous state: one
//! match links it, several make it ambiguous, none leave it unlinked.

use std::collections::HashMap;

use custodian_domain::hosts::{Actor, DeviceMapping, HostInput, LinkCause, LinkState, identity_of, normalize_identity};
use custodian_domain::{StoreError, StoreResult};
use serde_json::{Value, json};

use crate::db::{Conn, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::linking::{Decision, candidates_of, decide};
use crate::rows::Candidate;

/// Rows per multi-row statement: within SQLite's limit of 32,766 bound values (and
/// PostgreSQL's of 65,535).
const CHUNK: usize = 1000;

/// Inserts hosts whose uuids are new, with their mappings, links, history and activities.
/// Returns their ids in input order.
pub(crate) async fn create_hosts(
    tx: &mut Conn,
    hosts: &[&HostInput],
    now: &str,
    actor: &Actor,
) -> StoreResult<Vec<i64>> {
    let mut ids = Vec::with_capacity(hosts.len());
    for chunk in hosts.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO hosts (uuid, hardware_serial, hostname, computer_name, platform, os_version, hardware_model, \
             created_at, updated_at, seen_time) ",
        );
        sql.push_values(chunk.iter(), |mut b, h| {
            b.push_bind(&h.uuid)
                .push_bind(&h.hardware_serial)
                .push_bind(&h.hostname)
                .push_bind(&h.computer_name)
                .push_bind(&h.platform)
                .push_bind(&h.os_version)
                .push_bind(&h.hardware_model)
                .push_bind(now)
                .push_bind(now)
                .push_bind(h.seen_time.map(crate::time::to_text));
        });
        sql.push(" RETURNING id, uuid");
        let inserted = tx.try_fetch_all(&sql).await.map_err(|e| {
            // Another instance (PostgreSQL) created one of these uuids since we looked:
            // the whole upsert runs again, and the host is an update this time.
            if is_unique_violation(&e) { StoreError::Contention(e.to_string()) } else { db_err(e) }
        })?;
        let mut by_uuid: HashMap<String, i64> = HashMap::with_capacity(chunk.len());
        for row in inserted {
            by_uuid.insert(row.text("uuid")?, row.int("id")?);
        }
        for h in chunk {
            ids.push(
                by_uuid
                    .get(&h.uuid)
                    .copied()
                    .ok_or_else(|| StoreError::Database(format!("host {} was not inserted", h.uuid)))?,
            );
        }
    }

    // Mappings, in one statement per thousand.
    let mappings: Vec<(i64, usize, &DeviceMapping)> = hosts
        .iter()
        .zip(&ids)
        .flat_map(|(h, id)| h.device_mapping.iter().flatten().enumerate().map(move |(i, m)| (*id, i, m)))
        .collect();
    for chunk in mappings.chunks(CHUNK) {
        let mut sql = Sql::new("INSERT INTO host_emails (host_id, source, email, email_norm, position) ");
        sql.push_values(chunk.iter(), |mut b, (id, position, m)| {
            b.push_bind(*id)
                .push_bind(m.source.as_str())
                .push_bind(m.email.trim())
                .push_bind(normalize_identity(&m.email))
                .push_bind(*position as i64);
        });
        sql.push(" ON CONFLICT DO NOTHING");
        tx.execute(&sql).await?;
    }

    // The rules: match every identity of the batch at once.
    let identities: Vec<Option<String>> = hosts
        .iter()
        .map(|h| identity_of(h.device_mapping.as_deref().unwrap_or_default()).map(normalize_identity))
        .collect();
    let mut wanted: Vec<String> = identities.iter().flatten().cloned().collect();
    wanted.sort();
    wanted.dedup();
    // Across connections by priority, as `linking::decide` says for a host with no link.
    let matches: HashMap<String, Vec<Candidate>> = candidates_of(tx, &wanted)
        .await?
        .into_iter()
        .map(|(identity, found)| match decide(&found, None) {
            Decision::Winners(winners) => (identity, winners),
            Decision::Keep => (identity, Vec::new()),
        })
        .collect();

    let mut updates = Vec::with_capacity(hosts.len());
    let mut history = Vec::new();
    let mut activities = Vec::new();
    for ((h, id), identity) in hosts.iter().zip(&ids).zip(&identities) {
        let display = if h.computer_name.is_empty() { &h.hostname } else { &h.computer_name };
        let found = identity.as_ref().and_then(|i| matches.get(i)).map(Vec::as_slice).unwrap_or_default();
        let (state, seq, candidates) = match (identity, found) {
            (None, _) => (LinkState::NoIdentity, None, None),
            (Some(_), []) => (LinkState::Unlinked, None, None),
            (Some(_), [(seq, idp_id, user_name)]) => {
                history.push((*id, idp_id.clone(), user_name.clone()));
                activities.push((
                    "linked_host_end_user",
                    json!({"host_id": id, "host_display_name": display, "idp_id": idp_id,
                           "idp_username": user_name, "cause": LinkCause::HostChange.as_str()}),
                ));
                (LinkState::Linked, Some(*seq), None)
            }
            (Some(identity), several) => {
                activities.push((
                    "ambiguous_host_end_user",
                    json!({"host_id": id, "host_display_name": display, "identity": identity,
                           "candidates": several.iter().map(|(_, i, u)| json!({"idp_id": i, "idp_username": u})).collect::<Vec<_>>(),
                           "cause": LinkCause::HostChange.as_str()}),
                ));
                let ids: Vec<&String> = several.iter().map(|(_, i, _)| i).collect();
                (LinkState::Ambiguous, None, Some(json!(ids).to_string()))
            }
        };
        updates.push((*id, identity.clone(), seq, state.as_str(), candidates));
    }

    for chunk in updates.chunks(CHUNK) {
        let mut sql = Sql::new("WITH v(id, identity_norm, end_user_seq, link_state, candidates) AS (");
        sql.push_values(chunk.iter(), |mut b, (id, identity, seq, state, candidates)| {
            b.push_bind(*id).push_bind(identity).push_bind(*seq).push_bind(*state).push_bind(candidates);
        });
        sql.push(
            ") UPDATE hosts SET identity_norm = v.identity_norm, end_user_seq = v.end_user_seq, \
             link_state = v.link_state, candidates = v.candidates FROM v WHERE hosts.id = v.id",
        );
        tx.execute(&sql).await?;
    }
    for chunk in history.chunks(CHUNK) {
        let mut sql =
            Sql::new("INSERT INTO host_end_user_history (host_id, scim_user_id, user_name, linked_at, link_cause) ");
        sql.push_values(chunk.iter(), |mut b, (id, idp_id, user_name)| {
            b.push_bind(*id)
                .push_bind(idp_id)
                .push_bind(user_name)
                .push_bind(now)
                .push_bind(LinkCause::HostChange.as_str());
        });
        tx.execute(&sql).await?;
    }
    for chunk in activities.chunks(CHUNK) {
        let mut sql = Sql::new(
            "INSERT INTO activities (created_at, actor_id, actor_name, type, details, host_id, idp_username_norm) ",
        );
        sql.push_values(chunk.iter(), |mut b, (kind, details): &(&str, Value)| {
            let (host_id, user) = crate::linking::activity_subjects(details);
            b.push_bind(now)
                .push_bind(actor.id)
                .push_bind(&actor.name)
                .push_bind(*kind)
                .push_bind(details.to_string())
                .push_bind(host_id)
                .push_bind(user);
        });
        tx.execute(&sql).await?;
    }
    Ok(ids)
}
