//! An export of the audit log, read a page at a time: a large log's
//! export holds one page in memory, not the log (a user's rows are read
//! at once: see [`AuditExport::new`]).

use std::sync::Arc;

use super::{AuditEntry, AuditFilter, Store, StoreError};

/// Rows an export reads at a time.
pub const EXPORT_PAGE: usize = 1_000;

/// Every row a filter selects, oldest first, up to the row that was the
/// last as the export began (rows written meanwhile are left for the
/// next one).
pub struct AuditExport {
    store: Arc<Store>,
    filter: AuditFilter,
    page: std::vec::IntoIter<AuditEntry>,
    done: bool,
}

impl AuditExport {
    /// Begins an export of the rows `filter` selects.
    pub fn new(store: Arc<Store>, filter: &AuditFilter) -> Result<Self, StoreError> {
        // A user's rows in one read: paged, `actor = ? OR target = ?` would
        // read and sort all of them for every page, and an index on
        // `(target, seq)` that serves them in order costs every audit
        // row's write about a quarter more (docs/PERFORMANCE.md).
        let page_size = filter.user.is_none().then_some(EXPORT_PAGE);
        let last = store.last_audit_seq()?;
        let filter = AuditFilter {
            after_seq: Some(filter.after_seq.unwrap_or(0)),
            through_seq: Some(filter.through_seq.map_or(last, |given| given.min(last))),
            newest: None,
            oldest: page_size,
            ..filter.clone()
        };
        Ok(AuditExport {
            store,
            filter,
            page: Vec::new().into_iter(),
            done: false,
        })
    }

    /// The next page of rows (at most [`EXPORT_PAGE`]); `None` once all
    /// have been read. A read that fails ends the export.
    pub fn next_page(&mut self) -> Result<Option<Vec<AuditEntry>>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let rows = self.store.audit_entries(&self.filter);
        let rows = rows.inspect_err(|_| self.done = true)?;
        self.done = self.filter.oldest.is_none_or(|page| rows.len() < page);
        self.filter.after_seq = rows.last().map(|r| r.seq).or(self.filter.after_seq);
        Ok(Some(rows).filter(|rows| !rows.is_empty()))
    }
}

/// Row by row, for a writer that takes one at a time (the command line).
impl Iterator for AuditExport {
    type Item = Result<AuditEntry, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(row) = self.page.next() {
            return Some(Ok(row));
        }
        match self.next_page() {
            Ok(Some(rows)) => {
                self.page = rows.into_iter();
                self.page.next().map(Ok)
            }
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}
