//! The browser session behind the pages: loading it from the cookie under
//! the one rule no page can skip (a second factor before acting for the
//! account), issuing it under a fresh id at each gain in privilege, the
//! stage each page serves, and the CSRF check of every form.

use super::*;
use crate::domain::methods::Authority;
use crate::domain::sha256;
use crate::http::extract::{session_id_hash, SESSION_COOKIE as COOKIE};
use crate::store::Stage;
use crate::store::{Factor, FactorMethod, Pending, WebSession};
use crate::{now, Error, Server};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use ring::rand::SecureRandom;
use std::collections::HashMap;

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
    if session.factor.is_some() || !session.stage.acts_for_account() {
        return Ok(());
    }
    let user = s.user(&session.username)?;
    if s.store.methods_of(user.id)?.count() == 0 {
        return Ok(());
    }
    if let Pending::Enrollment(ids) = &session.pending {
        let mut used = None;
        for id in ids {
            let activation = s.store.activation(id)?.filter(|a| a.user_id == user.id);
            used = used.or(activation.and_then(|a| a.used_at));
        }
        if let Some(at) = used {
            session.factor = Some(Factor {
                method: FactorMethod::App,
                at,
                by_registration: true,
            });
            session.pending = Pending::Nothing;
            return save(s, session);
        }
    }
    back_to_proof(s, session)
}

/// Stores the session's new state.
pub(crate) fn save(s: &Server, session: &WebSession) -> Result<(), Error> {
    s.write(now(), |w| w.save_session(session))
}

/// Ends the session whose id hashes to `id_hash`.
pub(crate) fn end(s: &Server, id_hash: &[u8]) -> Result<(), Error> {
    s.write(now(), |w| w.delete_session(id_hash))
}

/// Sends a session back to proving a second factor.
pub(crate) fn back_to_proof(s: &Server, session: &mut WebSession) -> Result<(), Error> {
    session.stage = Stage::Mfa;
    session.pending = Pending::Nothing;
    session.challenge_id.clear();
    save(s, session)
}

/// The authority a session changes methods on: see [`second_factor_rule`].
pub(crate) fn authority(session: &WebSession) -> Authority {
    if session.factor.is_some() {
        Authority::Proven
    } else {
        Authority::FirstMethod
    }
}

pub(crate) fn random_token(s: &Server) -> Result<String, Error> {
    let mut b = [0u8; 32];
    s.rng
        .fill(&mut b)
        .map_err(|_| Error::Internal("random generator failed".into()))?;
    Ok(data_encoding::BASE64URL_NOPAD.encode(&b))
}

/// Stores `session` under a fresh id (and CSRF token); returns the cookie.
/// Used for new sessions and at every privilege change.
pub(crate) fn issue(
    s: &Server,
    session: &mut WebSession,
    old: Option<&[u8]>,
) -> Result<String, Error> {
    if let Some(old) = old {
        end(s, old)?;
    }
    let id = random_token(s)?;
    session.id_hash = sha256(id.as_bytes()).to_vec();
    session.csrf = random_token(s)?;
    let t = now();
    let lifetime = if session.persistent {
        s.config.web.stay_signed_in_days * 86_400
    } else {
        s.config.web.session_minutes * 60
    };
    session.created_at = t;
    session.expires_at = t + lifetime;
    save(s, session)?;
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

pub(crate) fn fresh(stage: Stage) -> WebSession {
    WebSession {
        id_hash: Vec::new(),
        csrf: String::new(),
        username: String::new(),
        stage,
        challenge_id: String::new(),
        return_to: String::new(),
        persistent: false,
        created_at: 0,
        expires_at: 0,
        pending: Pending::Nothing,
        factor: None,
    }
}

/// Where a session's stage continues.
pub(crate) fn stage_url(stage: Stage) -> &'static str {
    match stage {
        Stage::Password => "/signin/password",
        Stage::ChangePassword => "/signin/update-password",
        Stage::Register | Stage::Add => "/signin/register",
        Stage::Mfa | Stage::Recover => "/signin/mfa",
        Stage::Stay => "/signin/stay",
        Stage::Done => "/my",
        Stage::RecoverReset => "/recover/password",
    }
}

/// The session, if it is at one of `stages`; otherwise where to go instead.
pub(crate) fn at_stages(
    s: &Server,
    headers: &HeaderMap,
    stages: &[Stage],
) -> Result<Result<WebSession, Redirect>, Error> {
    Ok(match load(s, headers)? {
        Some(session) if stages.contains(&session.stage) => Ok(session),
        Some(session) => Err(Redirect::to(stage_url(session.stage))),
        None => Err(Redirect::to("/signin")),
    })
}

pub(crate) fn csrf_ok(session: &WebSession, form: &HashMap<String, String>) -> bool {
    form.get("csrf").is_some_and(|t| {
        countersign_core::secret::constant_time_eq(t.as_bytes(), session.csrf.as_bytes())
    })
}

pub(crate) fn forbidden(s: &Server) -> Response {
    let body = views::info(
        "Request refused",
        &["This form expired or did not come from this site. Start again."],
    );
    (StatusCode::FORBIDDEN, html(s, "Request refused", body)).into_response()
}

/// The session, if it is at one of the stages; otherwise the handler
/// answers with a redirect to where the session is.
macro_rules! stage {
    ($s:expr, $headers:expr, $stages:expr) => {
        match $crate::http::pages::at_stages(&$s, &$headers, $stages)? {
            Ok(session) => session,
            Err(redirect) => return Ok(redirect.into_response()),
        }
    };
}

/// [`stage!`] for a form post: also refuses a missing or wrong CSRF token.
macro_rules! stage_form {
    ($s:expr, $headers:expr, $stages:expr, $form:expr) => {{
        let session = stage!($s, $headers, $stages);
        if !$crate::http::pages::csrf_ok(&session, &$form) {
            return Ok($crate::http::pages::forbidden(&$s));
        }
        session
    }};
}
