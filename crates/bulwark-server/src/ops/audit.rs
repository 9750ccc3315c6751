//! An org's journal entries for its auditors, each with its `seq` so that inclusion proofs
//! can be fetched from the public proof endpoints.
//!
//! Entries are found by scanning forward from `from` (bounded per request; the answer says
//! where to continue). An index by org would make sparse orgs cheaper; it is not built yet.

use bulwark_authz::Permission;
use bulwark_core::{Name, Scope};
use bulwark_ledger::entry::Entry;

use super::Request;
use crate::AppState;
use crate::error::Error;

/// Entries examined per request at most.
const SCAN_BUDGET: u64 = 65_536;
const CHUNK: u64 = 1024;

/// One page of an org's entries.
#[derive(Debug)]
pub struct EntryPage {
    /// The entries, in journal order.
    pub entries: Vec<Entry>,
    /// Where to continue scanning, if the journal goes on.
    pub next_from: Option<u64>,
    /// The journal's size when the scan began.
    pub tree_size: u64,
}

/// Up to `limit` entries of `org` from `from` on (scanning at most [`SCAN_BUDGET`]
/// entries): `read_audit` on the org; the org must exist.
pub async fn entries(
    state: &AppState,
    req: &Request<'_>,
    org: &Name,
    from: Option<u64>,
    limit: usize,
) -> Result<EntryPage, Error> {
    let scope = Scope::Org(org.clone());
    req.authorize(state, Permission::ReadAudit, &scope).await?;
    if !state.directory.read().exists(&scope) {
        return Err(Error::not_found(&scope));
    }
    let size = state.journal.ledger.size();
    let start = from.unwrap_or(0).min(size);
    let end = start.saturating_add(SCAN_BUDGET).min(size);
    let ledger = state.journal.ledger.clone();
    let want = org.to_string();
    let (found, next) = tokio::task::spawn_blocking(move || {
        let mut found: Vec<Entry> = Vec::new();
        let mut at = start;
        while at < end && found.len() < limit {
            let to = (at + CHUNK).min(end);
            for stored in ledger.read_entries(at, to)? {
                at = stored.seq + 1;
                if let Ok(e) = Entry::from_canonical(&stored.body)
                    && e.org.as_deref() == Some(want.as_str())
                {
                    found.push(e);
                    if found.len() == limit {
                        break;
                    }
                }
            }
        }
        Ok::<_, bulwark_ledger::journal::StoreError>((found, at))
    })
    .await
    .map_err(Error::internal)?
    .map_err(Error::from)?;
    Ok(EntryPage {
        entries: found,
        next_from: (next < size).then_some(next),
        tree_size: size,
    })
}
