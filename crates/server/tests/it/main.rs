//! Custodian's integration tests: one binary, each test against a real listener on
//! 127.0.0.1:0 with its own fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

mod access_control;
mod automatic_labels;
mod backup;
mod cli;
mod connections;
mod crash;
mod custom_attributes;
mod declared_schemas;
mod entra;
mod fake_oidc;
mod google_workspace;
mod host_mapping;
mod hostile;
mod hosts_api;
mod hosts_import;
mod idp_filters;
mod label_pages;
mod labels;
mod multi_instance;
mod offboarding;
mod okta;
mod openapi;
mod operations;
mod operators;
mod overload;
mod overview;
mod render;
mod scim_auth;
mod scim_protocol;
mod scim_status;
mod secrets_in_logs;
mod sso;
mod tls;
mod web;
