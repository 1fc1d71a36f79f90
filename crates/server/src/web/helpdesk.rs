//! The help-desk console, for signed-in staff (`helpdesk` or `admin`
//! role): find a user, see devices and whether they listen now, follow a
//! challenge's timeline live, send a test push, fix the account with a
//! reason, read and export the audit log, and see push health. An officer
//! gets 403 on every console URL; no session goes to sign-in.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use countersign_core::methods::mask;
use countersign_core::time::format_utc;
use futures_util::stream;
use maud::{html, Markup};

use super::pages::{csrf, error};
use super::{html as page, load, AppState, PageResult};
use crate::api::ClientIp;
use crate::helpdesk::{Fix, Timeline};
use crate::store::{AuditEntry, AuditFilter, Role, UserRow, WebSession};
use crate::{now, Error, Server};

mod svg;

/// The console's routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/helpdesk", get(search_page))
        .route("/helpdesk/users/{username}", get(user_page))
        .route("/helpdesk/users/{username}/fix", post(fix_post))
        .route("/helpdesk/users/{username}/push", post(push_post))
        .route("/helpdesk/challenges/{id}", get(timeline_page))
        .route("/helpdesk/challenges/{id}/events", get(timeline_events))
        .route("/helpdesk/audit", get(audit_page))
        .route("/helpdesk/audit/events", get(audit_events))
        .route("/helpdesk/health", get(health_page))
}

/// The signed-in staff member, or the answer for anyone else.
fn staff(
    s: &Server,
    headers: &HeaderMap,
) -> Result<Result<(WebSession, UserRow), Response>, Error> {
    let Some(session) = load(s, headers)?.filter(|x| x.stage == "done") else {
        return Ok(Err(Redirect::to("/signin").into_response()));
    };
    let user = s.user(&session.username)?;
    if user.role == Role::Officer || user.disabled {
        let body = html! {
            h1 { "Not allowed" }
            p.error role="alert" { "The help-desk console is for help-desk staff. Ask an administrator if you need it." }
            p { a href="/my" { "Back to My sign-ins" } }
        };
        return Ok(Err(
            (StatusCode::FORBIDDEN, page(s, "Not allowed", body)).into_response()
        ));
    }
    Ok(Ok((session, user)))
}

macro_rules! staff {
    ($s:expr, $headers:expr) => {
        match staff(&$s, &$headers)? {
            Ok(who) => who,
            Err(resp) => return Ok(resp),
        }
    };
    ($s:expr, $headers:expr, $form:expr) => {{
        let who = staff!($s, $headers);
        if !$crate::web::csrf_ok(&who.0, &$form) {
            return Ok($crate::web::forbidden(&$s));
        }
        who
    }};
}

/// The console's frame: its navigation over `body`.
fn console(s: &Server, title: &str, staff: &UserRow, body: Markup) -> Response {
    page(
        s,
        title,
        html! {
            nav.console aria-label="Help desk" {
                a href="/helpdesk" { "Find a user" } " · "
                a href="/helpdesk/audit" { "Audit log" } " · "
                a href="/helpdesk/health" { "Push health" } " · "
                a href="/my" { (staff.username) }
            }
            (body)
        },
    )
}

/// Unix ms as `YYYY-MM-DD HH:MM:SS.mmm UTC`.
fn at_ms(ms: u64) -> String {
    let t = format_utc(ms / 1000);
    let secs = (ms / 1000) % 60;
    t.replace(" UTC", &format!(":{secs:02}.{:03} UTC", ms % 1000))
}

fn status_of(u: &UserRow, now: u64) -> String {
    let mut parts = Vec::new();
    if u.disabled {
        parts.push("disabled".to_string());
    }
    if u.locked_until > now {
        parts.push(format!("locked until {}", format_utc(u.locked_until)));
    }
    if u.must_change {
        parts.push("must change password".into());
    }
    if u.push_blocked {
        parts.push("push blocked (fraud report)".into());
    }
    if u.skip_setup_until > now {
        parts.push(format!(
            "setup postponed until {}",
            format_utc(u.skip_setup_until)
        ));
    }
    if parts.is_empty() {
        "active".into()
    } else {
        parts.join("; ")
    }
}

// --- Find a user -----------------------------------------------------------

async fn search_page(
    State(s): AppState,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let (_, me) = staff!(s, headers);
    let query = q.get("q").cloned().unwrap_or_default();
    let found = if query.trim().is_empty() {
        Vec::new()
    } else {
        s.find_users(&query)?
    };
    let t = now();
    let body = html! {
        h1 { "Find a user" }
        form method="get" action="/helpdesk" role="search" {
            label for="q" { "Username, name or email" }
            input #q type="search" name="q" value=(query) autofocus;
            button type="submit" { "Search" }
        }
        @if !query.trim().is_empty() {
            @if found.is_empty() {
                p role="status" { "No user matches \"" (query) "\"." }
            } @else {
                table {
                    caption { (found.len()) " found" }
                    thead { tr { th scope="col" { "User" } th scope="col" { "Name" } th scope="col" { "Status" } } }
                    tbody {
                        @for u in &found {
                            tr {
                                td { a href=(format!("/helpdesk/users/{}", u.username)) { (u.username) "@" (s.config.email_domain) } }
                                td { (u.first_name) " " (u.last_name) }
                                td { (status_of(u, t)) }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(console(&s, "Find a user", &me, body))
}

// --- One user ----------------------------------------------------------------

async fn user_page(
    State(s): AppState,
    headers: HeaderMap,
    Path(username): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let (session, me) = staff!(s, headers);
    let user = s.user(&username)?;
    let done = q.get("done").map(String::as_str);
    Ok(console(
        &s,
        &user.username,
        &me,
        user_body(&s, &session, &user, done, None)?,
    ))
}

fn user_body(
    s: &Server,
    session: &WebSession,
    user: &UserRow,
    done: Option<&str>,
    problem: Option<&str>,
) -> Result<Markup, Error> {
    let t = now();
    let m = s.store.methods_of(user.id)?;
    let devices = s.devices_view(user)?;
    let challenges = s.store.challenges_of(user.id, 10)?;
    let signins: Vec<AuditEntry> = s
        .store
        .audit_entries(&AuditFilter {
            user: Some(user.username.clone()),
            action: Some("signin.".into()),
            ..AuditFilter::default()
        })?
        .into_iter()
        .rev()
        .take(10)
        .collect();
    let base = format!("/helpdesk/users/{}", user.username);
    let fix_form = |action: &str, label: &str, extra: Markup| {
        html! {
            form.fix method="post" action=(format!("{base}/fix")) {
                (csrf(&session.csrf))
                input type="hidden" name="action" value=(action);
                (extra)
                label for=(format!("reason-{action}")) { "Reason" }
                input id=(format!("reason-{action}")) type="text" name="reason" required minlength="3" maxlength="500";
                button.secondary type="submit" { (label) }
            }
        }
    };
    Ok(html! {
        h1 { (user.first_name) " " (user.last_name) }
        p.account { (user.username) "@" (s.config.email_domain) " · role " (user.role.as_str()) }
        @if let Some(d) = done { p.ok role="status" { "Done: " (d.replace('-', " ")) "." } }
        (error(problem))
        dl.facts {
            dt { "Status" } dd #user-status { (status_of(user, t)) }
            dt { "Methods" } dd {
                @if m.app { "app " } @if let Some(p) = &m.phone { "phone " (mask(p)) " " }
                @if !m.questions.is_empty() { "security questions" }
                @if m.count() == 0 { "none registered" }
            }
        }
        h2 { "Devices" }
        @if devices.is_empty() { p { "No device enrolled." } }
        @for d in &devices {
            section.device {
                h3 { (d.device.name) }
                dl.facts {
                    dt { "Platform" } dd { (d.device.platform) " · app " (d.device.app_version) }
                    dt { "Enrolled" } dd { (format_utc(d.device.created_at)) }
                    dt { "Last seen" } dd { (format_utc(d.device.last_seen_at)) }
                    dt { "Connected now" } dd.connected data-device=(d.device.id) {
                        @if d.streams > 0 { "yes (" (d.streams) " stream" @if d.streams > 1 { "s" } ")" } @else { "no: no request stream open" }
                    }
                }
                form method="post" action=(format!("{base}/push")) {
                    (csrf(&session.csrf))
                    input type="hidden" name="device" value=(d.device.id);
                    label for=(format!("label-{}", d.device.id)) { "Label shown on the device" }
                    input id=(format!("label-{}", d.device.id)) type="text" name="label" value="Help desk test" maxlength="64";
                    button type="submit" { "Send a test push" }
                }
                (fix_form("remove-device", "Remove this device", html! { input type="hidden" name="device" value=(d.device.id); }))
            }
        }
        h2 { "Recent challenges" }
        @if challenges.is_empty() { p { "None." } }
        @else {
            table {
                thead { tr { th scope="col" { "Created" } th scope="col" { "Kind" } th scope="col" { "Application" } th scope="col" { "Delivered" } th scope="col" { "Result" } } }
                tbody {
                    @for c in &challenges {
                        tr {
                            td { a href=(format!("/helpdesk/challenges/{}", c.challenge.id)) { (format_utc(c.challenge.created_at)) } }
                            td { (crate::helpdesk::timeline(c, t).kind) }
                            td { (c.challenge.application) }
                            td { @if c.delivered_at.is_some() { "yes" } @else { "no" } }
                            td { (c.status_at(t).as_str().replace('_', " ")) }
                        }
                    }
                }
            }
        }
        h2 { "Recent sign-in steps" }
        @if signins.is_empty() { p { "None." } }
        @else {
            table {
                thead { tr { th scope="col" { "When" } th scope="col" { "Step" } th scope="col" { "Outcome" } th scope="col" { "From" } } }
                tbody { @for e in &signins { tr { td { (format_utc(e.at)) } td { (e.action) } td { (e.outcome) } td { (e.ip) } } } }
            }
        }
        h2 { "Fix the account" }
        p { "Each action is recorded in the audit log with your name and the reason." }
        (fix_form("unlock", "Unlock", html! {}))
        (fix_form("reset-password", "Reset password", html! {}))
        (fix_form("reset-methods", "Reset methods (register again)", html! {}))
        (fix_form("clear-push-block", "Clear push block", html! {}))
        (fix_form("extend-skip-setup", "Extend setup deadline", html! {
            label for="hours" { "Hours" }
            input #hours type="number" name="hours" min="1" max="720" value="24" required;
        }))
        p { a href=(format!("/helpdesk/audit?user={}", user.username)) { "Audit log for this user" } }
    })
}

async fn fix_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Path(username): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let (session, me) = staff!(s, headers, form);
    let user = s.user(&username)?;
    let action = form.get("action").map(String::as_str).unwrap_or_default();
    let hours = form.get("hours").and_then(|h| h.trim().parse().ok());
    let reason = form.get("reason").map(String::as_str).unwrap_or_default();
    let outcome = Fix::parse(action, form.get("device").map(String::as_str), hours)
        .and_then(|fix| s.apply_fix(&username, &fix, &me.username, reason, &ip, now()));
    match outcome {
        Ok(Some(password)) => {
            let body = html! {
                h1 { "Temporary password" }
                p { "Read this to " (user.first_name) " " (user.last_name) " by phone. It is shown once; the officer must change it at the next sign-in." }
                p.number.password { (password.as_str()) }
                p { a href=(format!("/helpdesk/users/{username}")) { "Back to " (username) } }
            };
            Ok(console(&s, "Temporary password", &me, body))
        }
        Ok(None) => {
            Ok(Redirect::to(&format!("/helpdesk/users/{username}?done={action}")).into_response())
        }
        Err(Error::Refused {
            status, message, ..
        }) => {
            let body = user_body(&s, &session, &user, None, Some(&message))?;
            Ok((super::refusal(status), console(&s, &username, &me, body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

async fn push_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Path(username): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let (session, me) = staff!(s, headers, form);
    let device = form.get("device").map(String::as_str);
    let label = form.get("label").map(String::as_str).unwrap_or_default();
    match s.helpdesk_push(&username, device, label, &me.username, &ip, now()) {
        Ok((id, _)) => Ok(Redirect::to(&format!("/helpdesk/challenges/{id}")).into_response()),
        Err(Error::Refused {
            status, message, ..
        }) => {
            let user = s.user(&username)?;
            let body = user_body(&s, &session, &user, None, Some(&message))?;
            Ok((super::refusal(status), console(&s, &username, &me, body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

// --- A challenge's timeline ---------------------------------------------------

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

async fn timeline_page(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let (_, me) = staff!(s, headers);
    let t = s.timeline(&id, now())?;
    Ok(console(&s, "Challenge timeline", &me, timeline_body(&t)))
}

/// The timeline as server-sent events: one `timeline` event (JSON, with
/// each time also as text) whenever it changes, until the challenge ends.
async fn timeline_events(
    State(s): AppState,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> PageResult {
    let _ = staff!(s, headers);
    s.timeline(&id, now())?;
    let stream = stream::unfold(
        (s, id, String::new(), false),
        |(s, id, last, done)| async move {
            if done {
                return None;
            }
            loop {
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
                    return Some((Ok::<_, Infallible>(ev), (s, id, json, !t.open)));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// --- The audit log -------------------------------------------------------------

fn filter_of(q: &HashMap<String, String>) -> AuditFilter {
    let text = |k: &str| {
        q.get(k)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let time = |k: &str| text(k).and_then(|v| v.parse::<u64>().ok());
    AuditFilter {
        user: text("user"),
        actor: text("actor"),
        action: text("action"),
        outcome: text("outcome"),
        since: time("since"),
        until: time("until"),
        after_seq: None,
    }
}

fn csv_field(v: &str) -> String {
    // Quoted always; a leading formula character is neutralised for
    // spreadsheets.
    let v = if v.starts_with(['=', '+', '-', '@']) {
        format!("'{v}")
    } else {
        v.to_string()
    };
    format!("\"{}\"", v.replace('"', "\"\""))
}

async fn audit_page(
    State(s): AppState,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let (_, me) = staff!(s, headers);
    let filter = filter_of(&q);
    let rows = s.store.audit_entries(&filter)?;
    if q.get("format").map(String::as_str) == Some("csv") {
        let mut out = String::from("seq,at,actor,action,target,ip,outcome,detail\n");
        for r in &rows {
            let cols = [&r.actor, &r.action, &r.target, &r.ip, &r.outcome, &r.detail]
                .map(|c| csv_field(c));
            out.push_str(&format!(
                "{},{},{}\n",
                r.seq,
                csv_field(&format_utc(r.at)),
                cols.join(",")
            ));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"audit.csv\"",
                ),
            ],
            out,
        )
            .into_response());
    }
    let last = rows.last().map_or(0, |r| r.seq);
    let shown: Vec<&AuditEntry> = rows.iter().rev().take(200).collect();
    let value = |k: &str| q.get(k).cloned().unwrap_or_default();
    let query: String = ["user", "actor", "action", "outcome", "since", "until"]
        .iter()
        .filter_map(|k| {
            q.get(*k)
                .filter(|v| !v.is_empty())
                .map(|v| format!("&{k}={}", urlencode(v)))
        })
        .collect();
    let field = |name: &str, label: &str| {
        html! {
            label for=(format!("f-{name}")) { (label) }
            input id=(format!("f-{name}")) type="text" name=(name) value=(value(name));
        }
    };
    let body = html! {
        h1 { "Audit log" }
        form.filters method="get" action="/helpdesk/audit" {
            (field("user", "User (actor or target)"))
            (field("actor", "Actor"))
            (field("action", "Action (prefix, e.g. signin.)"))
            (field("outcome", "Outcome"))
            (field("since", "Since (Unix time)"))
            (field("until", "Until (Unix time)"))
            button type="submit" { "Filter" }
        }
        p {
            a href=(format!("/helpdesk/audit?format=csv{query}")) download="audit.csv" { "Export CSV" }
            " · " (rows.len()) " rows; newest first, 200 shown; new rows appear as they are written."
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

/// Percent-encodes a query value.
fn urlencode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// New audit rows matching the filter, as `row` events, as they are written.
async fn audit_events(
    State(s): AppState,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> PageResult {
    let _ = staff!(s, headers);
    let mut filter = filter_of(&q);
    filter.after_seq = q.get("after").and_then(|a| a.parse().ok()).or(Some(0));
    let stream = stream::unfold(
        (s, filter, Vec::<AuditEntry>::new()),
        |(s, mut filter, mut queue)| async move {
            loop {
                if let Some(r) = queue.pop() {
                    let data = serde_json::json!({
                        "seq": r.seq, "at": format_utc(r.at), "actor": r.actor, "action": r.action,
                        "target": r.target, "outcome": r.outcome, "detail": r.detail,
                    })
                    .to_string();
                    return Some((
                        Ok::<_, Infallible>(Event::default().event("row").data(data)),
                        (s, filter, queue),
                    ));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                let Ok(mut rows) = s.store.audit_entries(&filter) else {
                    return None;
                };
                if let Some(last) = rows.last() {
                    filter.after_seq = Some(last.seq);
                }
                rows.reverse();
                queue = rows;
            }
        },
    );
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}

// --- Push health ---------------------------------------------------------------

async fn health_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let (_, me) = staff!(s, headers);
    let h = s.push_health(60, now())?;
    let pct = |r: f64| format!("{:.1} %", r * 100.0);
    let body = html! {
        h1 { "Push health" }
        p { "The last hour." }
        dl.facts {
            dt { "Devices connected now" } dd #connected { (h.connected) }
            dt { "Challenges" } dd { (h.total) }
            dt { "Delivery latency" } dd #latency {
                @if let Some([p50, p90, p99]) = h.latency_ms { "p50 " (p50) " ms · p90 " (p90) " ms · p99 " (p99) " ms" }
                @else { "no deliveries" }
            }
            dt { "Expired" } dd { (pct(h.expired_rate)) }
            dt { "Wrong number" } dd { (pct(h.mismatch_rate)) }
        }
        h2 { "Challenges per minute" }
        (svg::bars(&h.per_minute, "Challenges per minute over the last hour"))
        h2 { "Delivery latency" }
        (svg::histogram(&h.latencies_ms, "Delivery latency in milliseconds"))
    };
    Ok(console(&s, "Push health", &me, body))
}
