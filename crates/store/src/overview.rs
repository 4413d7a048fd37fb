//! The overview's figures. Each is one query on an index: the owner states on
//! `hosts_link_state` (and `scim_resources_active` for deactivated owners), the
//! attention lists on the same indexes newest first, the departments on the value index,
//! the feed on `scim_request_hours` and `sync_runs_connection`, the webhook backlog on
//! `webhook_events_state`.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use custodian_domain::connections::ConnectionId;
use custodian_domain::hosts::OwnerState;
use custodian_domain::overview::{
    ATTENTION_HOSTS, AttentionHost, ConnectionFeed, FEED_HOURS, FeedHour, Overview, TOP_DEPARTMENTS, WebhookBacklog,
};
use custodian_domain::{StoreError, StoreResult};
use custodian_scim::schema::ENTERPRISE_USER_SCHEMA;

use crate::db::{Conn, Db, Sql};
use crate::host_sql::push_owner_state;
use crate::requests::hour_key;
use crate::time;

const INACTIVE_USERS: &str = "SELECT seq FROM scim_resources WHERE kind = 'User' AND active = 0";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// Hosts per owner state: one grouped scan of `hosts_link_state`, and the linked hosts of
/// deactivated users through `hosts_end_user`.
async fn coverage(conn: &mut Conn) -> StoreResult<Vec<(OwnerState, u64)>> {
    let rows = conn
        .fetch_all(&Sql::new(format!(
            "SELECT link_state AS state, COUNT(*) AS n FROM hosts GROUP BY link_state \
             UNION ALL SELECT 'owner_deactivated', COUNT(*) FROM hosts \
             WHERE link_state = 'linked' AND end_user_seq IN ({INACTIVE_USERS})"
        )))
        .await?;
    let mut by_state: HashMap<String, u64> = HashMap::new();
    for row in &rows {
        *by_state.entry(row.text("state")?).or_default() += count(row.int("n")?);
    }
    let deactivated = by_state.get("owner_deactivated").copied().unwrap_or(0);
    Ok(OwnerState::ALL
        .into_iter()
        .map(|s| {
            let n = match s {
                OwnerState::Linked => by_state.get("linked").copied().unwrap_or(0).saturating_sub(deactivated),
                other => by_state.get(other.as_str()).copied().unwrap_or(0),
            };
            (s, n)
        })
        .collect())
}

/// The newest hosts of one state, with the names of an ambiguous host's candidates and of
/// a deactivated owner.
async fn attention(conn: &mut Conn, state: OwnerState) -> StoreResult<Vec<AttentionHost>> {
    let mut sql = Sql::new(
        "SELECT h.id, h.hostname, h.computer_name, h.identity_norm, h.candidates, \
         (SELECT unique_norm FROM scim_resources WHERE seq = h.end_user_seq) AS owner FROM hosts h WHERE 1 = 1",
    );
    push_owner_state(&mut sql, state);
    sql.push(format!(" ORDER BY h.id DESC LIMIT {ATTENTION_HOSTS}"));
    let rows = conn.fetch_all(&sql).await?;
    let mut hosts = Vec::with_capacity(rows.len());
    let mut candidate_ids: Vec<String> = Vec::new();
    for row in &rows {
        let candidates: Vec<String> = match row.opt_text("candidates")? {
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Database(format!("candidates: {e}")))?,
            None => Vec::new(),
        };
        candidate_ids.extend(candidates.iter().cloned());
        let hostname = row.text("hostname")?;
        hosts.push(AttentionHost {
            id: row.int("id")?,
            hostname: if hostname.is_empty() { row.text("computer_name")? } else { hostname },
            identity: row.opt_text("identity_norm")?,
            candidates,
            owner: row.opt_text("owner")?,
        });
    }
    if !candidate_ids.is_empty() {
        let mut sql = Sql::new("SELECT id, unique_norm FROM scim_resources WHERE kind = 'User' AND id IN (");
        let mut sep = sql.separated(", ");
        for id in &candidate_ids {
            sep.push_bind(id.as_str());
        }
        sql.push(")");
        let names: HashMap<String, String> = conn
            .fetch_all(&sql)
            .await?
            .iter()
            .map(|r| Ok((r.text("id")?, r.text("unique_norm")?)))
            .collect::<StoreResult<_>>()?;
        for h in &mut hosts {
            for c in &mut h.candidates {
                if let Some(name) = names.get(c) {
                    *c = name.clone();
                }
            }
        }
    }
    Ok(hosts)
}

/// The departments of the hosts' owners with the most hosts.
async fn departments(conn: &mut Conn) -> StoreResult<Vec<(String, u64)>> {
    let rows = conn
        .fetch_all(&Sql::with(
            format!(
                "SELECT v.text_value AS department, COUNT(*) AS n FROM hosts h JOIN scim_values v \
                 ON v.resource_seq = h.end_user_seq AND v.kind = 'User' AND v.path = $1 \
                 WHERE h.end_user_seq IS NOT NULL GROUP BY v.text_value ORDER BY n DESC, department \
                 LIMIT {TOP_DEPARTMENTS}"
            ),
            [format!("{ENTERPRISE_USER_SCHEMA}:department").into()],
        ))
        .await?;
    rows.iter().map(|r| Ok((r.text("department")?, count(r.int("n")?)))).collect()
}

fn hour_start(key: &str) -> StoreResult<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(&format!("{key}:00:00"), "%Y-%m-%dT%H:%M:%S")
        .map(|t| t.and_utc())
        .map_err(|e| StoreError::Database(format!("scim_request_hours.hour {key}: {e}")))
}

/// Each connection's last seven days: SCIM requests per hour, or sync runs per hour.
async fn feeds(conn: &mut Conn, now: DateTime<Utc>) -> StoreResult<Vec<ConnectionFeed>> {
    let since = now - chrono::Duration::hours(FEED_HOURS - 1);
    let connections =
        conn.fetch_all(&Sql::new("SELECT id, name, kind FROM idp_connections ORDER BY priority, id")).await?;
    let mut feeds = Vec::with_capacity(connections.len());
    for c in &connections {
        let id = c.int("id")?;
        let kind = c.text("kind")?;
        let (hours, last_error) = if kind == "scim" {
            let hours = conn
                .fetch_all(&Sql::with(
                    "SELECT hour, ok, errors FROM scim_request_hours WHERE connection_id = $1 AND hour >= $2 \
                     ORDER BY hour",
                    [id.into(), hour_key(since).into()],
                ))
                .await?
                .iter()
                .map(|r| {
                    Ok(FeedHour {
                        hour: hour_start(&r.text("hour")?)?,
                        ok: count(r.int("ok")?),
                        errors: count(r.int("errors")?),
                    })
                })
                .collect::<StoreResult<Vec<_>>>()?;
            let last = conn
                .fetch_optional(&Sql::with(
                    "SELECT requested_at, status, detail FROM scim_requests WHERE connection_id = $1 AND status >= 400 \
                     ORDER BY id DESC LIMIT 1",
                    [id.into()],
                ))
                .await?;
            let last_error = match last {
                Some(r) => Some((
                    time::from_text(&r.text("requested_at")?)?,
                    format!("{} {}", r.int("status")?, r.opt_text("detail")?.unwrap_or_default()).trim().to_string(),
                )),
                None => None,
            };
            (hours, last_error)
        } else {
            let runs = conn
                .fetch_all(&Sql::with(
                    "SELECT started_at, status, error FROM sync_runs WHERE connection_id = $1 AND started_at >= $2 \
                     ORDER BY id",
                    [id.into(), time::to_text(since).into()],
                ))
                .await?;
            let mut by_hour: std::collections::BTreeMap<String, FeedHour> = std::collections::BTreeMap::new();
            let mut last_error = None;
            for r in &runs {
                let started = time::from_text(&r.text("started_at")?)?;
                let key = hour_key(started);
                let hour = hour_start(&key)?;
                let entry = by_hour.entry(key).or_insert(FeedHour { hour, ok: 0, errors: 0 });
                match r.text("status")?.as_str() {
                    "error" => {
                        entry.errors += 1;
                        last_error = Some((started, r.opt_text("error")?.unwrap_or_default()));
                    }
                    "success" => entry.ok += 1,
                    _ => {}
                }
            }
            if last_error.is_none() {
                let last = conn
                    .fetch_optional(&Sql::with(
                        "SELECT started_at, error FROM sync_runs WHERE connection_id = $1 AND status = 'error' \
                         ORDER BY id DESC LIMIT 1",
                        [id.into()],
                    ))
                    .await?;
                if let Some(r) = last {
                    last_error =
                        Some((time::from_text(&r.text("started_at")?)?, r.opt_text("error")?.unwrap_or_default()));
                }
            }
            (by_hour.into_values().collect(), last_error)
        };
        feeds.push(ConnectionFeed { id: ConnectionId(id), name: c.text("name")?, kind, hours, last_error });
    }
    Ok(feeds)
}

async fn webhooks(conn: &mut Conn) -> StoreResult<WebhookBacklog> {
    let rows = conn
        .fetch_all(&Sql::new(
            "SELECT state, COUNT(*) AS n FROM webhook_events WHERE state IN ('pending', 'failing') GROUP BY state",
        ))
        .await?;
    let mut backlog = WebhookBacklog::default();
    for r in &rows {
        match r.text("state")?.as_str() {
            "pending" => backlog.pending = count(r.int("n")?),
            _ => backlog.failing = count(r.int("n")?),
        }
    }
    let last = conn
        .fetch_optional(&Sql::new(
            "SELECT last_error, last_status, next_attempt_at FROM webhook_events WHERE state = 'failing' \
             ORDER BY id DESC LIMIT 1",
        ))
        .await?;
    if let Some(r) = last {
        let error = match (r.opt_int("last_status")?, r.opt_text("last_error")?) {
            (Some(status), Some(e)) => format!("{status}: {e}"),
            (Some(status), None) => format!("HTTP {status}"),
            (None, Some(e)) => e,
            (None, None) => "failed".into(),
        };
        backlog.last_failure = Some((error, time::from_text(&r.text("next_attempt_at")?)?));
    }
    Ok(backlog)
}

impl Db {
    pub(crate) async fn overview(&self, now: DateTime<Utc>) -> StoreResult<Overview> {
        let mut conn = self.read().await?;
        let coverage = coverage(&mut conn).await?;
        let mut attention = Vec::new();
        for state in [OwnerState::Unlinked, OwnerState::Ambiguous, OwnerState::OwnerDeactivated] {
            attention.push((state, self::attention(&mut conn, state).await?));
        }
        Ok(Overview {
            coverage,
            attention,
            departments: departments(&mut conn).await?,
            feeds: feeds(&mut conn, now).await?,
            webhooks: webhooks(&mut conn).await?,
        })
    }
}
