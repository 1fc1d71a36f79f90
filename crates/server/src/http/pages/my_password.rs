//! "Change password" on "My sign-ins": the officer's own change, with the
//! current password and every rule (composition, history, once in 24
//! hours), each broken one named. It ends the officer's other sessions.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use maud::{html, Markup};

use super::views::{new_password_form, problems};
use super::{account, html as page, AppState, NewPasswordForm, PageResult, Posted};
use crate::http::extract::ClientIp;
use crate::http::pages::{PageSession, SignedIn};
use crate::store::StageKind;
use crate::{now, Error};

fn form(token: &str, who: &str, violations: &[String]) -> Markup {
    html! {
        p.account { (who) }
        h1 { "Change password" }
        p { "You can change your password once in 24 hours. Signing in elsewhere with the old password stops working." }
        (problems(violations))
        (new_password_form(token, "/my/password", "Change password"))
        p { a href="/my" { "Cancel" } }
    }
}

pub(crate) async fn password_page(
    State(s): AppState,
    PageSession(session, _): PageSession<SignedIn>,
) -> PageResult {
    let who = account(&s, &session.username);
    Ok(page(&s, "Change password", form(&session.csrf, &who, &[])))
}

pub(crate) async fn password_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<NewPasswordForm>,
) -> PageResult {
    let (session, f) = at!(posted, &[StageKind::Done]);
    let (username, id) = (session.username.clone(), session.id_hash.clone());
    let changed = s
        .hashing(move |s| {
            s.change_password_in(
                &username,
                &f.current,
                &f.new,
                &f.confirm,
                Some(&id),
                &ip,
                now(),
            )
        })
        .await;
    let who = account(&s, &session.username);
    match changed {
        Ok(Ok(())) => Ok(page(
            &s,
            "Password changed",
            html! {
                p.account { (who) }
                h1 { "Password changed" }
                p.ok role="status" { "Your password was changed. Your other sessions were signed out." }
                p { a.button href="/my" { "Back to My sign-ins" } }
            },
        )),
        Ok(Err(violations)) => {
            let messages: Vec<String> = violations.iter().map(ToString::to_string).collect();
            let body = form(&session.csrf, &who, &messages);
            Ok((
                StatusCode::UNPROCESSABLE_ENTITY,
                page(&s, "Change password", body),
            )
                .into_response())
        }
        Err(Error::Refused { code, message }) => {
            let body = form(&session.csrf, &who, &[message]);
            Ok((super::refusal(code), page(&s, "Change password", body)).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
