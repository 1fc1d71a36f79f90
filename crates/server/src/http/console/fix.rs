//! A help-desk fix posted from a user's page: applied with its reason,
//! and a password reset's new temporary password shown once.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect};
use maud::html;
use serde::Deserialize;

use super::{console, refused};
use crate::domain::helpdesk::{Fix, Staff};
use crate::http::extract::ClientIp;
use crate::http::pages::Posted;
use crate::http::pages::{AppState, PageResult};
use crate::store::StageKind;
use crate::{now, Server};

/// A fix from the user's page: `action`, and what it needs.
#[derive(Deserialize)]
pub(super) struct FixForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    hours: String,
    #[serde(default)]
    reason: String,
    device: Option<String>,
}

pub(super) async fn post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    Path(username): Path<String>,
    posted: Posted<FixForm>,
) -> PageResult {
    let (session, mut me, form) = staff_form!(s, posted);
    let user = s.user(&username)?;
    let action = form.action.as_str();
    let hours = form.hours.trim().parse().ok();
    let reason = form.reason.as_str();
    // A password reset hashes the new one (Argon2id) on the hashing
    // threads, as sign-ins do, and commits here once that is done: if the
    // browser left while it waited, this request is dropped at the wait
    // and the password stays as it was. Other fixes run in place.
    let fix = Fix::parse(action, form.device.as_deref(), hours);
    let prepared = match fix {
        Ok(Fix::ResetPassword) => {
            let (who, why, from) = (username.clone(), reason.to_string(), ip.clone());
            let (by, role) = (me.username.clone(), me.role);
            let prepare = move |s: &Server| {
                let staff = Staff { name: &by, role };
                s.prepare_fix(&who, Fix::ResetPassword, staff, (&why, &from), now())
            };
            let prepared = s.hashing(prepare).await;
            // The staff member and their session as they are now, after
            // the wait: one signed out, demoted or disabled meanwhile
            // applies nothing.
            let now_session = s.store.session(&session.id_hash, now())?;
            let Some(now_session) = now_session.filter(|n| n.stage.kind() == StageKind::Done)
            else {
                return Ok(Redirect::to("/signin").into_response());
            };
            me = match super::staff_of(&s, now_session)? {
                Ok((_, me)) => me,
                Err(answer) => return Ok(answer),
            };
            Some(prepared)
        }
        _ => None,
    };
    let staff = Staff::of(&me);
    let outcome = match (fix, prepared) {
        (_, Some(prepared)) => {
            prepared.and_then(|p| s.apply_prepared_fix(p, staff, reason, &ip, now()))
        }
        (Ok(fix), None) => s.apply_fix(&username, &fix, staff, reason, &ip, now()),
        (Err(e), None) => Err(e),
    };
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
        Err(e) => refused(&s, &session, &me, &user, e),
    }
}
