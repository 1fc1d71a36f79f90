//! Registering security questions: five of twelve, each answered.

use super::*;
use crate::http::extract::ClientIp;
use crate::http::pages::views::{csrf, problems as problems_list};
use crate::http::pages::{authority, save, AppState, PageResult};
use crate::http::pages::{Posted, SecretField};
use crate::http::pages::{RegistrationSteps, Stages};
use crate::store::{Factor, FactorMethod};
use crate::{now, Error};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use countersign_core::methods::{QUESTIONS_TO_REGISTER, SECURITY_QUESTIONS};
use maud::{html, Markup};
use serde::Deserialize;

/// The five chosen questions (`q1`..`q5`, by number) and their answers
/// (`a1`..`a5`).
#[derive(Default, Deserialize)]
pub(crate) struct QuestionsForm {
    #[serde(default)]
    q1: String,
    #[serde(default)]
    q2: String,
    #[serde(default)]
    q3: String,
    #[serde(default)]
    q4: String,
    #[serde(default)]
    q5: String,
    #[serde(default)]
    a1: SecretField,
    #[serde(default)]
    a2: SecretField,
    #[serde(default)]
    a3: SecretField,
    #[serde(default)]
    a4: SecretField,
    #[serde(default)]
    a5: SecretField,
}

impl QuestionsForm {
    /// Question and answer `i` (1–5) as typed.
    fn pair(&self, i: usize) -> (&str, &str) {
        let (q, a) = match i {
            1 => (&self.q1, &self.a1),
            2 => (&self.q2, &self.a2),
            3 => (&self.q3, &self.a3),
            4 => (&self.q4, &self.a4),
            _ => (&self.q5, &self.a5),
        };
        (q, a)
    }
}

/// Five question pickers with answer fields, refilled after a problem.
pub(crate) fn questions_form(token: &str, problems: &[String], values: &QuestionsForm) -> Markup {
    html! {
        h2 { "Security Questions" }
        p { "Choose " (QUESTIONS_TO_REGISTER) " questions and answer each. Answers are not case sensitive; choose answers only you know." }
        (problems_list(problems))
        form method="post" action="/signin/register/questions" {
            (csrf(token))
            @for i in 1..=QUESTIONS_TO_REGISTER {
                @let (chosen, answer) = values.pair(i);
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
                    input id=(format!("a{i}")) type="text" name=(format!("a{i}")) autocomplete="off" required value=(answer);
                }
            }
            button type="submit" { "Done" }
        }
    }
}

pub(crate) async fn questions_post(
    State(s): AppState,
    ClientIp(ip): ClientIp,
    posted: Posted<QuestionsForm>,
) -> PageResult {
    let (mut session, form) = at!(posted, RegistrationSteps::AT);
    let mut chosen = Vec::new();
    let mut problems = Vec::new();
    for i in 1..=QUESTIONS_TO_REGISTER {
        let (q, a) = form.pair(i);
        match q.parse::<usize>() {
            Ok(q) => chosen.push((q, a.to_string())),
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
                if session.stage.factor().is_none() {
                    session.stage.prove(Factor {
                        method: FactorMethod::Questions,
                        at: now(),
                        by_registration: true,
                    });
                }
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
