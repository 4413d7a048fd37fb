//! Reading a Google Workspace directory for Custodian's `google_workspace` connections.
//!
//! Google sends no SCIM to custom applications, so Custodian reads the directory itself:
//! a service account with domain-wide delegation signs an RS256 JWT ([`token`]), trades
//! it for an access token, and reads every user, group and member through the Admin SDK
//! Directory API ([`directory`]), page by page, with retries where Google asks for them
//! and clear configuration errors where an admin must act. [`snapshot`] assembles one
//! complete, consistent read, and [`plan`] the difference from what a connection holds;
//! applying it is the store's job, in one transaction.

pub mod directory;
pub mod error;
#[cfg(feature = "fake")]
pub mod fake;
pub mod key;
pub mod model;
pub mod plan;
pub mod retry;
pub mod snapshot;
pub mod token;

pub use directory::{DirectoryClient, DirectoryConfig};
pub use error::GoogleError;
pub use key::ServiceAccountKey;
pub use snapshot::{Snapshot, read_snapshot};

/// The read-only scopes a run needs, exactly those an admin grants under domain-wide
/// delegation.
pub const SCOPES: [&str; 3] = [
    "https://www.googleapis.com/auth/admin.directory.user.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.readonly",
    "https://www.googleapis.com/auth/admin.directory.group.member.readonly",
];

/// Where the Directory API is, unless a connection says otherwise (tests, proxies).
pub const DEFAULT_API_BASE_URL: &str = "https://admin.googleapis.com";
