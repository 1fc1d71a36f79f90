//! A challenge's timeline: the page, and its live form as server-sent
//! events.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::stream;
use maud::{html, Markup};

use super::StaffSession;
use super::{at_ms, console, may_still_watch};
use crate::domain::helpdesk::Timeline;
use crate::http::pages::{AppState, PageResult};
use crate::now;

fn timeline_body(t: &Timeline) -> Markup {
    html! {
        h1 { "Challenge timeline" }
        p.account { (t.username) " · " (t.application) " · " (t.kind.replace('_', " ")) }
        @if t.open {
            p { "Read this number to the officer; they type it into the app:" }
        } @else {
            p { "The number on the sign-in page was:" }
        }
        p.number { (t.number) }
        ol.timeline #timeline data-events=(format!("/helpdesk/challenges/{}/events", t.id)) aria-live="polite" {
            @for step in &t.steps {
                li data-step=(step.step) class=(if step.at_ms.is_some() { "done" } else { "missing" }) {
                    strong { (step.step) } " "
                    span.when { @if let Some(ms) = step.at_ms { (at_ms(ms)) } @else { "—" } } " "
                    span.detail { (step.detail) }
                }
            }
        }
        p #timeline-status role="status" { "Status: " (t.status.replace('_', " ")) }
        p { a href=(format!("/helpdesk/users/{}", t.username)) { "Back to " (t.username) } }
    }
}

pub(super) async fn page(
    State(s): AppState,
    StaffSession(_, me): StaffSession,
    Path(id): Path<String>,
) -> PageResult {
    let t = s.timeline(&id, now())?;
    Ok(console(&s, "Challenge timeline", &me, timeline_body(&t)))
}

/// The timeline as server-sent events: one `timeline` event (JSON, with
/// each time also as text) whenever it changes, until the challenge ends.
pub(super) async fn events(
    State(s): AppState,
    StaffSession(viewer, _): StaffSession,
    Path(id): Path<String>,
) -> PageResult {
    s.timeline(&id, now())?;
    let changes = s.audit_changes();
    let stream = stream::unfold(
        (s, id, changes, String::new(), false),
        move |(s, id, mut changes, last, done)| {
            let viewer = viewer.id_hash.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    if !may_still_watch(&s, &viewer) {
                        return None;
                    }
                    let Ok(t) = s.timeline(&id, now()) else {
                        return None;
                    };
                    let json = serde_json::json!({
                        "status": t.status,
                        "open": t.open,
                        "steps": t.steps.iter().map(|st| serde_json::json!({
                            "step": st.step,
                            "at": st.at_ms.map(at_ms),
                            "detail": st.detail,
                        })).collect::<Vec<_>>(),
                    })
                    .to_string();
                    if json != last {
                        let ev = Event::default().event("timeline").data(json.clone());
                        return Some((Ok::<_, Infallible>(ev), (s, id, changes, json, !t.open)));
                    }
                    // Every step writes an audit row (expiry too, from the
                    // sweeper); the limit covers another process's writes.
                    changes.next(Duration::from_secs(2)).await;
                }
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
