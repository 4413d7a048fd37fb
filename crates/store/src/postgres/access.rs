//! Operators and their tokens.

use custodian_domain::{ApiUser, NewApiUser, StoreError, StoreResult, TokenDigest};
use subtle::ConstantTimeEq;

use super::begin;
use super::{PgStore, Tx, db_err, is_unique_violation};
use crate::common::{JOINED_USER_COLUMNS, USER_COLUMNS};
use crate::rows::{self, DbRow};
use crate::time;

impl PgStore {
    pub(super) async fn create_api_user_impl(&self, user: NewApiUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let inserted = sqlx::query(&format!(
            "INSERT INTO api_users (name, name_norm, email, email_norm, role, api_only, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {USER_COLUMNS}"
        ))
        .bind(&user.name)
        .bind(user.name.to_lowercase())
        .bind(&user.email)
        .bind(user.email.as_ref().map(|e| e.to_lowercase()))
        .bind(user.role.as_str())
        .bind(user.api_only as i64)
        .bind(&now)
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
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
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    pub(super) async fn list_api_users_impl(&self) -> StoreResult<Vec<ApiUser>> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM api_users ORDER BY id"))
            .fetch_all(&self.pool)
            .await
            .map_err(db_err)?;
        rows.iter().map(rows::api_user).collect()
    }

    pub(super) async fn delete_api_user_impl(&self, id_or_name: &str) -> StoreResult<ApiUser> {
        let id: Option<i64> = id_or_name.parse().ok();
        let row =
            sqlx::query(&format!("DELETE FROM api_users WHERE id = $1 OR name_norm = $2 RETURNING {USER_COLUMNS}"))
                .bind(id)
                .bind(id_or_name.to_lowercase())
                .fetch_optional(&self.pool)
                .await
                .map_err(db_err)?;
        rows::api_user(&row.ok_or(StoreError::NotFound)?)
    }

    pub(super) async fn add_token_impl(&self, user_id: i64, token: TokenDigest) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        insert_token(&mut tx, user_id, token, &time::to_text(time::now())).await?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn record_operator_use_impl(
        &self,
        user_id: i64,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "UPDATE api_users SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(time::to_text(at))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    pub(super) async fn authenticate_token_impl(&self, token: TokenDigest) -> StoreResult<Option<ApiUser>> {
        let rows = sqlx::query(&format!(
            "SELECT t.digest, {JOINED_USER_COLUMNS} FROM api_tokens t JOIN api_users u ON u.id = t.user_id \
             WHERE t.lookup = $1 AND t.revoked_at IS NULL",
        ))
        .bind(token.lookup_key())
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)?;
        for row in rows {
            let digest = row.bytes("digest")?;
            if bool::from(digest.as_slice().ct_eq(&token.0)) {
                return rows::api_user(&row).map(Some);
            }
        }
        Ok(None)
    }
}

async fn insert_token(tx: &mut Tx<'_>, user_id: i64, token: TokenDigest, now: &str) -> StoreResult<()> {
    let inserted = sqlx::query("INSERT INTO api_tokens (user_id, lookup, digest, created_at) VALUES ($1, $2, $3, $4)")
        .bind(user_id)
        .bind(token.lookup_key())
        .bind(token.0.to_vec())
        .bind(now)
        .execute(&mut **tx)
        .await;
    match inserted {
        // The operator was deleted meanwhile (the foreign key).
        Err(sqlx::Error::Database(d)) if d.is_foreign_key_violation() => Err(StoreError::NotFound),
        other => other.map(|_| ()).map_err(db_err),
    }
}
