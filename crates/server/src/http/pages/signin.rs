//! The sign-in steps: email, password, the forced password change, "Stay
//! signed in?", and the small pages around them.

use super::*;
use crate::domain::push::Origin;
use crate::http::extract::ClientIp;
use crate::http::pages::PageForm;
use crate::http::pages::{NewPasswordStep, PageSession, PasswordStep, StayStep};
use crate::store::StageKind;
use crate::store::{NewAudit, WebSession};
use crate::{now, now_ms, Error, Server};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::ChallengeKind;
use presession::PreSession;
use serde::Deserialize;

#[derive(Deserialize)]
pub(crate) struct SigninQuery {
    return_to: Option<String>,
    /// An application's authorization request waiting for this sign-in.
    authorize: Option<String>,
}

pub(crate) async fn signin_page(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Query(q): Query<SigninQuery>,
) -> PageResult {
    // A sign-in in progress starts again (keeping where it was to go).
    let mut return_to = String::new();
    if let Some(session) = load(&s, &headers)? {
        if session.stage.kind() == StageKind::Done {
            return Ok(Redirect::to("/my").into_response());
        }
        end(&s, &session.id_hash)?;
        return_to = session.return_to;
    }
    let mut notice = None;
    if let Some(id) = q.authorize {
        let target = sso::continuation(&id);
        if sso::application_of(&s, &target)?.is_some() {
            return_to = target;
        }
    }
    if let Some(target) = q.return_to {
        match return_to::check(&target, &s.config.web.return_to_allow) {
            Ok(target) => return_to = target,
            Err(why) => {
                refused_redirect(&s, &ip, why)?;
                notice = Some(
                    "The link you followed would send you on to an address this portal does not serve. After you sign in, you will go to My sign-ins.",
                );
            }
        }
    }
    // Nothing is stored until the form comes back.
    let pre = PreSession::carried_or_new(&s, &headers)?;
    Ok(Page {
        body: email_page(&s, &pre.token, &return_to, notice)?,
        cookie: Some(pre.cookie()),
    }
    .into_response())
}

/// Audits a refused `return_to`, at most once a minute per address: a
/// flood of such links must not flood the audit log.
pub(crate) fn refused_redirect(s: &Server, ip: &str, why: return_to::Refusal) -> Result<(), Error> {
    if !s.audit_once_a_minute.take("signin.return_to", ip, now()) {
        return Ok(());
    }
    s.audit(
        NewAudit {
            actor: "",
            action: "signin.return_to",
            target: "",
            ip,
            outcome: "refused",
            detail: why.as_str(),
        },
        now(),
    )
}

/// The email page's form (its token is the pre-session's).
#[derive(Deserialize)]
pub(crate) struct EmailForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    return_to: String,
}

pub(crate) async fn signin_post(
    State(s): AppState,
    headers: HeaderMap,
    PageForm(form): PageForm<EmailForm>,
) -> PageResult {
    let Some(pre) = PreSession::from_headers(&headers) else {
        return Ok(Redirect::to("/signin").into_response());
    };
    if !pre.form_ok(Some(&form.csrf)) {
        return Ok(forbidden(&s));
    }
    let allow = &s.config.web.return_to_allow;
    let return_to = Some(form.return_to.as_str())
        .filter(|t| !t.is_empty())
        .and_then(|t| match sso::continued_request(t) {
            Some(_) => Some(t.to_string()),
            None => return_to::check(t, allow).ok(),
        })
        .unwrap_or_default();
    let username = username_of(&s, &form.email);
    if crate::domain::accounts::check_username(&username).is_err() {
        let msg = format!(
            "Enter a valid email address, such as username@{}.",
            s.config.email_domain
        );
        return Ok(email_page(&s, &pre.token, &return_to, Some(&msg))?);
    }
    // Unknown and known accounts go on alike: the password step answers for
    // both. The session is stored from here on.
    let mut session = fresh(StageKind::Password);
    session.username = username;
    session.return_to = return_to;
    let cookie = issue(&s, &mut session, None)?;
    Ok(Page {
        body: Redirect::to("/signin/password").into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

/// The email page, naming the application the sign-in continues to.
fn email_page(
    s: &Server,
    token: &str,
    return_to: &str,
    message: Option<&str>,
) -> Result<Response, Error> {
    let app = sso::application_of(s, return_to)?;
    let domain = &s.config.email_domain;
    let body = views::email(token, domain, return_to, app.as_deref(), message);
    Ok(super::framed(s, "Sign in", body, true))
}

/// "Back" from the password step: the sign-in starts again (the email
/// page drops the session and keeps where it was to return).
pub(crate) async fn back() -> Redirect {
    Redirect::to("/signin")
}

pub(crate) async fn password_page(
    State(s): AppState,
    PageSession(session, _): PageSession<PasswordStep>,
) -> PageResult {
    Ok(html(
        &s,
        "Enter password",
        views::password(
            &session.csrf,
            &account(&s, &session.username),
            sso::application_of(&s, &session.return_to)?.as_deref(),
            None,
        ),
    ))
}

/// The password step's form.
#[derive(Deserialize)]
pub(crate) struct PasswordForm {
    #[serde(default)]
    password: SecretField,
}

pub(crate) async fn password_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<PasswordForm>,
) -> PageResult {
    let (mut session, PasswordForm { password }) = at!(posted, &[StageKind::Password]);
    let username = session.username.clone();
    let checked = s
        .hashing(move |s| s.check_password(&username, &password, &ip, now()))
        .await;
    match checked {
        Ok(ok) => {
            let next = if ok.must_change {
                StageKind::ChangePassword
            } else {
                after_password(&s, &ok.user.username)?
            };
            session.stage = session.stage.then(next);
            session.authenticated_at = now();
            let old = session.id_hash.clone();
            let cookie = issue(&s, &mut session, Some(&old))?;
            Ok(Page {
                body: Redirect::to(after_password_url(next)).into_response(),
                cookie: Some(cookie),
            }
            .into_response())
        }
        Err(Error::Refused { code, message }) => {
            let body = views::password(
                &session.csrf,
                &account(&s, &session.username),
                sso::application_of(&s, &session.return_to)?.as_deref(),
                Some(&message),
            );
            Ok((refusal(code), html(&s, "Enter password", body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn update_page(
    State(s): AppState,
    PageSession(session, _): PageSession<NewPasswordStep>,
) -> PageResult {
    Ok(html(
        &s,
        "Update your password",
        views::update_password(&session.csrf, &account(&s, &session.username), &[]),
    ))
}

pub(crate) async fn update_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NewPasswordForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, &[StageKind::ChangePassword]);
    let NewPasswordForm {
        current,
        new,
        confirm,
    } = form;
    let (username, id) = (session.username.clone(), session.id_hash.clone());
    // Another browser that signed in with the old password is out, in the
    // transaction that changes it.
    let changed = s
        .hashing(move |s| {
            s.change_password_in(&username, &current, &new, &confirm, Some(&id), &ip, now())
        })
        .await;
    match changed {
        Ok(Ok(())) => {
            let next = after_password(&s, &session.username)?;
            session.stage = session.stage.then(next);
            save(&s, &session)?;
            Ok(Redirect::to(after_password_url(next)).into_response())
        }
        Ok(Err(violations)) => {
            let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let body =
                views::update_password(&session.csrf, &account(&s, &session.username), &messages);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                html(&s, "Update your password", body),
            )
                .into_response())
        }
        Err(Error::Refused { message, .. }) => {
            let body =
                views::update_password(&session.csrf, &account(&s, &session.username), &[message]);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                html(&s, "Update your password", body),
            )
                .into_response())
        }
        Err(e) => Err(e.into()),
    }
}

/// The username in what was typed: a bare username, or an address in the
/// configured domain (anything else is no username).
pub(crate) fn username_of(s: &Server, typed: &str) -> String {
    let typed = typed.trim();
    match strip_email_domain(s, typed) {
        Some(user) => user.to_lowercase(),
        None if typed.contains('@') => String::new(),
        None => typed.to_lowercase(),
    }
}

/// `typed` without `@` and the organisation's email domain (in any case),
/// when it ends so: the account's name as an address stands for it.
pub(crate) fn strip_email_domain<'t>(s: &Server, typed: &'t str) -> Option<&'t str> {
    let domain = format!("@{}", s.config.email_domain);
    let at = typed.len().checked_sub(domain.len())?;
    (typed.is_char_boundary(at) && typed[at..].eq_ignore_ascii_case(&domain)).then(|| &typed[..at])
}

/// Where a sign-in goes once the password is settled: proof with a
/// registered method, or (nothing registered yet) registration.
pub(crate) fn after_password(s: &Server, username: &str) -> Result<StageKind, Error> {
    Ok(if s.methods(username)?.count() > 0 {
        StageKind::Mfa
    } else if s.setup_postponed(&s.user(username)?, now()) {
        StageKind::Stay
    } else {
        StageKind::Register
    })
}

/// Where the password step leads: registration starts with "More
/// information required" (guide 001, step 5), as it does after the
/// password update.
fn after_password_url(next: StageKind) -> &'static str {
    if next == StageKind::Register {
        "/signin/register/intro"
    } else {
        stage_url(next)
    }
}

/// Moves the session to `stage` under a new id (every step forward is a
/// gain in privilege) and goes to the stage's page.
pub(crate) fn advance(s: &Server, session: &mut WebSession, stage: StageKind) -> PageResult {
    advance_with(s, session, stage, None)
}

/// [`advance`], with the audit row of the step completed committed with
/// the new session.
pub(crate) fn advance_with(
    s: &Server,
    session: &mut WebSession,
    stage: StageKind,
    row: Option<&NewAudit<'_>>,
) -> PageResult {
    session.stage = session.stage.then(stage);
    let old = session.id_hash.clone();
    let cookie = issue_with(s, session, Some(&old), row)?;
    Ok(Page {
        body: Redirect::to(stage_url(stage)).into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

/// What the phone's prompt names as asking during an account recovery.
pub(crate) const RECOVERY_LABEL: &str = "Account recovery (password reset)";

/// The session's challenge if still pending, else a new one.
pub(crate) fn current_or_new_challenge(
    s: &Server,
    session: &mut WebSession,
    ip: &str,
    kind: ChallengeKind,
) -> Result<(String, u8), Error> {
    if let Some(id) = session.stage.push() {
        if let Ok((row, ChallengeStatus::Pending)) = s.challenge_status(id, now()) {
            return Ok((row.challenge.id, row.number));
        }
    }
    // The application the officer is signing in to, as the prompt names
    // it; a recovery says so, so that an officer who did not start one
    // knows someone else is at their account.
    let app = if session.stage.kind() == StageKind::Recover {
        Some(RECOVERY_LABEL.to_string())
    } else {
        sso::application_of(s, &session.return_to)?
    };
    let origin = Origin {
        application: app.as_deref().unwrap_or(&s.config.web.application),
        ip,
        location: "",
        kind,
        actor: &session.username,
    };
    let created = s.create_challenge(&session.username, None, &origin, now_ms())?;
    let Some(slot) = session.stage.push_slot() else {
        return Err(Error::Internal("push sent outside a step".into()));
    };
    *slot = Some(created.challenge_id.clone());
    save(s, session)?;
    Ok((created.challenge_id, created.number))
}

pub(crate) fn challenge_status(
    s: &Server,
    session: &WebSession,
) -> Result<Option<ChallengeStatus>, Error> {
    let Some(id) = session.stage.push() else {
        return Ok(None);
    };
    let (row, status) = s.challenge_status(id, now())?;
    // Only this account's challenge counts.
    let user = s.user(&session.username)?;
    Ok((row.user_id == user.id).then_some(status))
}

pub(crate) async fn stay_page(
    State(s): AppState,
    PageSession(session, _): PageSession<StayStep>,
) -> PageResult {
    let mut page = html(
        &s,
        "Stay signed in?",
        views::stay(&session.csrf, &account(&s, &session.username)),
    );
    // This form's answer goes on to the application: browsers check the
    // redirect against the page's form-action.
    page.extensions_mut()
        .insert(FormTargets(sso::return_origins(&s, &session.return_to)?));
    Ok(page)
}

/// "Stay signed in?": `yes` or `no`.
#[derive(Deserialize)]
pub(crate) struct StayForm {
    #[serde(default)]
    stay: String,
}

pub(crate) async fn stay_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<StayForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, &[StageKind::Stay]);
    session.persistent = form.stay == "yes";
    session.stage = session.stage.then(StageKind::Done);
    let old = session.id_hash.clone();
    let who = session.username.clone();
    let outcome = if session.persistent {
        "stay_signed_in"
    } else {
        "browser_session"
    };
    let row = NewAudit::of(&who, "signin.complete", &who, &ip).with(outcome, "");
    let cookie = issue_with(&s, &mut session, Some(&old), Some(&row))?;
    let target = if session.return_to.is_empty() {
        "/my".to_string()
    } else {
        session.return_to.clone()
    };
    Ok(Page {
        body: Redirect::to(&target).into_response(),
        cookie: Some(cookie),
    }
    .into_response())
}

pub(crate) async fn options_page(State(s): AppState) -> Response {
    let unsupported = format!(
        "This feature is not supported by {}. Sign in with your email address and password.",
        s.config.org_name
    );
    html(
        &s,
        "Sign-in options",
        views::info("Sign-in options", &[&unsupported]),
    )
}
