//! `audit`: the log's rows as text, CSV or JSON, read a page at a time so
//! that a large log is written out without being held in memory.

use std::io::Write;
use std::sync::Arc;

use countersign_core::text::printable;
use countersign_server::store::{csv_field, AuditEntry, AuditExport, AuditFilter, Store};
use serde::ser::{SerializeSeq, Serializer};

use crate::Format;

/// Writes the rows `filter` selects, oldest first, to standard output.
pub fn print(store: Arc<Store>, filter: &AuditFilter, format: Format) -> anyhow::Result<()> {
    let mut failed = None;
    let rows = AuditExport::new(store, filter)?.map_while(|r| r.map_err(|e| failed = Some(e)).ok());
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match format {
        Format::Json => {
            let pretty = serde_json::ser::PrettyFormatter::new();
            let mut json = serde_json::Serializer::with_formatter(&mut out, pretty);
            let mut list = json.serialize_seq(None)?;
            for r in rows {
                list.serialize_element(&r)?;
            }
            // A list cut short is left unclosed, so that nothing reads it
            // as the whole log.
            if failed.is_none() {
                list.end()?;
            }
        }
        Format::Csv => {
            writeln!(
                out,
                "seq,at,actor,action,target,ip,outcome,detail,hash,request_id"
            )?;
            for r in rows {
                writeln!(out, "{}", csv_line(&r))?;
            }
        }
        Format::Text => {
            for r in rows {
                writeln!(
                    out,
                    "{:>6} {} {:<14} {:<22} {:<16} {:<10} {}",
                    r.seq,
                    r.at,
                    printable(&r.actor),
                    printable(&r.action),
                    printable(&r.target),
                    printable(&r.outcome),
                    printable(&r.detail)
                )?;
            }
        }
    }
    out.flush()?;
    match failed {
        Some(e) => {
            Err(anyhow::Error::from(e).context("the audit log could not be read to the end"))
        }
        None => Ok(()),
    }
}

/// One row as a line of the command's CSV.
fn csv_line(r: &AuditEntry) -> String {
    let cols = [
        &r.actor,
        &r.action,
        &r.target,
        &r.ip,
        &r.outcome,
        &r.detail,
        &r.hash,
        &r.request_id,
    ]
    .map(|c| csv_field(c));
    format!("{},{},{}", r.seq, r.at, cols.join(","))
}
