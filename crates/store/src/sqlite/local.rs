//! What only the SQLite store holds beside its pools.

use super::group_commit::Writer;

pub(crate) struct Local {
    /// SCIM writes and host upserts, committed in groups by the one writer.
    pub(crate) writer: Writer,
    /// A shared lock on `<db>.in-use-lock` for as long as the store is open, so that
    /// `custodian restore` (which needs it exclusive) never swaps the file under us.
    _in_use: Option<std::fs::File>,
}

impl Local {
    pub(super) fn new(writer: Writer, in_use: Option<std::fs::File>) -> Self {
        Local { writer, _in_use: in_use }
    }
}
