//! Registering security questions: five of twelve, each answered.

use super::*;
use crate::http::extract::ClientIp;
use crate::http::pages::views::{csrf, problems as problems_list};
use crate::http::pages::{authority, save, AppState, PageResult};
use crate::store::{Factor, FactorMethod};
use crate::{now, Error};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect};
use axum::Form;
use countersign_core::methods::{QUESTIONS_TO_REGISTER, SECURITY_QUESTIONS};
use maud::{html, Markup};
use std::collections::HashMap;

/// Five question pickers with answer fields, refilled after a problem.
pub(crate) fn questions_form(
    token: &str,
    problems: &[String],
    values: &HashMap<String, String>,
) -> Markup {
    let value = |k: String| values.get(&k).cloned().unwrap_or_default();
    html! {
        h2 { "Security questions" }
        p { "Choose " (QUESTIONS_TO_REGISTER) " questions and answer each. Answers are not case sensitive; choose answers only you know." }
        (problems_list(problems))
        form method="post" action="/signin/register/questions" {
            (csrf(token))
            @for i in 1..=QUESTIONS_TO_REGISTER {
                @let chosen = value(format!("q{i}"));
                fieldset {
                    legend { "Security question " (i) }
                    label for=(format!("q{i}")) { "Question" }
                    select id=(format!("q{i}")) name=(format!("q{i}")) required {
                        option value="" { "Select a question" }
                        @for (n, q) in SECURITY_QUESTIONS.iter().enumerate() {
                            option value=(n) selected[chosen == n.to_string()] { (q) }
                        }
                    }
                    label for=(format!("a{i}")) { "Answer" }
                    input id=(format!("a{i}")) type="text" name=(format!("a{i}")) autocomplete="off" required value=(value(format!("a{i}")));
                }
            }
            button type="submit" { "Done" }
        }
    }
}

pub(crate) async fn questions_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    let mut chosen = Vec::new();
    let mut problems = Vec::new();
    for i in 1..=QUESTIONS_TO_REGISTER {
        let q = form
            .get(&format!("q{i}"))
            .map(String::as_str)
            .unwrap_or_default();
        let a = form.get(&format!("a{i}")).cloned().unwrap_or_default();
        match q.parse::<usize>() {
            Ok(q) => chosen.push((q, a)),
            Err(_) => problems.push(format!("Choose security question {i}.")),
        }
    }
    if problems.is_empty() {
        let (username, authority, ip) = (session.username.clone(), authority(&session), ip.clone());
        let registered = s
            .hashing(move |s| s.register_answers(&username, &chosen, authority, &ip, now()))
            .await;
        match registered {
            Ok(Ok(())) => {
                session.factor.get_or_insert(Factor {
                    method: FactorMethod::Questions,
                    at: now(),
                    by_registration: true,
                });
                save(&s, &session)?;
                return Ok(Redirect::to(next_url(&s, &mut session)?).into_response());
            }
            Ok(Err(p)) => problems.extend(p.iter().map(ToString::to_string)),
            Err(Error::Refused { .. }) => return Ok(methods_changed(&s, &mut session)?),
            Err(e) => return Err(e.into()),
        }
    }
    let m = s.methods(&session.username)?;
    let body = questions_form(&session.csrf, &problems, &form);
    wizard(&s, &session, &m, Kind::Questions, body)
        .map(|r| (StatusCode::UNPROCESSABLE_ENTITY, r).into_response())
}
