//! The help-desk console, for signed-in staff (`helpdesk` or `admin`
//! role): find a user, see devices and whether they listen now, follow a
//! challenge's timeline live, send a test push, fix the account with a
//! reason, read and export the audit log, and see push health. An officer
//! gets 403 on every console URL; no session goes to sign-in.

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use countersign_core::methods::mask;
use countersign_core::time::format_utc;
use maud::{html, Markup};

use crate::domain::helpdesk::Staff;
use crate::http::extract::ClientIp;
use crate::http::pages::views::{csrf, error};
use crate::http::pages::Posted;
use crate::http::pages::{html as page, load, AppState, PageResult};
use crate::store::StageKind;
use crate::store::{AuditEntry, AuditFilter, Role, UserRow, WebSession};
use crate::{now, now_ms, Error, Server};
use serde::Deserialize;

/// The signed-in staff member's session and account; anyone else gets
/// the answer [`staff`] gives (sign-in, or 403).
pub(super) struct StaffSession(pub(super) WebSession, pub(super) UserRow);

impl FromRequestParts<Arc<Server>> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Server>) -> Result<Self, Response> {
        match staff(s, &parts.headers) {
            Ok(Ok((session, me))) => Ok(StaffSession(session, me)),
            Ok(Err(answer)) => Err(answer),
            Err(e) => Err(crate::http::error::ApiError::from(e).into_response()),
        }
    }
}

/// [`StaffSession`] for a form: the [`Posted`] session must be signed in, its
/// token right, and its member staff. Gives the session, the member and
/// the form.
macro_rules! staff_form {
    ($s:expr, $posted:expr) => {{
        let (session, form) = match $posted.at(&[StageKind::Done]) {
            Ok(ok) => ok,
            Err(answer) => return Ok(*answer),
        };
        match $crate::http::console::staff_of(&$s, session)? {
            Ok((session, me)) => (session, me, form),
            Err(resp) => return Ok(resp),
        }
    }};
}

mod audit;
mod fix;
mod svg;
mod timeline;

/// The console's routes.
pub fn routes(server: &Arc<Server>) -> Router<Arc<Server>> {
    Router::new()
        .route("/helpdesk", get(search_page))
        .route("/helpdesk/users/{username}", get(user_page))
        .route("/helpdesk/users/{username}/fix", post(fix::post))
        .route("/helpdesk/users/{username}/push", post(push_post))
        .route("/helpdesk/challenges/{id}", get(timeline::page))
        .route("/helpdesk/challenges/{id}/events", get(timeline::events))
        .route("/helpdesk/audit", get(audit::page))
        .route("/helpdesk/audit/events", get(audit::events))
        .route("/helpdesk/health", get(health_page))
        // A refusal (a user or challenge not found) is a page, as on the
        // sign-in pages.
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            crate::http::pages::refusals_as_pages,
        ))
        // Pages with officers' details, one click from a test push: never
        // framed, never cached, as the sign-in pages.
        .layer(axum::middleware::from_fn(
            crate::http::pages::security_headers,
        ))
}

/// The signed-in staff member, or the answer for anyone else.
fn staff(
    s: &Server,
    headers: &HeaderMap,
) -> Result<Result<(WebSession, UserRow), Response>, Error> {
    let Some(session) = load(s, headers)?.filter(|x| x.stage.kind() == StageKind::Done) else {
        return Ok(Err(Redirect::to("/signin").into_response()));
    };
    staff_of(s, session)
}

/// The member a signed-in session belongs to, if staff who proved a method.
fn staff_of(
    s: &Server,
    session: WebSession,
) -> Result<Result<(WebSession, UserRow), Response>, Error> {
    let user = s.user(&session.username)?;
    // The console acts on others' accounts: a password alone (a staff
    // member still within "Skip setup") is not enough.
    if !is_staff(&user) || !proved_a_method(&session) {
        let why = if is_staff(&user) {
            "The help-desk console needs a sign-in with a second method. Set up your methods, then sign in again."
        } else {
            "The help-desk console is for help-desk staff. Ask an administrator if you need it."
        };
        let body = html! {
            h1 { "Not allowed" }
            p.error role="alert" { (why) }
            p { a href="/my" { "Back to My sign-ins" } }
        };
        return Ok(Err(
            (StatusCode::FORBIDDEN, page(s, "Not allowed", body)).into_response()
        ));
    }
    Ok(Ok((session, user)))
}

/// Whether the session proved a method the account had before it (a
/// factor gained by registering the first method is not enough here).
fn proved_a_method(session: &WebSession) -> bool {
    session.stage.factor().is_some_and(|f| !f.by_registration)
}

fn is_staff(user: &UserRow) -> bool {
    user.role >= Role::Helpdesk && !user.disabled
}

/// Whether the viewer of a live stream, by their session's id hash, may
/// still watch: signed in, enabled, still staff. Checked at every wake, so
/// a stream ends within seconds of sign-out, a lost role or disabling.
fn may_still_watch(s: &Server, session_hash: &[u8]) -> bool {
    let Ok(Some(session)) = s.store.session(session_hash, now()) else {
        return false;
    };
    session.stage.kind() == StageKind::Done
        && proved_a_method(&session)
        && matches!(s.store.user_by_name(&session.username), Ok(Some(u)) if is_staff(&u))
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

/// `GET /helpdesk?q=`: the search.
#[derive(serde::Deserialize)]
struct SearchQuery {
    #[serde(default)]
    q: String,
}

async fn search_page(
    State(s): AppState,
    StaffSession(_, me): StaffSession,
    Query(SearchQuery { q: query }): Query<SearchQuery>,
) -> PageResult {
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
    StaffSession(session, me): StaffSession,
    Path(username): Path<String>,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let user = s.user(without_domain(&s, &username))?;
    // Only a fix's own name is confirmed: the link is anyone's to make.
    let done = q
        .done
        .as_deref()
        .filter(|d| crate::domain::helpdesk::Fix::ACTIONS.contains(d));
    Ok(console(
        &s,
        &user.username,
        &me,
        user_body(&s, (&session, &me), &user, done, None)?,
    ))
}

/// `typed` without the organisation's email domain (`name@domain` is
/// the account `name`, as at sign-in).
fn without_domain<'t>(s: &Server, typed: &'t str) -> &'t str {
    crate::http::pages::strip_email_domain(s, typed).unwrap_or(typed)
}

/// `?done=`: the fix just applied, to confirm.
#[derive(serde::Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

/// The user's page for the staff member `me` (with their `session`): the
/// forms to push and fix only when their role reaches the account's.
fn user_body(
    s: &Server,
    (session, me): (&WebSession, &UserRow),
    user: &UserRow,
    done: Option<&str>,
    problem: Option<&str>,
) -> Result<Markup, Error> {
    let t = now();
    let may_act = Staff::of(me).may_act_on(user);
    let m = s.store.methods_of(user.id)?;
    let devices = s.devices_view(user)?;
    let challenges = s.store.challenges_of(user.id, 10)?;
    let signins: Vec<AuditEntry> = s
        .store
        .audit_entries(&AuditFilter {
            user: Some(user.username.clone()),
            action: Some("signin.".into()),
            newest: Some(10),
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
                @if may_act {
                    form method="post" action=(format!("{base}/push")) {
                        (csrf(&session.csrf))
                        input type="hidden" name="device" value=(d.device.id);
                        label for=(format!("label-{}", d.device.id)) { "Label shown on the device" }
                        input id=(format!("label-{}", d.device.id)) type="text" name="label" value="Help desk test" maxlength=(crate::domain::helpdesk::TEST_LABEL_MAX);
                        button type="submit" { "Send a test push" }
                    }
                    (fix_form("remove-device", "Remove this device", html! { input type="hidden" name="device" value=(d.device.id); }))
                }
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
                            td { (c.challenge.kind.as_str()) }
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
        @if may_act {
            p { "Each action is recorded in the audit log with your name and the reason." }
            (fix_form("unlock", "Unlock", html! {}))
            (fix_form("reset-password", "Reset password", html! {}))
            (fix_form("reset-methods", "Reset methods (register again)", html! {}))
            (fix_form("clear-push-block", "Clear push block", html! {}))
            (fix_form("extend-skip-setup", "Extend setup deadline", html! {
                label for="hours" { "Hours" }
                input #hours type="number" name="hours" min="1" max="720" value="24" required;
            }))
        } @else {
            p #above-role {
                "This account is " (user.role.as_str()) " and you are " (me.role.as_str())
                ": only an administrator can fix it or send it a test push."
            }
        }
        p { a href=(format!("/helpdesk/audit?user={}", user.username)) { "Audit log for this user" } }
    })
}

/// The user's page again, with the refusal's message (other errors pass).
fn refused(s: &Server, session: &WebSession, me: &UserRow, user: &UserRow, e: Error) -> PageResult {
    let Error::Refused { code, message } = e else {
        return Err(e.into());
    };
    let body = user_body(s, (session, me), user, None, Some(&message))?;
    Ok((
        crate::http::pages::refusal(code),
        console(s, &user.username, me, body),
    )
        .into_response())
}

/// A test push from the user's page: to one device or all, with a label.
#[derive(Deserialize)]
struct PushForm {
    device: Option<String>,
    #[serde(default)]
    label: String,
}

async fn push_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    Path(username): Path<String>,
    posted: Posted<PushForm>,
) -> PageResult {
    let (session, me, form) = staff_form!(s, posted);
    let staff = Staff::of(&me);
    match s.helpdesk_push(
        &username,
        form.device.as_deref(),
        &form.label,
        staff,
        &ip,
        now_ms(),
    ) {
        Ok((id, _)) => Ok(Redirect::to(&format!("/helpdesk/challenges/{id}")).into_response()),
        Err(e) => refused(&s, &session, &me, &s.user(&username)?, e),
    }
}

// --- Push health ---------------------------------------------------------------

async fn health_page(State(s): AppState, StaffSession(_, me): StaffSession) -> PageResult {
    let h = s.off_workers(|s| s.push_health(60, now())).await?;
    let pct = |r: f64| format!("{:.1} %", r * 100.0);
    let body = html! {
        h1 { "Push health" }
        p { "The last hour." }
        dl.facts {
            dt { "Devices connected now" } dd #connected { (h.connected) }
            dt { "Challenges" } dd { (h.total) }
            dt { "Delivery latency (device connected when asked)" } dd #latency {
                @if let Some([p50, p90, p99]) = h.latency_ms() { "p50 " (p50) " ms · p90 " (p90) " ms · p99 " (p99) " ms" }
                @else { "no deliveries" }
            }
            dt { "Delivered once the device connected" } dd #delivered-later { (h.delivered_later) }
            dt { "Expired" } dd { (pct(h.expired_rate)) }
            dt { "Wrong number" } dd { (pct(h.mismatch_rate)) }
        }
        h2 { "Challenges per minute" }
        (svg::bars(&h.per_minute, "Challenges per minute over the last hour"))
        h2 { "Delivery latency, device connected when asked" }
        (svg::histogram(&h.latencies_ms, "Delivery latency in milliseconds, device connected when asked"))
    };
    Ok(console(&s, "Push health", &me, body))
}
