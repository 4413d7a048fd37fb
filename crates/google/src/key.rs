//! The service account's key file, as Google issues it (JSON). Its private key is a
//! secret: it is never printed (`Debug` leaves it out) and only its public summary is
//! ever answered back.

use serde::{Deserialize, Serialize};

use crate::error::GoogleError;

#[derive(Clone, Deserialize, Serialize)]
pub struct ServiceAccountKey {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: String,
    pub client_email: String,
    #[serde(default)]
    pub client_id: String,
    pub token_uri: String,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("private_key_id", &self.private_key_id)
            .field("private_key", &"[secret]")
            .finish_non_exhaustive()
    }
}

/// What may be shown of a key: who it is, and which key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySummary {
    pub client_email: String,
    pub private_key_id: String,
}

impl ServiceAccountKey {
    /// Reads a key file's JSON and checks it can sign: the errors name the field, never
    /// its value.
    pub fn parse(value: &serde_json::Value) -> Result<Self, GoogleError> {
        let key: ServiceAccountKey = serde_json::from_value(value.clone()).map_err(|e| {
            // serde's message names the missing field or the wrong type, not the value.
            GoogleError::InvalidKey(format!("not a service account key file: {}", without_values(&e.to_string())))
        })?;
        key.check()?;
        Ok(key)
    }

    fn check(&self) -> Result<(), GoogleError> {
        if self.kind != "service_account" {
            return Err(GoogleError::InvalidKey(
                "its \"type\" must be \"service_account\": download a key of the service account (Keys › Add key › JSON)"
                    .into(),
            ));
        }
        if !self.client_email.contains('@') {
            return Err(GoogleError::InvalidKey("its \"client_email\" is not an email address".into()));
        }
        if !(self.token_uri.starts_with("https://") || self.token_uri.starts_with("http://")) {
            return Err(GoogleError::InvalidKey("its \"token_uri\" is not an http(s) URL".into()));
        }
        signing_key(self)?;
        Ok(())
    }

    pub fn summary(&self) -> KeySummary {
        KeySummary { client_email: self.client_email.clone(), private_key_id: self.private_key_id.clone() }
    }
}

/// The key's private half, for RS256 signatures.
pub fn signing_key(key: &ServiceAccountKey) -> Result<jsonwebtoken::EncodingKey, GoogleError> {
    jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes())
        .map_err(|_| GoogleError::InvalidKey("its \"private_key\" is not an RSA private key in PEM".into()))
}

/// serde_json's error text without any quoted input it may echo (`invalid type: string
/// "...", expected ...`).
fn without_values(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match c {
            '"' if !quoted => {
                quoted = true;
                out.push_str("\"…");
            }
            '"' => {
                quoted = false;
                out.push('"');
            }
            _ if quoted => {}
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_never_the_value() {
        let e =
            ServiceAccountKey::parse(&serde_json::json!({"type": "service_account", "private_key": 5})).unwrap_err();
        assert!(e.to_string().contains("not a service account key file"), "{e}");
        let e = ServiceAccountKey::parse(&serde_json::json!({
            "type": "authorized_user", "private_key_id": "k1", "private_key": "SECRET-PEM",
            "client_email": "sync@project.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("\"type\" must be \"service_account\""), "{e}");
        let e = ServiceAccountKey::parse(&serde_json::json!({
            "type": "service_account", "private_key_id": "k1", "private_key": "SECRET-PEM",
            "client_email": "sync@project.iam.gserviceaccount.com", "token_uri": "https://oauth2.googleapis.com/token"
        }))
        .unwrap_err();
        assert!(e.to_string().contains("private_key") && !e.to_string().contains("SECRET"), "{e}");
        assert_eq!(
            without_values("invalid type: string \"SECRET\", expected u8"),
            "invalid type: string \"…\", expected u8"
        );
    }

    #[test]
    fn debug_leaves_the_private_key_out() {
        let key = ServiceAccountKey {
            kind: "service_account".into(),
            project_id: "p".into(),
            private_key_id: "k1".into(),
            private_key: "-----BEGIN PRIVATE KEY-----SECRET".into(),
            client_email: "sync@p.iam.gserviceaccount.com".into(),
            client_id: "1".into(),
            token_uri: "https://oauth2.googleapis.com/token".into(),
        };
        let shown = format!("{key:?}");
        assert!(!shown.contains("SECRET") && shown.contains("k1"), "{shown}");
    }
}
