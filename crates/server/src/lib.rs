//! Custodian's server: the HTTP surfaces (SCIM, JSON API), authentication and the CLI.

pub mod api;
pub mod app;
pub mod auth;
pub mod cli;
pub mod import;
pub mod metrics;
pub mod recorder;
pub mod scim;
pub mod webhooks;

pub use app::{App, AppConfig};
