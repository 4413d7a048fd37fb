//! Operators and their tokens.

use custodian_domain::connections::{ConnectionCredential, DEFAULT_CONNECTION_NAME};
use custodian_domain::{ApiUser, ConnectionId, Credential, NewApiUser, StoreError, StoreResult, TokenDigest};
use subtle::ConstantTimeEq;

use crate::common::{JOINED_USER_COLUMNS, USER_COLUMNS};
use crate::db::{Conn, Db, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::rows;
use crate::time;

async fn insert_token(tx: &mut Conn, user_id: i64, token: TokenDigest, now: &str) -> StoreResult<()> {
    let sql = Sql::with(
        "INSERT INTO api_tokens (user_id, lookup, digest, created_at) VALUES ($1, $2, $3, $4)",
        [user_id.into(), token.lookup_key().into(), token.0.to_vec().into(), now.into()],
    );
    match tx.try_execute(&sql).await {
        // The operator was deleted meanwhile (the foreign key).
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => Err(StoreError::NotFound),
        other => other.map(drop).map_err(db_err),
    }
}

impl Db {
    pub(crate) async fn create_api_user(&self, user: NewApiUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = self.write().await?;
        let insert = Sql::with(
            format!(
                "INSERT INTO api_users (name, name_norm, email, email_norm, role, api_only, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {USER_COLUMNS}"
            ),
            [
                (&user.name).into(),
                user.name.to_lowercase().into(),
                (&user.email).into(),
                user.email.as_ref().map(|e| e.to_lowercase()).into(),
                user.role.as_str().into(),
                i64::from(user.api_only).into(),
                (&now).into(),
            ],
        );
        let row = match tx.try_fetch_optional(&insert).await {
            Ok(row) => row.ok_or_else(|| db_err(sqlx::Error::RowNotFound))?,
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict(format!(
                    "a user named '{}' (or with that email) already exists",
                    user.name
                )));
            }
            Err(e) => return Err(db_err(e)),
        };
        let created = rows::api_user(&row)?;
        if let Some(token) = user.token {
            insert_token(&mut tx, created.id, token, &now).await?;
        }
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn list_api_users(&self) -> StoreResult<Vec<ApiUser>> {
        let sql = Sql::new(format!("SELECT {USER_COLUMNS} FROM api_users ORDER BY id"));
        self.read().await?.fetch_all(&sql).await?.iter().map(rows::api_user).collect()
    }

    pub(crate) async fn delete_api_user(&self, id_or_name: &str) -> StoreResult<ApiUser> {
        let mut tx = self.write().await?;
        let id: Option<i64> = id_or_name.parse().ok();
        let sql = Sql::with(
            format!("DELETE FROM api_users WHERE id = $1 OR name_norm = $2 RETURNING {USER_COLUMNS}"),
            [id.into(), id_or_name.to_lowercase().into()],
        );
        let user = rows::api_user(&tx.fetch_optional(&sql).await?.ok_or(StoreError::NotFound)?)?;
        tx.commit().await?;
        Ok(user)
    }

    pub(crate) async fn add_token(&self, user_id: i64, token: TokenDigest) -> StoreResult<()> {
        let mut tx = self.write().await?;
        insert_token(&mut tx, user_id, token, &time::to_text(time::now())).await?;
        tx.commit().await
    }

    pub(crate) async fn record_operator_use(&self, user_id: i64, at: chrono::DateTime<chrono::Utc>) -> StoreResult<()> {
        self.write_one(Sql::with(
            "UPDATE api_users SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
            [time::to_text(at).into(), user_id.into()],
        ))
        .await
        .map(drop)
    }

    pub(crate) async fn host_columns(&self, user_id: i64) -> StoreResult<Vec<String>> {
        let sql = Sql::with("SELECT host_columns FROM api_users WHERE id = $1", [user_id.into()]);
        let Some(row) = self.read().await?.fetch_optional(&sql).await? else {
            return Err(StoreError::NotFound);
        };
        match row.opt_text("host_columns")? {
            None => Ok(Vec::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Database(format!("host_columns: {e}"))),
        }
    }

    pub(crate) async fn set_host_columns(&self, user_id: i64, paths: &[String]) -> StoreResult<()> {
        let value = if paths.is_empty() {
            None
        } else {
            Some(serde_json::to_string(paths).map_err(|e| StoreError::Database(e.to_string()))?)
        };
        let sql = Sql::with("UPDATE api_users SET host_columns = $1 WHERE id = $2", [value.into(), user_id.into()]);
        match self.write_one(sql).await? {
            0 => Err(StoreError::NotFound),
            _ => Ok(()),
        }
    }

    /// What a bearer token is: operators' and connections' tokens share one space and
    /// one query (no cache on a shared database, so this runs once per request there).
    pub(crate) async fn authenticate_token(&self, token: TokenDigest) -> StoreResult<Option<Credential>> {
        let sql = Sql::with(
            format!(
                "SELECT 'operator' AS source, t.digest, t.revoked_at, CAST(NULL AS TEXT) AS expires_at, \
                 t.id AS token_id, {JOINED_USER_COLUMNS}, \
                 (SELECT id FROM idp_connections WHERE name_norm = '{DEFAULT_CONNECTION_NAME}' AND kind = 'scim') \
                 AS connection_id, \
                 CAST(NULL AS TEXT) AS connection_name \
                 FROM api_tokens t JOIN api_users u ON u.id = t.user_id WHERE t.lookup = $1 \
                 UNION ALL SELECT 'connection', k.digest, k.revoked_at, k.expires_at, k.id, \
                 NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.id, c.name \
                 FROM idp_connection_tokens k JOIN idp_connections c ON c.id = k.connection_id WHERE k.lookup = $1"
            ),
            [token.lookup_key().into()],
        );
        for row in self.read().await?.fetch_all(&sql).await? {
            let digest = row.bytes("digest")?;
            if !bool::from(digest.as_slice().ct_eq(&token.0)) {
                continue;
            }
            if row.opt_text("revoked_at")?.is_some() {
                return Ok(Some(Credential::Revoked));
            }
            let connection = row.opt_int("connection_id")?.map(ConnectionId);
            return Ok(Some(if row.text("source")? == "operator" {
                Credential::Operator { user: rows::api_user(&row)?, default: connection }
            } else {
                Credential::Connection(ConnectionCredential {
                    token_id: row.int("token_id")?,
                    connection: connection.ok_or_else(|| StoreError::Database("a token without connection".into()))?,
                    connection_name: row.text("connection_name")?,
                    expires_at: row.opt_text("expires_at")?.map(|s| time::from_text(&s)).transpose()?,
                })
            }));
        }
        Ok(None)
    }
}
