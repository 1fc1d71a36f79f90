//! The audit log for the help desk: filters, CSV export, a live tail.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use countersign_core::percent_encode;
use countersign_core::time::format_utc;
use futures_util::{stream, StreamExt};
use maud::{html, Markup};

use super::StaffSession;
use super::{console, may_still_watch};
use crate::http::pages::{AppState, PageResult};
use crate::http::refusals::own_refusal;
use crate::store::{csv_field, AuditEntry, AuditExport, AuditFilter, UserRow};
use crate::{now, Error, Server};

/// Rows the page shows (and a live tail sends at once), newest first.
const SHOWN: usize = 200;

/// The audit page's query: its filters, all optional.
#[derive(Default, serde::Deserialize)]
pub(super) struct AuditQuery {
    #[serde(default)]
    user: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    /// `csv` for the export.
    #[serde(default)]
    format: String,
    /// The live tail: rows after this sequence number.
    #[serde(default)]
    after: String,
}

impl AuditQuery {
    /// The filters by name, as the form and its links spell them.
    fn fields(&self) -> [(&'static str, &str); 6] {
        [
            ("user", &self.user),
            ("actor", &self.actor),
            ("action", &self.action),
            ("outcome", &self.outcome),
            ("since", &self.since),
            ("until", &self.until),
        ]
    }
}

/// The filters, or what is wrong with one of them. A username in any
/// case, or as an address at the organisation's domain, stands for the
/// account's own spelling, as at sign-in; a time is Unix seconds.
/// (Outer error: the store failed, not the filter.)
fn filter_of(s: &Server, q: &AuditQuery) -> Result<Result<AuditFilter, String>, Error> {
    if let Err(why) = readable(q) {
        return Ok(Err(why));
    }
    let text = |v: &str| Some(v.trim().to_string()).filter(|v| !v.is_empty());
    let name = |label: &str, v: &str| -> Result<Result<Option<String>, String>, Error> {
        let Some(v) = text(v) else {
            return Ok(Ok(None));
        };
        let v = super::without_domain(s, &v);
        if v.is_empty() {
            return Ok(Err(format!("{label}: give a username before the @.")));
        }
        Ok(Ok(Some(
            s.store
                .user_by_name(v)?
                .map_or(v.to_string(), |u| u.username),
        )))
    };
    let (user, actor) = (name("User", &q.user)?, name("Actor", &q.actor)?);
    // Times are kept as the database's signed 64-bit integers (digits
    // only: never negative).
    let time = |label: &str, v: &str| {
        number::<i64>(label, v, "a time")
            .map(|t| t.map(|t| t.unsigned_abs()))
            .map_err(|why| format!("{why} Give Unix seconds, digits only (now is {}).", now()))
    };
    Ok((|| {
        Ok(AuditFilter {
            user: user?,
            actor: actor?,
            action: text(&q.action),
            outcome: text(&q.outcome),
            since: time("Since", &q.since)?,
            until: time("Until", &q.until)?,
            ..AuditFilter::default()
        })
    })())
}

/// What no filter may hold: a control or text-direction character (no
/// row holds one), or a format this page does not give.
fn readable(q: &AuditQuery) -> Result<(), String> {
    for (label, v) in q.fields() {
        if countersign_core::text::first_unsafe(v).is_some() {
            return Err(format!(
                "The {label} filter holds a control or text-direction character: type it again."
            ));
        }
    }
    match q.format.as_str() {
        "" | "csv" => Ok(()),
        other => Err(format!(
            "Format: \"{}\" is not one this page gives. Leave it out for the page, or give csv.",
            shown(other)
        )),
    }
}

/// `v` as a whole number (digits only, no sign, within `T`), `None` when
/// empty; otherwise what is wrong, saying that it is not `what`.
fn number<T: std::str::FromStr>(label: &str, v: &str, what: &str) -> Result<Option<T>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    v.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| v.parse::<T>().ok())
        .flatten()
        .map(Some)
        .ok_or_else(|| format!("{label}: \"{}\" is not {what}.", shown(v)))
}

/// At most 40 characters of what was typed, to say it back.
fn shown(v: &str) -> String {
    shown_back(v).take(40).collect()
}

/// `v` without the characters never shown back (control and
/// text-direction ones).
fn shown_back(v: &str) -> impl Iterator<Item = char> + '_ {
    v.chars().filter(|&c| !countersign_core::text::is_unsafe(c))
}

pub(super) async fn page(
    State(s): AppState,
    StaffSession(_, me): StaffSession,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let mut filter = match filter_of(&s, &q)? {
        Ok(filter) => filter,
        Err(why) => return Ok(bad_filter(&s, &me, &q, &why)),
    };
    if q.format == "csv" {
        let rows = AuditExport::new(s.store.clone(), &filter)?;
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            export(s, rows),
        )
            .into_response());
    }
    // The page shows the newest rows; the export has every matching one.
    filter.newest = Some(SHOWN);
    let rows = s.store.audit_entries(&filter)?;
    let last = rows.last().map_or(0, |r| r.seq);
    let shown: Vec<&AuditEntry> = rows.iter().rev().collect();
    let query: String = q
        .fields()
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("&{k}={}", percent_encode(v)))
        .collect();
    let body = html! {
        h1 { "Audit log" }
        (filters(&q))
        p {
            a href=(format!("/helpdesk/audit?format=csv{query}")) download="audit.csv" { "Export CSV" }
            " · Newest first, at most " (SHOWN) " shown (the export has every matching row); new rows appear as they are written."
        }
        table #audit data-tail=(format!("/helpdesk/audit/events?after={last}{query}")) {
            thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Target" } th scope="col" { "Outcome" } th scope="col" { "Detail" } } }
            tbody {
                @for r in shown {
                    tr { td { (r.seq) } td { (format_utc(r.at)) } td { (r.actor) } td { (r.action) } td { (r.target) } td { (r.outcome) } td { (r.detail) } }
                }
            }
        }
    };
    Ok(console(&s, "Audit log", &me, body))
}

/// New audit rows matching the filter, as `row` events, as they are written.
pub(super) async fn events(
    State(s): AppState,
    StaffSession(viewer, _): StaffSession,
    Query(q): Query<AuditQuery>,
) -> PageResult {
    let mut filter = match filter_of(&s, &q)? {
        Ok(filter) => filter,
        // A live tail's address is the page's own: only a hand-made one
        // gets here (no page shows the text of this answer).
        Err(why) => return Ok(own_refusal(StatusCode::BAD_REQUEST, why)),
    };
    filter.after_seq = match number("After", &q.after, "a row number (digits only)") {
        Ok(after) => Some(after.unwrap_or(0)),
        Err(why) => return Ok(own_refusal(StatusCode::BAD_REQUEST, why)),
    };
    filter.newest = Some(SHOWN);
    let changes = s.audit_changes();
    let stream = stream::unfold(
        (s, filter, changes, Vec::<AuditEntry>::new()),
        move |(s, mut filter, mut changes, mut queue)| {
            let viewer = viewer.id_hash.clone();
            async move {
                loop {
                    if let Some(r) = queue.pop() {
                        let data = serde_json::json!({
                        "seq": r.seq, "at": format_utc(r.at), "actor": r.actor, "action": r.action,
                        "target": r.target, "outcome": r.outcome, "detail": r.detail,
                    })
                    .to_string();
                        return Some((
                            Ok::<_, Infallible>(Event::default().event("row").data(data)),
                            (s, filter, changes, queue),
                        ));
                    }
                    // Checked before each read of new rows (at every
                    // wake), not for each row sent.
                    if !may_still_watch(&s, &viewer) {
                        return None;
                    }
                    let Ok(mut rows) = s.store.audit_entries(&filter) else {
                        return None;
                    };
                    let Some(last) = rows.last() else {
                        // Nothing new: wait for a row (the limit covers rows
                        // written by another process).
                        changes.next(Duration::from_secs(2)).await;
                        continue;
                    };
                    filter.after_seq = Some(last.seq);
                    rows.reverse();
                    queue = rows;
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

/// The filter form, filled in as asked.
fn filters(q: &AuditQuery) -> Markup {
    let fields = q.fields();
    let field = |name: &str, label: &str| {
        // As typed, less any character refused and never shown back.
        let value: String = shown_back(
            fields
                .iter()
                .find(|(k, _)| *k == name)
                .map_or("", |(_, v)| *v),
        )
        .collect();
        html! {
            label for=(format!("f-{name}")) { (label) }
            input id=(format!("f-{name}")) type="text" name=(name) value=(value);
        }
    };
    html! {
        form.filters method="get" action="/helpdesk/audit" {
            (field("user", "User (actor or target)"))
            (field("actor", "Actor"))
            (field("action", "Action (prefix, e.g. signin.)"))
            (field("outcome", "Outcome"))
            (field("since", "Since (Unix time)"))
            (field("until", "Until (Unix time)"))
            button type="submit" { "Filter" }
        }
    }
}

/// The page for a filter that could not be read: what was wrong, the
/// form to mend it, and no rows (400).
fn bad_filter(s: &Server, me: &UserRow, q: &AuditQuery, why: &str) -> Response {
    let body = html! {
        h1 { "Audit log" }
        p.error role="alert" { (why) }
        (filters(q))
    };
    (StatusCode::BAD_REQUEST, console(s, "Audit log", me, body)).into_response()
}

/// Every row `filter` selects, as CSV, read a page at a time off the
/// async workers and sent as it is read (see [`AuditExport`]). A failed
/// read ends the body short, which the browser shows as a failed
/// download.
fn export(s: std::sync::Arc<Server>, rows: AuditExport) -> axum::body::Body {
    let head = String::from("seq,at,actor,action,target,ip,outcome,detail\n");
    // The request's span, for the log line of an export that stops short
    // (the body is sent after the handler has returned).
    let span = tracing::Span::current();
    let pages = stream::unfold(Some((s, rows)), move |state| {
        let span = span.clone();
        async move {
            let (s, mut rows) = state?;
            let read = s
                .off_workers(move |_| {
                    let page = rows.next_page().map(|page| page.map(|p| csv_rows(&p)));
                    Ok((rows, page))
                })
                .await;
            let stopped = |e: &dyn std::fmt::Display| {
                span.in_scope(|| tracing::error!(error = %e, "an audit export stopped short"));
                std::io::Error::other("the audit log could not be read")
            };
            match read {
                Ok((rows, Ok(Some(csv)))) => Some((Ok(csv), Some((s, rows)))),
                Ok((_, Ok(None))) => None,
                Ok((_, Err(e))) => Some((Err(stopped(&e)), None)),
                Err(e) => Some((Err(stopped(&e)), None)),
            }
        }
    });
    let head = stream::once(async { Ok::<_, std::io::Error>(head) });
    axum::body::Body::from_stream(head.chain(pages))
}

/// Audit rows as lines of CSV.
fn csv_rows(rows: &[AuditEntry]) -> String {
    let mut out = String::new();
    for r in rows {
        let cols =
            [&r.actor, &r.action, &r.target, &r.ip, &r.outcome, &r.detail].map(|c| csv_field(c));
        out.push_str(&format!(
            "{},{},{}\n",
            r.seq,
            csv_field(&format_utc(r.at)),
            cols.join(",")
        ));
    }
    out
}
