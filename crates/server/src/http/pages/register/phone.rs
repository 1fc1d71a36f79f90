//! Registering a phone: the number, a code sent by text or call, and its
//! check. The code form and sending are shared with the sign-in proof.

use super::*;
use crate::domain::methods::Purpose;
use crate::http::extract::ClientIp;
use crate::http::pages::views::{csrf, error};
use crate::http::pages::{authority, refusal, save, AppState, PageResult};
use crate::http::pages::{CodeForm, Posted, SendForm};
use crate::http::pages::{PageSession, RegistrationSteps, Stages};
use crate::infra::telephony::Channel;
use crate::store::{Factor, FactorMethod, WebSession};
use crate::{now, Error, Server};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use countersign_core::methods::PhoneNumber;
use maud::{html, Markup};

pub(crate) fn phone_form(
    token: &str,
    message: Option<&str>,
    number: &str,
    channel: Channel,
) -> Markup {
    html! {
        h2 { "Phone" }
        p { "You can prove who you are by answering a call on your phone or receiving a code on your phone." }
        (error(message))
        form method="post" action="/signin/register/phone" {
            (csrf(token))
            label for="phone" { "Cell phone number" }
            input #phone type="tel" name="phone" autocomplete="tel" required value=(number) placeholder="(205) 555-0123";
            fieldset {
                legend { "How should we reach you?" }
                label { input type="radio" name="channel" value="sms" checked[channel == Channel::Sms]; " Receive a code" }
                label { input type="radio" name="channel" value="voice" checked[channel == Channel::Voice]; " Call me" }
            }
            p.hint { "Do not use a landline telephone number. The number you provide will be used for both text and voice calls for future sign-ins and password resets. Message and data rates may apply." }
            button type="submit" { "Next" }
        }
    }
}

pub(crate) async fn phone_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<SendForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, RegistrationSteps::AT);
    let m = s.methods(&session.username)?;
    let typed = form.phone.as_str();
    let channel = channel_of(&form.channel);
    let refuse = |session: &WebSession, status: StatusCode, message: &str| {
        let body = phone_form(&session.csrf, Some(message), typed, channel);
        wizard(&s, session, &m, Kind::Phone, body).map(|r| (status, r).into_response())
    };
    let number = match PhoneNumber::parse(typed) {
        Ok(n) => n,
        Err(e) => {
            let problem = match &e {
                countersign_core::Error::Field { problem, .. } => problem.to_string(),
                other => other.to_string(),
            };
            let message = format!("That phone number can't be used: {problem}.");
            return refuse(&session, StatusCode::UNPROCESSABLE_ENTITY, &message);
        }
    };
    match send_code(
        &s,
        &mut session,
        Some(&number),
        channel,
        Purpose::Register,
        &ip,
    )
    .await?
    {
        Ok(()) => Ok(Redirect::to("/signin/register/phone/verify").into_response()),
        Err((status, message)) => refuse(&session, status, &message),
    }
}

/// The channel a form asks for: a text unless it says a call.
pub(crate) fn channel_of(asked: &str) -> Channel {
    Channel::parse(asked).unwrap_or(Channel::Sms)
}

/// Sends a code to `session`'s account (to `number`, or the registered
/// phone) and makes it the step in progress. A refusal comes back as the
/// status and message to show on the page.
pub(crate) async fn send_code(
    s: &Server,
    session: &mut WebSession,
    number: Option<&PhoneNumber>,
    channel: Channel,
    purpose: Purpose,
    ip: &str,
) -> Result<Result<(), (StatusCode, String)>, Error> {
    let sent = s
        .send_phone_code(&session.username, number, channel, purpose, ip, now())
        .await;
    match sent {
        Ok(id) => {
            let Some(slot) = session.stage.phone_code_slot() else {
                return Err(Error::Internal("code sent outside a step".into()));
            };
            *slot = Some(id);
            save(s, session)?;
            Ok(Ok(()))
        }
        Err(Error::Refused { code, message }) => Ok(Err((refusal(code), message))),
        Err(e) => Err(e),
    }
}

/// The form for the code just sent, for registration and sign-in alike.
pub fn code_form(
    token: &str,
    action: &str,
    sent_to: &str,
    channel: &str,
    message: Option<&str>,
) -> Markup {
    html! {
        @if channel == "voice" {
            p { "We're calling " (sent_to) " now. Enter the code the call reads to you." }
        } @else {
            p { "We just sent a 6 digit code to " (sent_to) ". Enter the code below." }
        }
        (error(message))
        form method="post" action=(action) {
            (csrf(token))
            label for="code" { "Code" }
            input #code type="text" name="code" inputmode="numeric" autocomplete="one-time-code" autofocus required maxlength="6";
            button type="submit" { "Next" }
        }
    }
}

/// A code the session waits for.
pub(crate) struct SentCode {
    /// Its id, to check what is typed against.
    pub id: String,
    /// The number it went to, masked.
    pub to: String,
    /// `sms` or `voice`.
    pub channel: String,
}

impl SentCode {
    /// The factor that entering this code proves.
    pub fn factor(&self) -> FactorMethod {
        if self.channel == "voice" {
            FactorMethod::Voice
        } else {
            FactorMethod::Sms
        }
    }
}

/// What a code typed for the session's sent code came to.
pub(crate) enum Typed {
    /// No code was sent in this step (or it is gone).
    NoCode,
    /// The right code: the number it went to.
    Right(SentCode, String),
    /// Not accepted: the answer's status and what to tell the officer.
    Wrong(SentCode, StatusCode, String),
}

/// Checks `code` against the code the session waits for, for registration
/// and sign-in alike.
pub(crate) fn check_typed(
    s: &Server,
    session: &WebSession,
    code: &str,
    purpose: Purpose,
    ip: &str,
) -> Result<Typed, Error> {
    let Some(sent) = pending_code(s, session)? else {
        return Ok(Typed::NoCode);
    };
    Ok(
        match s.check_phone_code(&session.username, &sent.id, code, purpose, ip, now()) {
            Ok(Some(number)) => Typed::Right(sent, number),
            Ok(None) => Typed::Wrong(
                sent,
                StatusCode::UNAUTHORIZED,
                "That code didn't work. Check the code and try again.".into(),
            ),
            Err(Error::Refused { code, message }) => Typed::Wrong(sent, refusal(code), message),
            Err(e) => return Err(e),
        },
    )
}

/// The code the session waits for, if any.
pub(crate) fn pending_code(s: &Server, session: &WebSession) -> Result<Option<SentCode>, Error> {
    let Some(id) = session.stage.phone_code() else {
        return Ok(None);
    };
    Ok(s.store.phone_code(id)?.map(|c| SentCode {
        id: id.to_string(),
        to: countersign_core::methods::mask(&c.number),
        channel: c.channel,
    }))
}

pub(crate) async fn phone_verify_page(
    State(s): AppState,
    PageSession(session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    let Some(sent) = pending_code(&s, &session)? else {
        return Ok(Redirect::to("/signin/register?method=phone").into_response());
    };
    let m = s.methods(&session.username)?;
    wizard(
        &s,
        &session,
        &m,
        Kind::Phone,
        verify_body(&session, &sent.to, &sent.channel, None),
    )
}

/// The code step of registering a phone.
pub(crate) fn verify_body(
    session: &WebSession,
    to: &str,
    channel: &str,
    message: Option<&str>,
) -> Markup {
    html! {
        h2 { "Phone" }
        (code_form(&session.csrf, "/signin/register/phone/verify", to, channel, message))
        p { a href="/signin/register?method=phone" { "Resend code" } }
    }
}

pub(crate) async fn phone_verify_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<CodeForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, RegistrationSteps::AT);
    let typed = check_typed(&s, &session, &form.code, Purpose::Register, &ip)?;
    match typed {
        Typed::NoCode => Ok(Redirect::to("/signin/register?method=phone").into_response()),
        Typed::Wrong(sent, status, message) => {
            let m = s.methods(&session.username)?;
            let body = verify_body(&session, &sent.to, &sent.channel, Some(&message));
            Ok((status, wizard(&s, &session, &m, Kind::Phone, body)?).into_response())
        }
        Typed::Right(sent, number) => {
            match s.register_phone(&session.username, &number, authority(&session), &ip, now()) {
                Ok(()) => {}
                Err(Error::Refused { .. }) => return Ok(methods_changed(&s, &mut session)?),
                Err(e) => return Err(e.into()),
            }
            if let Some(slot) = session.stage.phone_code_slot() {
                *slot = None;
            }
            if session.stage.factor().is_none() {
                session.stage.prove(Factor {
                    method: sent.factor(),
                    at: now(),
                    by_registration: true,
                });
            }
            save(&s, &session)?;
            let next = next_url(&s, &mut session)?;
            Ok(step_page(
                &s,
                &session,
                html! {
                    p.ok role="status" { "Verification complete. Your phone has been registered." }
                    p { a.button href=(next) { "Next" } }
                },
            ))
        }
    }
}
