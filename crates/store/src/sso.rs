//! Operators who sign in with the company's OpenID provider: their creation and update
//! at each sign-in, the sign-ins under way, and their offboarding when the IdP
//! deactivates or deletes the matching directory user (in that SCIM change's
//! transaction).

use custodian_domain::hosts::{Actor, normalize_identity};
use custodian_domain::web::{PendingSsoLogin, SsoIdentity, SsoSignIn};
use custodian_domain::webhooks::OffboardingEvent;
use custodian_domain::{ApiUser, StoreError, StoreResult, TokenDigest};
use serde_json::{Value, json};

use crate::common::{JOINED_USER_COLUMNS, USER_COLUMNS, identities_of_user};
use crate::db::{Conn, Db, Sql};
use crate::error::{db_err, is_unique_violation};
use crate::linking::record_activity;
use crate::rows;
use crate::time;

/// A name no other operator has: the claim's name, else with the email, else with the
/// subject (operator names are unique, and two people may share a name).
async fn free_name(tx: &mut Conn, identity: &SsoIdentity, own_id: Option<i64>) -> StoreResult<String> {
    let base = if identity.name.trim().is_empty() {
        identity.email.clone().unwrap_or_else(|| identity.subject.clone())
    } else {
        identity.name.trim().to_string()
    };
    let mut choices = vec![base.clone()];
    if let Some(email) = &identity.email {
        choices.push(format!("{base} ({email})"));
    }
    choices.push(format!("{base} ({})", identity.subject));
    for name in &choices {
        let taken = tx
            .fetch_optional(&Sql::with("SELECT id FROM api_users WHERE name_norm = $1", [name.to_lowercase().into()]))
            .await?
            .map(|r| r.int(0))
            .transpose()?;
        if taken.is_none() || taken == own_id {
            return Ok(name.clone());
        }
    }
    Err(StoreError::Conflict("every name for this operator is taken".into()))
}

impl Db {
    /// Creates or updates the operator of an SSO sign-in, in one transaction with the
    /// activities it records; refuses one the IdP deactivated.
    pub(crate) async fn sso_sign_in(&self, identity: &SsoIdentity) -> StoreResult<SsoSignIn> {
        let now = time::to_text(time::now());
        let email_norm = identity.email.as_deref().map(normalize_identity);
        let mut tx = self.write().await?;
        let lock = tx.dialect().for_update();
        let existing = tx
            .fetch_optional(&Sql::with(
                format!(
                    "SELECT {JOINED_USER_COLUMNS}, u.sso_blocked_reason FROM api_users u \
                     WHERE u.sso_issuer = $1 AND u.sso_subject = $2{lock}"
                ),
                [(&identity.issuer).into(), (&identity.subject).into()],
            ))
            .await?;
        let outcome = match existing {
            Some(row) => {
                let user = rows::api_user(&row)?;
                if let Some(reason) = row.opt_text("sso_blocked_reason")? {
                    record_activity(
                        &mut tx,
                        &Actor::of(&user),
                        "sso_sign_in_refused",
                        json!({"operator_id": user.id, "operator_name": user.name, "reason": reason}),
                    )
                    .await?;
                    tx.commit().await?;
                    return Ok(SsoSignIn::Blocked { reason });
                }
                let name = free_name(&mut tx, identity, Some(user.id)).await?;
                let updated = tx
                    .fetch_one(&Sql::with(
                        format!(
                            "UPDATE api_users SET name = $1, name_norm = $2, email = $3, sso_email_norm = $4, role = $5 \
                             WHERE id = $6 RETURNING {USER_COLUMNS}"
                        ),
                        [
                            (&name).into(),
                            name.to_lowercase().into(),
                            (&identity.email).into(),
                            email_norm.into(),
                            identity.role.as_str().into(),
                            user.id.into(),
                        ],
                    ))
                    .await?;
                let updated = rows::api_user(&updated)?;
                let previous_role = (user.role != identity.role).then_some(user.role);
                SsoSignIn::Allowed { user: updated, created: false, previous_role }
            }
            None => {
                let name = free_name(&mut tx, identity, None).await?;
                let insert = Sql::with(
                    format!(
                        "INSERT INTO api_users (name, name_norm, email, role, api_only, created_at, \
                         sso_issuer, sso_subject, sso_email_norm) VALUES ($1, $2, $3, $4, 0, $5, $6, $7, $8) \
                         RETURNING {USER_COLUMNS}"
                    ),
                    [
                        (&name).into(),
                        name.to_lowercase().into(),
                        (&identity.email).into(),
                        identity.role.as_str().into(),
                        (&now).into(),
                        (&identity.issuer).into(),
                        (&identity.subject).into(),
                        email_norm.into(),
                    ],
                );
                let row = match tx.try_fetch_optional(&insert).await {
                    Ok(row) => row.ok_or_else(|| db_err(sqlx::Error::RowNotFound))?,
                    // Another instance created it at the same moment: the caller tries again.
                    Err(e) if is_unique_violation(&e) => {
                        return Err(StoreError::Contention("a concurrent first sign-in".into()));
                    }
                    Err(e) => return Err(db_err(e)),
                };
                SsoSignIn::Allowed { user: rows::api_user(&row)?, created: true, previous_role: None }
            }
        };
        if let SsoSignIn::Allowed { user, created, previous_role } = &outcome {
            let actor = Actor::of(user);
            record_activity(
                &mut tx,
                &actor,
                "sso_signed_in",
                json!({"operator_id": user.id, "operator_name": user.name, "issuer": identity.issuer,
                       "role": user.role.as_str(), "created": created}),
            )
            .await?;
            if let Some(from) = previous_role {
                record_activity(
                    &mut tx,
                    &actor,
                    "changed_operator_role",
                    json!({"operator_id": user.id, "operator_name": user.name, "from": from.as_str(),
                           "to": user.role.as_str(), "cause": "the groups of the SSO sign-in"}),
                )
                .await?;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Stores a sign-in sent to the provider; expired ones are swept at the same time.
    pub(crate) async fn create_sso_login(&self, login: PendingSsoLogin) -> StoreResult<()> {
        let now = time::to_text(time::now());
        let mut tx = self.write().await?;
        tx.execute(&Sql::with("DELETE FROM oidc_logins WHERE expires_at <= $1", [now.into()])).await?;
        tx.execute(&Sql::with(
            "INSERT INTO oidc_logins (state_digest, browser_digest, nonce, pkce_verifier, redirect_uri, next_path, \
             expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                login.state_digest.0.to_vec().into(),
                login.browser_digest.0.to_vec().into(),
                login.nonce.into(),
                login.pkce_verifier.into(),
                login.redirect_uri.into(),
                login.next_path.into(),
                time::to_text(login.expires_at).into(),
            ],
        ))
        .await?;
        tx.commit().await
    }

    /// Takes (deletes and returns) the sign-in of this `state`: a second callback with
    /// the same state finds nothing. Expired or not: the caller checks.
    pub(crate) async fn take_sso_login(&self, state_digest: TokenDigest) -> StoreResult<Option<PendingSsoLogin>> {
        let mut tx = self.write().await?;
        let row = tx
            .fetch_optional(&Sql::with(
                "DELETE FROM oidc_logins WHERE state_digest = $1 \
                 RETURNING browser_digest, nonce, pkce_verifier, redirect_uri, next_path, expires_at",
                [state_digest.0.to_vec().into()],
            ))
            .await?;
        tx.commit().await?;
        let Some(row) = row else { return Ok(None) };
        let browser = row.bytes("browser_digest")?;
        let browser_digest = TokenDigest(
            browser.as_slice().try_into().map_err(|_| StoreError::Database("oidc_logins.browser_digest".into()))?,
        );
        Ok(Some(PendingSsoLogin {
            state_digest,
            browser_digest,
            nonce: row.text("nonce")?,
            pkce_verifier: row.text("pkce_verifier")?,
            redirect_uri: row.text("redirect_uri")?,
            next_path: row.text("next_path")?,
            expires_at: time::from_text(&row.text("expires_at")?)?,
        }))
    }
}

/// In the transaction of a SCIM or directory change to a user that deactivates, deletes
/// or reactivates it: the SSO operators whose verified email is one of the user's
/// (`userName` or an email) are blocked, their sessions ended, or unblocked.
pub(crate) async fn follow_offboarding(
    tx: &mut Conn,
    event: OffboardingEvent,
    user_seq: i64,
    before: Option<&Value>,
    after: Option<&Value>,
) -> StoreResult<()> {
    let emails = match after.or(before) {
        Some(doc) => identities_of_user(doc),
        None => return Ok(()),
    };
    if emails.is_empty() {
        return Ok(());
    }
    let blocking = !matches!(event, OffboardingEvent::UserReactivated);
    let connection = crate::connections::connection_name_of(tx, user_seq).await?;
    let what = match event {
        OffboardingEvent::UserDeactivated => "deactivated",
        OffboardingEvent::UserDeleted => "deleted",
        OffboardingEvent::UserReactivated => "reactivated",
    };
    let reason = format!("the IdP {what} the matching user in the connection '{connection}'");
    let mut sql = if blocking {
        Sql::with(
            "UPDATE api_users SET sso_blocked_at = $1, sso_blocked_reason = $2 \
             WHERE sso_issuer IS NOT NULL AND sso_email_norm IN (",
            [time::to_text(time::now()).into(), reason.as_str().into()],
        )
    } else {
        Sql::new(
            "UPDATE api_users SET sso_blocked_at = NULL, sso_blocked_reason = NULL \
             WHERE sso_blocked_at IS NOT NULL AND sso_email_norm IN (",
        )
    };
    let mut sep = sql.separated(", ");
    for e in &emails {
        sep.push_bind(e.as_str());
    }
    sql.push(format!(") RETURNING {USER_COLUMNS}"));
    let operators: Vec<ApiUser> = tx.fetch_all(&sql).await?.iter().map(rows::api_user).collect::<StoreResult<_>>()?;
    for operator in &operators {
        let ended = if blocking {
            tx.execute(&Sql::with("DELETE FROM web_sessions WHERE user_id = $1", [operator.id.into()])).await?
        } else {
            0
        };
        let kind = if blocking { "sso_operator_offboarded" } else { "sso_operator_reinstated" };
        record_activity(
            tx,
            &Actor { id: None, name: format!("IdP connection {connection}") },
            kind,
            json!({"operator_id": operator.id, "operator_name": operator.name, "reason": reason,
                   "sessions_ended": ended, "connection": connection}),
        )
        .await?;
        tracing::info!(operator_id = operator.id, event = what, "an SSO operator follows its IdP user");
    }
    Ok(())
}
