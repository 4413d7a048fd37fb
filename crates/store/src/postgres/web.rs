//! Web sign-in on PostgreSQL: password operators, browser sessions and the first-run
//! set-up (whose `web_setup` row makes two instances' concurrent set-ups create one admin).

use chrono::{DateTime, Utc};
use custodian_domain::web::{NewPasswordUser, NewWebSession, PasswordUser, WebSession};
use custodian_domain::{ApiUser, Role, StoreError, StoreResult, TokenDigest};

use super::begin;
use super::{PgStore, Tx, db_err, is_unique_violation};
use crate::common::{JOINED_USER_COLUMNS, USER_COLUMNS};
use crate::rows;
use crate::time;

async fn insert_password_user(tx: &mut Tx<'_>, user: &NewPasswordUser, now: &str) -> StoreResult<ApiUser> {
    let inserted = sqlx::query(&format!(
        "INSERT INTO api_users (name, name_norm, email, email_norm, role, api_only, created_at, password_hash) \
         VALUES ($1, $2, $3, $4, $5, 0, $6, $7) RETURNING {USER_COLUMNS}"
    ))
    .bind(&user.name)
    .bind(user.name.to_lowercase())
    .bind(&user.email)
    .bind(user.email.to_lowercase())
    .bind(user.role.as_str())
    .bind(now)
    .bind(&user.password_hash)
    .fetch_one(&mut **tx)
    .await;
    match inserted {
        Ok(row) => rows::api_user(&row),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("a user named '{}' or with that email already exists", user.name)))
        }
        Err(e) => Err(db_err(e)),
    }
}

impl PgStore {
    pub(super) async fn create_password_user_impl(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let created = insert_password_user(&mut tx, &user, &now).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    pub(super) async fn create_first_admin_impl(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_users WHERE role = 'admin' AND password_hash IS NOT NULL)",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(db_err)?;
        if exists {
            return Err(StoreError::Conflict("an admin already exists: sign in instead".into()));
        }
        let created = insert_password_user(&mut tx, &NewPasswordUser { role: Role::Admin, ..user }, &now).await?;
        // The set-up row's primary key is what makes two concurrent set-ups impossible on
        // a backend whose transactions do not serialise writers as SQLite does.
        match sqlx::query("INSERT INTO web_setup (id, user_id, created_at) VALUES (1, $1, $2)")
            .bind(created.id)
            .bind(&now)
            .execute(&mut *tx)
            .await
        {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict("the first admin has already been created".into()));
            }
            Err(e) => return Err(db_err(e)),
        }
        tx.commit().await.map_err(db_err)?;
        Ok(created)
    }

    pub(super) async fn has_password_admin_impl(&self) -> StoreResult<bool> {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_users WHERE role = 'admin' AND password_hash IS NOT NULL)",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(db_err)?;
        Ok(exists)
    }

    pub(super) async fn password_user_by_email_impl(&self, email: &str) -> StoreResult<Option<PasswordUser>> {
        let row = sqlx::query(&format!(
            "SELECT {JOINED_USER_COLUMNS}, u.password_hash FROM api_users u \
             WHERE u.email_norm = $1 AND u.password_hash IS NOT NULL AND u.api_only = 0"
        ))
        .bind(email.trim().to_lowercase())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        match row {
            None => Ok(None),
            Some(row) => Ok(Some(rows::password_user(&row)?)),
        }
    }

    pub(super) async fn create_web_session_impl(&self, session: NewWebSession) -> StoreResult<()> {
        let created = time::to_text(session.created_at);
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        sqlx::query(
            "INSERT INTO web_sessions (digest, user_id, csrf_token, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(session.digest.0.to_vec())
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(&created)
        .bind(&created)
        .bind(time::to_text(session.expires_at))
        .execute(&mut *tx)
        .await
        .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn web_session_impl(&self, digest: TokenDigest) -> StoreResult<Option<WebSession>> {
        let row = sqlx::query(&format!(
            "SELECT {JOINED_USER_COLUMNS}, s.csrf_token, s.created_at AS s_created, s.last_seen_at, s.expires_at \
             FROM web_sessions s JOIN api_users u ON u.id = s.user_id WHERE s.digest = $1"
        ))
        .bind(digest.0.to_vec())
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(rows::web_session(&row)?))
    }

    pub(super) async fn touch_web_session_impl(&self, digest: TokenDigest, at: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        sqlx::query("UPDATE web_sessions SET last_seen_at = $1 WHERE digest = $2")
            .bind(time::to_text(at))
            .bind(digest.0.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn delete_web_session_impl(&self, digest: TokenDigest) -> StoreResult<()> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        sqlx::query("DELETE FROM web_sessions WHERE digest = $1")
            .bind(digest.0.to_vec())
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)
    }

    pub(super) async fn delete_expired_web_sessions_impl(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        let mut tx = begin(&self.pool, None).await.map_err(db_err)?;
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at < $2")
            .bind(time::to_text(now))
            .bind(time::to_text(idle_before))
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        tx.commit().await.map_err(db_err)?;
        Ok(done.rows_affected())
    }
}
