//! What Custodian knows, independent of HTTP and SQL: the people and groups an identity
//! provider sends, the operators who use Custodian and their roles, and the storage
//! traits that the store crate implements.

pub mod access;
pub mod columns;
pub mod connections;
pub mod hosts;
pub mod idp;
pub mod labels;
pub mod overview;
/// The text limits of every surface, in bytes of UTF-8 (defined beside the SCIM schemas,
/// which carry them per attribute).
pub use custodian_scim::limits;
pub mod render;
pub mod store;
pub mod sync;
pub mod web;
pub mod webhooks;

pub use access::{ApiUser, NewApiUser, Role, TokenDigest};
pub use connections::{ConnectionId, Credential, Scope};
pub use idp::{ListPage, ListQuery, ScimRecord, ScimRequestEntry, SortOrder, StoredMember};
pub use store::{
    Connections, Directory, HostInventory, Labels, Operations, Operators, PoolStats, Precondition, Store, StoreError,
    StoreResult, SyncRuns, WebSessions, Webhooks, Written,
};
