//! Custodian's server: the HTTP surfaces (SCIM, JSON API), authentication, the web interface and the CLI.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod directory_sync;
pub mod errors;
pub mod idp_connections;
pub mod import;
pub mod input;
pub mod limits;
pub mod metrics;
pub mod oidc;
pub mod passwords;
pub mod query;
pub mod recorder;
pub mod request_line;
pub mod routes;
pub mod scim;
pub mod state;
pub mod surfaces;
pub mod tls;
pub mod web;
pub mod webhooks;

pub use app::{App, AppConfig};
