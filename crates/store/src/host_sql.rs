//! The host list's WHERE and ORDER BY, shared by both backends.

use custodian_domain::hosts::{HostOrderKey, HostQuery};
use custodian_scim::schema::ENTERPRISE_USER_SCHEMA;
use sqlx::{Database, Encode, QueryBuilder, Type};

use crate::sql_filter::Dialect;

/// The WHERE clause of the host list for a query (after `WHERE 1=1`).
pub fn push_host_filters<DB>(qb: &mut QueryBuilder<'_, DB>, dialect: Dialect, q: &HostQuery)
where
    DB: Database,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let contains = dialect.contains();
    if let Some(text) = q.query.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
        let needle = text.to_lowercase();
        qb.push(format_args!(" AND ({contains}(lower(h.hostname), "));
        qb.push_bind(needle.clone());
        qb.push(format_args!(") > 0 OR {contains}(lower(h.computer_name), "));
        qb.push_bind(needle.clone());
        qb.push(format_args!(") > 0 OR {contains}(lower(h.hardware_serial), "));
        qb.push_bind(needle.clone());
        qb.push(format_args!(
            ") > 0 OR EXISTS (SELECT 1 FROM host_emails qe WHERE qe.host_id = h.id AND {contains}(qe.email_norm, "
        ));
        qb.push_bind(needle.clone());
        qb.push(format_args!(
            ") > 0) OR h.end_user_seq IN (SELECT seq FROM scim_resources WHERE kind = 'User' AND {contains}(unique_norm, "
        ));
        qb.push_bind(needle);
        qb.push(") > 0))");
    }
    if let Some(user_name) = &q.idp_username {
        qb.push(" AND h.end_user_seq IN (SELECT seq FROM scim_resources WHERE kind = 'User' AND unique_norm = ");
        qb.push_bind(user_name.trim().to_lowercase());
        qb.push(")");
    }
    if let Some(group) = &q.idp_group {
        qb.push(
            " AND h.end_user_seq IN (WITH RECURSIVE below(s, depth) AS (SELECT seq, 0 FROM scim_resources \
             WHERE kind = 'Group' AND (id = ",
        );
        qb.push_bind(group.clone());
        qb.push(" OR unique_norm = ");
        qb.push_bind(group.trim().to_lowercase());
        qb.push(match dialect {
            Dialect::Sqlite => {
                ") UNION SELECT m.member_seq, below.depth + 1 FROM scim_members m JOIN below ON m.group_seq = below.s \
                 WHERE below.depth < 32) SELECT s FROM below)"
            }
            // PostgreSQL cannot estimate a recursive CTE's size and would hash-join each
            // level against a scan of every membership; LATERAL ... OFFSET 0 keeps each
            // step an index probe.
            Dialect::Postgres => {
                ") UNION SELECT m.member_seq, below.depth + 1 FROM below JOIN LATERAL \
                 (SELECT mm.member_seq FROM scim_members mm WHERE mm.group_seq = below.s OFFSET 0) m ON true \
                 WHERE below.depth < 32) SELECT s FROM below)"
            }
        });
    }
    if let Some(dept) = &q.idp_department {
        qb.push(" AND h.end_user_seq IN (SELECT resource_seq FROM scim_values WHERE kind = 'User' AND path = ");
        qb.push_bind(format!("{ENTERPRISE_USER_SCHEMA}:department"));
        qb.push(" AND text_value = ");
        qb.push_bind(dept.trim().to_lowercase());
        qb.push(")");
    }
    match q.idp_active {
        Some(false) => {
            // Laptops to recover: a UNION of two indexed probes (deactivated users' hosts
            // through `hosts_end_user`, orphans through `hosts_orphaned`) rather than an
            // OR, which would read every host.
            qb.push(
                " AND h.id IN (SELECT o.id FROM hosts o WHERE o.end_user_seq IN \
                 (SELECT seq FROM scim_resources WHERE kind = 'User' AND active = 0) \
                 UNION ALL SELECT o.id FROM hosts o WHERE o.end_user_seq IS NULL AND o.orphaned = 1)",
            );
        }
        Some(true) => {
            qb.push(" AND h.end_user_seq IN (SELECT seq FROM scim_resources WHERE kind = 'User' AND active = 1)");
        }
        None => {}
    }
}

/// ORDER BY, LIMIT and OFFSET of a host page; the id breaks ties so that pages are stable.
pub fn push_host_page<DB>(qb: &mut QueryBuilder<'_, DB>, q: &HostQuery)
where
    DB: Database,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
{
    let dir = if q.descending { "DESC" } else { "ASC" };
    let order = match q.order_key {
        HostOrderKey::Id => "h.id",
        HostOrderKey::Hostname => "h.hostname",
        HostOrderKey::HardwareSerial => "h.hardware_serial",
        HostOrderKey::CreatedAt => "h.created_at",
        HostOrderKey::UpdatedAt => "h.updated_at",
        HostOrderKey::IdpUsername => "(SELECT unique_norm FROM scim_resources WHERE seq = h.end_user_seq)",
    };
    qb.push(format_args!(" ORDER BY {order} {dir}, h.id {dir} LIMIT "));
    qb.push_bind(q.per_page.min(i64::MAX as u64) as i64);
    qb.push(" OFFSET ");
    qb.push_bind(q.page.saturating_mul(q.per_page).min(i64::MAX as u64) as i64);
}
