//! The SCIM 2.0 protocol (RFC 7643, RFC 7644), pure: no I/O, no async.

pub mod custom;
pub mod declared;
pub mod error;
pub mod filter;
pub mod limits;
pub mod patch;
pub mod path;
pub mod projection;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimResult, ScimType};
