//! What every handler is given: the server's settings and its state. A module of its
//! own, below the surfaces (SCIM, JSON API, web) that use it and the router (`app`)
//! that assembles them.

use std::sync::Arc;
use std::time::Duration;

use custodian_domain::{
    Connections, Directory, HostInventory, Labels, Operations, Operators, Store, SyncRuns, WebSessions, Webhooks,
};

use crate::recorder::RequestRecorder;

/// Settings of a running server that handlers need.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// The URL at which clients reach Custodian, when a proxy stands in front of it.
    pub public_url: Option<String>,
    /// How long a failed web sign-in takes, whatever failed (no hint by timing).
    pub sign_in_failure_delay: Duration,
    /// Where offboarding events are POSTed; without it they are recorded, not sent.
    pub offboarding_webhook: Option<crate::webhooks::WebhookConfig>,
    /// Rate limits, timeouts and the cap on requests in flight.
    pub limits: crate::limits::Limits,
    /// Custodian terminates TLS itself (`serve --tls-cert-file`).
    pub serves_https: bool,
    /// How directory syncs (Google Workspace) are scheduled and bounded.
    pub directory_sync: crate::directory_sync::SyncSettings,
    /// Operators' single sign-on, when an OpenID provider is configured.
    pub oidc: Option<Arc<crate::oidc::OidcProvider>>,
    /// Whether operators other than admins may sign in with a password.
    pub password_sign_in: bool,
}

impl AppConfig {
    /// Whether clients reach Custodian over https: as the public URL says when there is
    /// one, else as Custodian serves. Decides HSTS and `Secure` cookies.
    pub fn is_https(&self) -> bool {
        match &self.public_url {
            Some(url) => url.starts_with("https://"),
            None => self.serves_https,
        }
    }

    /// `scheme://host` of a request when no public URL is configured: over Custodian's
    /// own TLS the scheme is known, and no proxy's header can change it; otherwise a
    /// proxy's `X-Forwarded-Proto` (http or https) says it.
    pub fn request_origin(&self, headers: &axum::http::HeaderMap) -> String {
        let host = headers.get(axum::http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let proto = if self.serves_https {
            "https"
        } else {
            headers
                .get("x-forwarded-proto")
                .and_then(|h| h.to_str().ok())
                .filter(|p| *p == "https" || *p == "http")
                .unwrap_or("http")
        };
        format!("{proto}://{host}")
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            public_url: None,
            sign_in_failure_delay: Duration::from_secs(1),
            offboarding_webhook: None,
            limits: crate::limits::Limits::default(),
            serves_https: false,
            directory_sync: crate::directory_sync::SyncSettings::default(),
            oidc: None,
            password_sign_in: true,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    /// Reached through the accessors below, each of which names the one part of the
    /// store a handler uses.
    store: Arc<dyn Store>,
    /// Which operator a token belongs to, remembered for a few seconds.
    pub tokens: Arc<crate::auth::TokenCache>,
    /// When each operator last used Custodian, written at most once a minute.
    pub operator_use: Arc<crate::auth::OperatorUse>,
    pub recorder: RequestRecorder,
    pub config: Arc<AppConfig>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Starts directory sync runs (the scheduler is started by `App`).
    pub sync: Arc<crate::directory_sync::DirectorySync>,
}

impl AppState {
    pub fn operations(&self) -> &dyn Operations {
        &*self.store
    }
    pub fn operators(&self) -> &dyn Operators {
        &*self.store
    }
    pub fn directory(&self) -> &dyn Directory {
        &*self.store
    }
    pub fn connections(&self) -> &dyn Connections {
        &*self.store
    }
    pub fn hosts(&self) -> &dyn HostInventory {
        &*self.store
    }
    pub fn labels(&self) -> &dyn Labels {
        &*self.store
    }
    pub fn webhooks(&self) -> &dyn Webhooks {
        &*self.store
    }
    pub fn web_sessions(&self) -> &dyn WebSessions {
        &*self.store
    }
    pub fn sync_runs(&self) -> &dyn SyncRuns {
        &*self.store
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: AppConfig, recorder: RequestRecorder) -> Self {
        let tokens = Arc::new(crate::auth::TokenCache::new(store.is_shared()));
        let metrics: Arc<crate::metrics::Metrics> = Arc::default();
        let sync =
            crate::directory_sync::DirectorySync::new(store.clone(), config.directory_sync.clone(), metrics.clone());
        AppState { store, tokens, operator_use: Arc::default(), recorder, config: Arc::new(config), metrics, sync }
    }
}
