//! Registering the app: the QR code to scan, its activation followed live,
//! and the test push the new app must approve.

use super::*;
use crate::http::extract::ClientIp;
use crate::http::pages::views::csrf;
use crate::http::pages::{
    authority, challenge_status, current_or_new_challenge, refusal, save, session_row, AppState,
    PageResult,
};
use crate::http::pages::{NoFields, Posted};
use crate::http::pages::{PageSession, RegistrationSteps, Stages};
use crate::store::WebSession;
use crate::{now, Error, Server};
use axum::extract::State;
use axum::response::{IntoResponse, Redirect};
use axum::Json;
use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::ChallengeKind;
use maud::{html, Markup};

/// The QR code to scan; the session remembers its activation, whose use
/// proves the app (see [`super::second_factor_rule`]).
pub(crate) fn app_body(s: &Server, session: &mut WebSession) -> Result<Markup, Error> {
    let (enrollment, activation) = s.enrollment(
        &session.username,
        &session.username,
        authority(session),
        now(),
    )?;
    // Codes shown before (a reload shows a new one) may still be scanned.
    let Some(registering) = session.stage.registering() else {
        return Err(Error::Internal("QR code shown outside registration".into()));
    };
    let shown = &mut registering.shown;
    shown.push(activation);
    let keep = shown.len().saturating_sub(MAX_CODES_SHOWN);
    shown.drain(..keep);
    save(s, session)?;
    let payload = enrollment.to_uri();
    let png = crate::domain::activation::qr_png(&payload, 4)?;
    let data_url = format!(
        "data:image/png;base64,{}",
        data_encoding::BASE64.encode(&png)
    );
    Ok(html! {
        h2 { "Countersign app: scan the QR code" }
        p { "Use the Countersign app to scan the QR code. This will connect the app with your account." }
        img.qr src=(data_url) alt="QR code to enroll the Countersign app";
        details {
            summary { "Can't scan the image? Copy the link" }
            p.payload #payload { (payload) }
        }
        p #activation data-poll="/signin/register/status" data-next="/signin/register/test" aria-live="polite" {
            "Waiting for the app to connect…"
        }
        p.hint { "Don't have the Countersign app yet? Install it on your phone or laptop from your agency's software list and choose its passcode, then scan the code." }
        p { a href="/signin/register/test" { "Next" } }
        p { a href="/signin/register/other-app" { "I want to use a different authenticator app" } }
    })
}

pub(crate) async fn app_status(
    State(s): AppState,
    PageSession(session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    let activated = s.methods(&session.username)?.app;
    Ok(Json(serde_json::json!({ "activated": activated })).into_response())
}

pub(crate) async fn app_test(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    PageSession(mut session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    if !s.methods(&session.username)?.app {
        return Ok(Redirect::to("/signin/register?method=app").into_response());
    }
    let (id, number) = match current_or_new_challenge(&s, &mut session, &ip, ChallengeKind::Test) {
        Ok(sent) => sent,
        Err(Error::Refused { code, message }) => {
            let body = not_approved(&session.csrf, &message);
            return Ok((refusal(code), step_page(&s, &session, body)).into_response());
        }
        Err(e) => return Err(e.into()),
    };
    Ok(step_page(
        &s,
        &session,
        html! {
            h2 { "Let's try it out" }
            p { "Approve the notification we're sending to your app by entering the number shown below." }
            p.number #challenge data-id=(id) data-next="/signin/register/done" aria-live="polite" { (number) }
        },
    ))
}

pub(crate) async fn app_approved(
    State(s): AppState,
    PageSession(session, _): PageSession<RegistrationSteps>,
) -> PageResult {
    // Not approved: say why, and send another only when asked (guide 001:
    // "you will receive an error. Click on the option to 'Resend
    // notification'").
    let message = match challenge_status(&s, &session)? {
        Some(ChallengeStatus::Approved) => None,
        Some(ChallengeStatus::Pending) | None => {
            return Ok(Redirect::to("/signin/register/test").into_response())
        }
        Some(ChallengeStatus::Expired) => Some(
            "We didn't receive a response. The notification expired before the number was entered.",
        ),
        Some(ChallengeStatus::NumberMismatch) => {
            Some("The number entered in the app didn't match.")
        }
        Some(ChallengeStatus::Denied | ChallengeStatus::Reported) => {
            Some("The notification was denied in the app.")
        }
    };
    if let Some(message) = message {
        let body = not_approved(&session.csrf, message);
        return Ok(step_page(&s, &session, body));
    }
    Ok(step_page(
        &s,
        &session,
        html! {
            p.ok role="status" { "Notification approved" }
            p { "Success! You have set up your Countersign app as a sign-in method." }
            form method="post" action="/signin/register/finish" {
                (csrf(&session.csrf))
                button type="submit" { "Next" }
            }
        },
    ))
}

/// The test push was not approved: what happened, and "Resend
/// notification".
fn not_approved(token: &str, message: &str) -> Markup {
    html! {
        h2 { "Let's try it out" }
        p.error role="alert" { (message) }
        form method="post" action="/signin/register/resend" {
            (csrf(token))
            button type="submit" { "Resend notification" }
        }
    }
}

/// "Resend notification": a new test push.
pub(crate) async fn app_resend(State(s): AppState, posted: Posted<NoFields>) -> PageResult {
    let (mut session, _form) = at!(posted, RegistrationSteps::AT);
    session.stage.forget_push();
    save(&s, &session)?;
    Ok(Redirect::to("/signin/register/test").into_response())
}

pub(crate) async fn app_finish(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NoFields>,
) -> PageResult {
    let (mut session, _form) = at!(posted, RegistrationSteps::AT);
    if challenge_status(&s, &session)? != Some(ChallengeStatus::Approved) {
        return Ok(Redirect::to("/signin/register/test").into_response());
    }
    session.stage.forget_push();
    let saved = s.write(now(), |w| {
        let saved = w.update_session(&session)?;
        if saved {
            w.audit(&session_row(&session, "signin.register", &ip, "app"))?;
        }
        Ok(saved)
    })?;
    if !saved {
        return Ok(Redirect::to("/signin").into_response());
    }
    Ok(Redirect::to(next_url(&s, &mut session)?).into_response())
}
