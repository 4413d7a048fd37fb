//! What the schema file changes in stored data. A declared extension is stored and
//! indexed as its declaration says (its URN's spelling, types, `caseExact`), an
//! undeclared one as `custodian_scim::custom` keeps it: when the declarations change, the
//! users are canonicalised again and their index rows rebuilt, once, in one transaction,
//! before the server answers. Uniqueness of declared attributes is checked here too.

use custodian_domain::{ConnectionId, StoreError, StoreResult};
use custodian_scim::ScimError;
use custodian_scim::declared;
use custodian_scim::resource::parse_resource;
use custodian_scim::schema::{ResourceKind, Uniqueness};
use serde_json::Value;

use crate::common::parse_doc;
use crate::db::{Conn, Db, Dialect, Sql};
use crate::index::{IndexRow, index_rows};

const SETTING: &str = "declared_schemas";
/// Users re-indexed per read.
const CHUNK: i64 = 1000;

/// A stored document made canonical again under the current declarations: a declared
/// extension's attributes move under its URN, typed. One that no longer validates (a
/// value the new type refuses) is kept as it is.
fn recanonicalise(kind: ResourceKind, doc: &Value) -> Option<Value> {
    let mut body = doc.as_object()?.clone();
    let mut schemas = vec![Value::String(kind.core_schema().id.to_string())];
    schemas.extend(
        body.keys().filter(|k| k.len() > 4 && k[..4].eq_ignore_ascii_case("urn:")).map(|k| Value::String(k.clone())),
    );
    body.insert("schemas".into(), Value::Array(schemas));
    parse_resource(kind, &Value::Object(body)).ok().map(|input| input.doc)
}

impl Db {
    /// Re-indexes every user when the declared schemas differ from those the index was
    /// built with; answers how many users were re-indexed (`None`: nothing to do).
    pub(crate) async fn reindex_for_declared_schemas(&self) -> StoreResult<Option<u64>> {
        let wanted = declared::fingerprint();
        let mut tx = self.write().await?;
        if tx.dialect() == Dialect::Postgres {
            // Writers wait: no user is written with the old model meanwhile.
            tx.execute(&Sql::new("LOCK TABLE scim_resources IN SHARE MODE")).await?;
        }
        let current = tx
            .fetch_optional(&Sql::with("SELECT value FROM store_settings WHERE name = $1", [SETTING.into()]))
            .await?
            .map(|r| r.text(0))
            .transpose()?
            .unwrap_or_default();
        if current == wanted {
            tx.commit().await?;
            return Ok(None);
        }
        let kind = ResourceKind::User;
        let mut after = 0_i64;
        let mut done = 0_u64;
        loop {
            let rows = tx
                .fetch_all(&Sql::with(
                    "SELECT seq, doc FROM scim_resources WHERE kind = 'User' AND seq > $1 ORDER BY seq LIMIT $2",
                    [after.into(), CHUNK.into()],
                ))
                .await?;
            let Some(last) = rows.last() else { break };
            after = last.int("seq")?;
            for row in &rows {
                let seq = row.int("seq")?;
                let stored = parse_doc(&row.text("doc")?)?;
                let doc = match recanonicalise(kind, &stored) {
                    Some(doc) => doc,
                    None => {
                        tracing::warn!(seq, "a user does not validate under the declared schemas; kept as stored");
                        stored
                    }
                };
                tx.execute(&Sql::with(
                    "UPDATE scim_resources SET doc = $1 WHERE seq = $2",
                    [doc.to_string().into(), seq.into()],
                ))
                .await?;
                tx.execute(&Sql::with("DELETE FROM scim_values WHERE resource_seq = $1", [seq.into()])).await?;
                crate::scim::insert_index(&mut tx, seq, kind, &index_rows(kind, &doc)).await?;
                done += 1;
            }
        }
        tx.execute(&Sql::with(
            "INSERT INTO store_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = $2",
            [SETTING.into(), wanted.into()],
        ))
        .await?;
        tx.commit().await?;
        Ok(Some(done))
    }
}

/// Refuses a write whose declared unique attribute (`uniqueness: server` within the
/// connection, `global` across all) another resource has; `own` is the resource written.
pub(crate) async fn check_unique(
    tx: &mut Conn,
    conn: ConnectionId,
    kind: ResourceKind,
    own: Option<i64>,
    index: &[IndexRow],
) -> StoreResult<()> {
    let unique = declared::unique_attributes(kind);
    if unique.is_empty() {
        return Ok(());
    }
    for (path, def) in unique {
        for row in index.iter().filter(|r| r.path == path) {
            // Two instances writing the same value at once: the value's lock orders them.
            let value_key = match (&row.text, row.num) {
                (Some(t), _) => format!("unique:{path}:t:{t}"),
                (None, Some(n)) => format!("unique:{path}:n:{n}"),
                (None, None) => continue,
            };
            tx.lock_identities(&[value_key]).await?;
            let mut sql = Sql::with(
                "SELECT 1 FROM scim_values v JOIN scim_resources r ON r.seq = v.resource_seq \
                 WHERE v.kind = $1 AND v.path = $2",
                [kind.name().into(), path.as_str().into()],
            );
            match (&row.text, row.num) {
                (Some(t), _) => {
                    sql.push(" AND v.text_value = ");
                    sql.push_bind(t.as_str());
                }
                (None, Some(n)) => {
                    sql.push(" AND v.num_value = ");
                    sql.push_bind(n);
                }
                (None, None) => continue,
            }
            if let Some(seq) = own {
                sql.push(" AND r.seq <> ");
                sql.push_bind(seq);
            }
            if def.uniqueness == Uniqueness::Server {
                sql.push(" AND r.connection_id = ");
                sql.push_bind(conn.0);
            }
            sql.push(" LIMIT 1");
            if tx.fetch_optional(&sql).await?.is_some() {
                return Err(StoreError::from(ScimError::uniqueness(format!("another user has this {path}"))));
            }
        }
    }
    Ok(())
}
