//! The browser session behind the pages: loading it from the cookie under
//! the one rule no page can skip (a second factor before acting for the
//! account), issuing it under a fresh id at each gain in privilege, the
//! stage each page serves, and the CSRF check of every form.

use super::*;
use crate::domain::methods::Authority;
use crate::domain::sha256;
use crate::domain::Code;
use crate::http::error::ApiError;
use crate::http::extract::{session_id_hash, SESSION_COOKIE as COOKIE};
use crate::store::StageKind;
use crate::store::{Factor, FactorMethod, NewAudit, WebSession};
use crate::{now, Error, Server};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::marker::PhantomData;
use std::sync::Arc;

/// The request's browser session, held to [`second_factor_rule`].
pub(crate) fn load(s: &Server, headers: &HeaderMap) -> Result<Option<WebSession>, Error> {
    let Some(id) = session_id_hash(headers) else {
        return Ok(None);
    };
    let Some(mut session) = s.store.session(&id, now())? else {
        return Ok(None);
    };
    second_factor_rule(s, &mut session)?;
    Ok(Some(session))
}

/// The rule no page can skip, applied wherever a session is loaded: a
/// session acts for an account only with a proven second factor, or while
/// the account has no method at all (first sign-in, after a methods
/// reset). A session without one, whose account has gained a method (from
/// another browser, say), goes back to proving it is the account's holder.
/// The one exception is the session whose QR code the app was activated
/// with: that activation proves the app (and binds only while the account
/// had no method, see [`crate::domain::methods::Authority::FirstMethod`]).
pub(crate) fn second_factor_rule(s: &Server, session: &mut WebSession) -> Result<(), Error> {
    if session.stage.kind() == StageKind::Add && reverify_if_stale(s, session)? {
        return Ok(());
    }
    if session.stage.factor().is_some() || !session.stage.kind().acts_for_account() {
        return Ok(());
    }
    let user = s.user(&session.username)?;
    if s.store.methods_of(user.id)?.count() == 0 {
        return Ok(());
    }
    if let Some(registering) = session.stage.registering() {
        let mut used = None;
        for id in &registering.shown {
            let activation = s.store.activation(id)?.filter(|a| a.user_id == user.id);
            used = used.or(activation.and_then(|a| a.used_at));
        }
        if let Some(at) = used {
            registering.shown.clear();
            session.stage.prove(Factor {
                method: FactorMethod::App,
                at,
                by_registration: true,
            });
            return save(s, session);
        }
    }
    back_to_proof(s, session)
}

/// How recent the last proof of a method must be to change methods: an
/// older one (a stay-signed-in session of days) is proven again first, so
/// a stolen cookie alone cannot replace the officer's methods.
const FRESH_PROOF_SECONDS: u64 = 15 * 60;

/// Sends a signed-in session whose proof is stale (or missing) to prove a
/// method again (`reverify`, back to `done` once proven) before it adds or
/// removes one; `true` if it was sent. An account without any method has
/// nothing to prove.
pub(crate) fn reverify_if_stale(s: &Server, session: &mut WebSession) -> Result<bool, Error> {
    let fresh = session
        .stage
        .factor()
        .is_some_and(|f| now().saturating_sub(f.at) <= FRESH_PROOF_SECONDS);
    if fresh || s.methods(&session.username)?.count() == 0 {
        return Ok(false);
    }
    session.stage = session.stage.then(StageKind::Reverify);
    save(s, session)?;
    Ok(true)
}

/// Stores the session's new state.
/// A session that was ended while a request was using it is not written
/// back (it stays ended).
pub(crate) fn save(s: &Server, session: &WebSession) -> Result<(), Error> {
    if s.write(now(), |w| w.update_session(session))? {
        Ok(())
    } else {
        Err(session_ended())
    }
}

/// The answer when a session ended while a request was using it.
fn session_ended() -> Error {
    Error::refused(Code::Unauthorized, "Your session ended. Sign in again.")
}

/// Ends the session whose id hashes to `id_hash`.
pub(crate) fn end(s: &Server, id_hash: &[u8]) -> Result<(), Error> {
    s.write(now(), |w| w.delete_session(id_hash).map(drop))
}

/// Sends a session back to proving a second factor.
pub(crate) fn back_to_proof(s: &Server, session: &mut WebSession) -> Result<(), Error> {
    session.stage = session.stage.then(StageKind::Mfa);
    save(s, session)
}

/// The authority a session changes methods on: see [`second_factor_rule`].
pub(crate) fn authority(session: &WebSession) -> Authority {
    if session.stage.factor().is_some() {
        Authority::Proven
    } else {
        Authority::FirstMethod
    }
}

pub(crate) fn random_token(s: &Server) -> Result<String, Error> {
    crate::domain::random_token(&s.rng)
}

/// Stores `session` under a fresh id (and CSRF token); returns the cookie.
/// Used for new sessions and at every privilege change.
pub(crate) fn issue(
    s: &Server,
    session: &mut WebSession,
    old: Option<&[u8]>,
) -> Result<String, Error> {
    issue_with(s, session, old, None)
}

/// [`issue`], with the audit row of the step it completes written in the
/// same transaction.
pub(crate) fn issue_with(
    s: &Server,
    session: &mut WebSession,
    old: Option<&[u8]>,
    row: Option<&NewAudit<'_>>,
) -> Result<String, Error> {
    let id = random_token(s)?;
    session.id_hash = sha256(id.as_bytes()).to_vec();
    if session.sid.is_empty() {
        session.sid = random_token(s)?;
    }
    session.csrf = random_token(s)?;
    let t = now();
    let lifetime = if session.persistent {
        s.config.web.stay_signed_in_days * 86_400
    } else {
        s.config.web.session_minutes * 60
    };
    session.created_at = t;
    session.expires_at = t + lifetime;
    // The old id ends and the new one starts together; if the old one was
    // ended meanwhile (a help-desk fix), nothing starts.
    let started = s.write(t, |w| {
        if let Some(old) = old {
            if !w.delete_session(old)? {
                return Ok(false);
            }
        }
        w.insert_session(session)?;
        if let Some(row) = row {
            w.audit(row)?;
        }
        Ok(true)
    })?;
    if !started {
        return Err(session_ended());
    }
    let max_age = if session.persistent {
        format!("; Max-Age={lifetime}")
    } else {
        String::new()
    };
    Ok(format!(
        "{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Lax{max_age}"
    ))
}

/// A `Set-Cookie` value that removes the session cookie.
pub(crate) fn expired_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0")
}

pub(crate) fn fresh(stage: StageKind) -> WebSession {
    WebSession {
        id_hash: Vec::new(),
        csrf: String::new(),
        username: String::new(),
        stage: stage.start(),
        sid: String::new(),
        authenticated_at: 0,
        return_to: String::new(),
        persistent: false,
        created_at: 0,
        expires_at: 0,
    }
}

/// Where a session's stage continues.
pub(crate) fn stage_url(stage: StageKind) -> &'static str {
    match stage {
        StageKind::Password => "/signin/password",
        StageKind::ChangePassword => "/signin/update-password",
        StageKind::Register | StageKind::Add => "/signin/register",
        StageKind::Mfa | StageKind::Recover | StageKind::Reverify => "/signin/mfa",
        StageKind::Stay => "/signin/stay",
        StageKind::Done => "/my",
        StageKind::RecoverReset => "/recover/password",
    }
}

/// The session, if it is at one of `stages`; otherwise where to go instead.
pub(crate) fn at_stages(
    s: &Server,
    headers: &HeaderMap,
    stages: &[StageKind],
) -> Result<Result<WebSession, Redirect>, Error> {
    Ok(match load(s, headers)? {
        Some(session) if stages.contains(&session.stage.kind()) => Ok(session),
        Some(session) => Err(Redirect::to(stage_url(session.stage.kind()))),
        None => Err(Redirect::to("/signin")),
    })
}

/// The stages a page is shown at (see [`PageSession`]).
pub(crate) trait Stages {
    /// The stages.
    const AT: &'static [StageKind];
}

macro_rules! stages {
    ($($(#[$doc:meta])* $name:ident: $($kind:ident),+;)+) => {$(
        $(#[$doc])*
        pub(crate) struct $name;
        impl Stages for $name {
            const AT: &'static [StageKind] = &[$(StageKind::$kind),+];
        }
    )+};
}

stages! {
    /// Signed in.
    SignedIn: Done;
    /// The password step.
    PasswordStep: Password;
    /// A temporary password to replace.
    NewPasswordStep: ChangePassword;
    /// The "stay signed in?" question.
    StayStep: Stay;
    /// A new password after recovery.
    ResetStep: RecoverReset;
    /// Proving a second factor: at sign-in, for recovery, or again before
    /// changing methods.
    ProofSteps: Mfa, Recover, Reverify;
    /// Registering methods: the first ones, or one more.
    RegistrationSteps: Register, Add;
    /// Registering the first methods.
    FirstRegistration: Register;
}

/// The browser session of a page shown at the stages `S`, loaded under
/// [`second_factor_rule`]; a session elsewhere is sent where it is, and a
/// browser without one to sign-in. No CSRF check: a GET page only shows,
/// or reuses what its session already started (a pending push, the
/// questions drawn); the cookie is `SameSite=Lax`.
pub(crate) struct PageSession<S>(pub(crate) WebSession, pub(crate) PhantomData<S>);

impl<S: Stages> FromRequestParts<Arc<Server>> for PageSession<S> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &Arc<Server>) -> Result<Self, Response> {
        match at_stages(s, &parts.headers, S::AT) {
            Ok(Ok(session)) => Ok(PageSession(session, PhantomData)),
            Ok(Err(redirect)) => Err(redirect.into_response()),
            Err(e) => Err(ApiError::from(e).into_response()),
        }
    }
}

pub(crate) fn forbidden(s: &Server) -> Response {
    let body = views::info(
        "Request refused",
        &["This form expired or did not come from this site. Start again."],
    );
    (StatusCode::FORBIDDEN, html(s, "Request refused", body)).into_response()
}

/// A form posted in a browser session: the session loaded under
/// [`second_factor_rule`] and the form's CSRF token checked, here and
/// nowhere else; the fields typed (`F`). A handler takes it with [`at!`].
pub(crate) struct Posted<F> {
    session: Option<WebSession>,
    form: F,
    csrf_ok: bool,
    /// For the "Request refused" page, drawn only when it is the answer.
    server: Arc<Server>,
}

/// The fields every posted form carries, and the handler's own.
#[derive(Deserialize)]
struct Signed<F> {
    #[serde(default)]
    csrf: String,
    #[serde(flatten)]
    form: F,
}

impl<F: DeserializeOwned + Send> FromRequest<Arc<Server>> for Posted<F> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &Arc<Server>) -> Result<Self, Response> {
        let session = load(s, req.headers()).map_err(|e| ApiError::from(e).into_response())?;
        let PageForm(signed) = PageForm::<Signed<F>>::from_request(req, s).await?;
        let csrf_ok = !signed.csrf.is_empty()
            && session.as_ref().is_some_and(|session| {
                countersign_core::secret::constant_time_eq(
                    signed.csrf.as_bytes(),
                    session.csrf.as_bytes(),
                )
            });
        Ok(Posted {
            session,
            form: signed.form,
            csrf_ok,
            server: s.clone(),
        })
    }
}

impl<F> Posted<F> {
    /// The session and the form if the session is at one of `stages` and
    /// the form came from it; otherwise the answer: where the session is,
    /// or "Request refused".
    pub(crate) fn at(self, stages: &[StageKind]) -> Result<(WebSession, F), Box<Response>> {
        match self.session {
            None => Err(Box::new(Redirect::to("/signin").into_response())),
            Some(session) if !stages.contains(&session.stage.kind()) => Err(Box::new(
                Redirect::to(stage_url(session.stage.kind())).into_response(),
            )),
            Some(_) if !self.csrf_ok => Err(Box::new(forbidden(&self.server))),
            Some(session) => Ok((session, self.form)),
        }
    }
}

impl<F> Posted<F> {
    /// The session and the form at any stage (signing out), `None` without
    /// a session; "Request refused" when the form did not come from it.
    pub(crate) fn any_stage(self) -> Result<Option<(WebSession, F)>, Box<Response>> {
        match self.session {
            None => Ok(None),
            Some(_) if !self.csrf_ok => Err(Box::new(forbidden(&self.server))),
            Some(session) => Ok(Some((session, self.form))),
        }
    }
}

/// A posted form, as axum's `Form`; one that does not read gets the
/// "Request refused" page saying why, on every page alike (the steps
/// before a session through it, the later ones through [`Posted`]).
pub(crate) struct PageForm<F>(pub(crate) F);

impl<F: DeserializeOwned + Send> FromRequest<Arc<Server>> for PageForm<F> {
    type Rejection = Response;

    async fn from_request(req: Request, s: &Arc<Server>) -> Result<Self, Response> {
        let back = views::way_back(req.uri().path());
        match Form::<F>::from_request(req, s).await {
            Ok(Form(form)) => Ok(PageForm(form)),
            Err(e) => Err(unreadable(s, &e, back)),
        }
    }
}

/// A form that does not read (a field sent twice, more than a form may
/// hold), and why.
fn unreadable(
    s: &Server,
    e: &axum::extract::rejection::FormRejection,
    back: (&str, &str),
) -> Response {
    let (status, why) = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        let kib = crate::http::extract::MAX_BODY / 1024;
        let why = format!(
            "What was sent is more than a form may hold ({kib} KiB). Type less, and start again."
        );
        (StatusCode::PAYLOAD_TOO_LARGE, why)
    } else {
        let why = format!(
            "{} Start again.",
            crate::http::refusals::plainly(&e.body_text())
        );
        (StatusCode::BAD_REQUEST, why)
    };
    let body = views::info_back("Request refused", &[why.as_str()], back);
    (status, html(s, "Request refused", body)).into_response()
}

/// A form with no fields but its token.
#[derive(Deserialize)]
pub(crate) struct NoFields {}

/// A new password with its confirmation (and the current one, when the
/// officer changes it).
#[derive(Deserialize)]
pub(crate) struct NewPasswordForm {
    #[serde(default)]
    pub(crate) current: SecretField,
    #[serde(default)]
    pub(crate) new: SecretField,
    #[serde(default)]
    pub(crate) confirm: SecretField,
}

/// A form with a one-time code (an app code, a code sent to a phone).
#[derive(Deserialize)]
pub(crate) struct CodeForm {
    #[serde(default)]
    pub(crate) code: SecretField,
}

/// A form that sends a code: by `sms` (the default) or `voice`.
#[derive(Deserialize)]
pub(crate) struct SendForm {
    #[serde(default)]
    pub(crate) channel: String,
    /// The number, when registering a phone.
    #[serde(default)]
    pub(crate) phone: String,
}

/// A typed field holding a secret (a password, an answer), wiped when the
/// form is dropped.
pub(crate) type SecretField = zeroize::Zeroizing<String>;

/// The session and form of a [`Posted`] at one of the stages; otherwise
/// the handler answers with where to go instead.
macro_rules! at {
    ($posted:expr, $stages:expr) => {
        match $posted.at($stages) {
            Ok(ok) => ok,
            Err(answer) => return Ok(*answer),
        }
    };
}
