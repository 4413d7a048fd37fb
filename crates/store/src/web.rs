//! Web sign-in: password operators, browser sessions and the first-run set-up (whose
//! `web_setup` row makes two instances' concurrent set-ups create one admin).

use chrono::{DateTime, Utc};
use custodian_domain::hosts::Actor;
use custodian_domain::web::{
    NewPasswordUser, NewWebSession, OperatorSession, OperatorSummary, PasswordUser, WebSession,
};
use custodian_domain::{ApiUser, Role, StoreError, StoreResult, TokenDigest};
use serde_json::json;

use crate::common::{JOINED_USER_COLUMNS, USER_COLUMNS};
use crate::db::{Conn, Db, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::linking::record_activity;
use crate::rows;
use crate::time;

const ADMIN_EXISTS: &str = "SELECT EXISTS (SELECT 1 FROM api_users WHERE role = 'admin' AND password_hash IS NOT NULL)";

async fn insert_password_user(tx: &mut Conn, user: &NewPasswordUser, now: &str) -> StoreResult<ApiUser> {
    let sql = Sql::with(
        format!(
            "INSERT INTO api_users (name, name_norm, email, email_norm, role, api_only, created_at, password_hash) \
             VALUES ($1, $2, $3, $4, $5, 0, $6, $7) RETURNING {USER_COLUMNS}"
        ),
        [
            (&user.name).into(),
            user.name.to_lowercase().into(),
            (&user.email).into(),
            user.email.to_lowercase().into(),
            user.role.as_str().into(),
            now.into(),
            (&user.password_hash).into(),
        ],
    );
    match tx.try_fetch_optional(&sql).await {
        Ok(Some(row)) => rows::api_user(&row),
        Ok(None) => Err(db_err(sqlx::Error::RowNotFound)),
        Err(e) if is_unique_violation(&e) => {
            Err(StoreError::Conflict(format!("a user named '{}' or with that email already exists", user.name)))
        }
        Err(e) => Err(db_err(e)),
    }
}

impl Db {
    pub(crate) async fn create_password_user(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = self.write().await?;
        let created = insert_password_user(&mut tx, &user, &now).await?;
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn create_first_admin(&self, user: NewPasswordUser) -> StoreResult<ApiUser> {
        let now = time::to_text(time::now());
        let mut tx = self.write().await?;
        if tx.fetch_one(&Sql::new(ADMIN_EXISTS)).await?.boolean(0)? {
            return Err(StoreError::Conflict("an admin already exists: sign in instead".into()));
        }
        let created = insert_password_user(&mut tx, &NewPasswordUser { role: Role::Admin, ..user }, &now).await?;
        // The set-up row's primary key is what makes two concurrent set-ups impossible on
        // a backend whose transactions do not serialise writers as SQLite does.
        let setup = Sql::with(
            "INSERT INTO web_setup (id, user_id, created_at) VALUES (1, $1, $2)",
            [created.id.into(), now.into()],
        );
        match tx.try_execute(&setup).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::Conflict("the first admin has already been created".into()));
            }
            Err(e) => return Err(db_err(e)),
        }
        tx.commit().await?;
        Ok(created)
    }

    pub(crate) async fn has_password_admin(&self) -> StoreResult<bool> {
        self.read().await?.fetch_one(&Sql::new(ADMIN_EXISTS)).await?.boolean(0)
    }

    pub(crate) async fn password_user_by_email(&self, email: &str) -> StoreResult<Option<PasswordUser>> {
        let sql = Sql::with(
            format!(
                "SELECT {JOINED_USER_COLUMNS}, u.password_hash FROM api_users u \
                 WHERE u.email_norm = $1 AND u.password_hash IS NOT NULL AND u.api_only = 0"
            ),
            [email.trim().to_lowercase().into()],
        );
        self.read().await?.fetch_optional(&sql).await?.as_ref().map(rows::password_user).transpose()
    }

    pub(crate) async fn create_web_session(&self, session: NewWebSession) -> StoreResult<()> {
        let created = time::to_text(session.created_at);
        let mut tx = self.write().await?;
        tx.execute(&Sql::with(
            "INSERT INTO web_sessions (digest, user_id, csrf_token, created_at, last_seen_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            [
                session.digest.0.to_vec().into(),
                session.user_id.into(),
                session.csrf_token.into(),
                (&created).into(),
                (&created).into(),
                time::to_text(session.expires_at).into(),
            ],
        ))
        .await?;
        tx.execute(&Sql::with(
            "UPDATE api_users SET last_sign_in_at = $1 WHERE id = $2",
            [created.into(), session.user_id.into()],
        ))
        .await?;
        tx.commit().await
    }

    pub(crate) async fn web_session(&self, digest: TokenDigest) -> StoreResult<Option<WebSession>> {
        let sql = Sql::with(
            format!(
                "SELECT {JOINED_USER_COLUMNS}, s.csrf_token, s.created_at AS s_created, s.last_seen_at, s.expires_at \
                 FROM web_sessions s JOIN api_users u ON u.id = s.user_id WHERE s.digest = $1"
            ),
            [digest.0.to_vec().into()],
        );
        self.read().await?.fetch_optional(&sql).await?.as_ref().map(rows::web_session).transpose()
    }

    pub(crate) async fn touch_web_session(&self, digest: TokenDigest, at: DateTime<Utc>) -> StoreResult<()> {
        self.write_one(Sql::with(
            "UPDATE web_sessions SET last_seen_at = $1 WHERE digest = $2",
            [time::to_text(at).into(), digest.0.to_vec().into()],
        ))
        .await
        .map(drop)
    }

    pub(crate) async fn delete_web_session(&self, digest: TokenDigest) -> StoreResult<()> {
        self.write_one(Sql::with("DELETE FROM web_sessions WHERE digest = $1", [digest.0.to_vec().into()]))
            .await
            .map(drop)
    }

    pub(crate) async fn delete_expired_web_sessions(
        &self,
        now: DateTime<Utc>,
        idle_before: DateTime<Utc>,
    ) -> StoreResult<u64> {
        self.write_one(Sql::with(
            "DELETE FROM web_sessions WHERE expires_at <= $1 OR last_seen_at < $2",
            [time::to_text(now).into(), time::to_text(idle_before).into()],
        ))
        .await
    }
}

impl Db {
    pub(crate) async fn operator_summaries(&self) -> StoreResult<Vec<OperatorSummary>> {
        let sql = Sql::new(format!(
            "SELECT {JOINED_USER_COLUMNS}, u.sso_issuer, u.sso_blocked_reason, u.password_hash IS NOT NULL AS has_password, \
             u.last_sign_in_at, (SELECT COUNT(*) FROM web_sessions s WHERE s.user_id = u.id) AS sessions, \
             (SELECT COUNT(*) FROM api_tokens t WHERE t.user_id = u.id AND t.revoked_at IS NULL) AS tokens \
             FROM api_users u ORDER BY u.name_norm"
        ));
        let rows = self.read().await?.fetch_all(&sql).await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorSummary {
                    user: rows::api_user(r)?,
                    sso: r.opt_text("sso_issuer")?.is_some(),
                    blocked_reason: r.opt_text("sso_blocked_reason")?,
                    has_password: r.boolean("has_password")?,
                    sessions: u64::try_from(r.int("sessions")?).unwrap_or(0),
                    tokens: u64::try_from(r.int("tokens")?).unwrap_or(0),
                    last_sign_in_at: r.opt_text("last_sign_in_at")?.as_deref().map(time::from_text).transpose()?,
                })
            })
            .collect()
    }

    pub(crate) async fn operator_sessions(&self, user_id: i64) -> StoreResult<Vec<OperatorSession>> {
        let sql = Sql::with(
            "SELECT id, created_at, last_seen_at, expires_at FROM web_sessions WHERE user_id = $1 ORDER BY id DESC",
            [user_id.into()],
        );
        let rows = self.read().await?.fetch_all(&sql).await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorSession {
                    id: r.int("id")?,
                    created_at: time::from_text(&r.text("created_at")?)?,
                    last_seen_at: time::from_text(&r.text("last_seen_at")?)?,
                    expires_at: time::from_text(&r.text("expires_at")?)?,
                })
            })
            .collect()
    }

    pub(crate) async fn end_operator_sessions(
        &self,
        user_id: i64,
        session_id: Option<i64>,
        actor: &Actor,
    ) -> StoreResult<u64> {
        let mut tx = self.write().await?;
        let name = tx
            .fetch_optional(&Sql::with("SELECT name FROM api_users WHERE id = $1", [user_id.into()]))
            .await?
            .ok_or(StoreError::NotFound)?
            .text(0)?;
        let ended = tx
            .execute(&Sql::with(
                "DELETE FROM web_sessions WHERE user_id = $1 AND (CAST($2 AS BIGINT) IS NULL OR id = $2)",
                [user_id.into(), session_id.into()],
            ))
            .await?;
        if ended > 0 {
            record_activity(
                &mut tx,
                actor,
                "ended_operator_sessions",
                json!({"operator_id": user_id, "operator_name": name, "sessions_ended": ended}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(ended)
    }

    pub(crate) async fn set_operator_role(&self, user_id: i64, role: Role, actor: &Actor) -> StoreResult<ApiUser> {
        let mut tx = self.write().await?;
        let lock = tx.dialect().for_update();
        let before = tx
            .fetch_optional(&Sql::with(
                format!("SELECT {USER_COLUMNS} FROM api_users WHERE id = $1{lock}"),
                [user_id.into()],
            ))
            .await?
            .ok_or(StoreError::NotFound)?;
        let before = rows::api_user(&before)?;
        let after = tx
            .fetch_one(&Sql::with(
                format!("UPDATE api_users SET role = $1 WHERE id = $2 RETURNING {USER_COLUMNS}"),
                [role.as_str().into(), user_id.into()],
            ))
            .await?;
        let after = rows::api_user(&after)?;
        if before.role != role {
            record_activity(
                &mut tx,
                actor,
                "changed_operator_role",
                json!({"operator_id": user_id, "operator_name": after.name, "from": before.role.as_str(),
                       "to": role.as_str(), "cause": "an admin"}),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(after)
    }
}
