//! "Keep your account secure": registering sign-in methods. Two are
//! required out of the Countersign app, a phone (code by text or call) and
//! five security questions; the app is offered first, "I want to set up a
//! different method" switches. The same pages add a missing method from
//! "My sign-ins" (stage `add`), which returns there when done.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use countersign_core::api::ChallengeStatus;
use countersign_core::methods::{PhoneNumber, QUESTIONS_TO_REGISTER, SECURITY_QUESTIONS};
use countersign_core::protocol::ChallengeKind;
use maud::{html, Markup};
use serde::Deserialize;

use super::views::{csrf, error, info, problems as problems_list};
use super::{
    account, advance, audit, authority, challenge_status, current_or_new_challenge, html as page,
    refusal, save, session_row, AppState, PageResult,
};
use crate::domain::methods::Purpose;
use crate::http::extract::ClientIp;
use crate::infra::telephony::Channel;
use crate::store::Stage;
use crate::store::{Factor, FactorMethod, Methods, Pending, WebSession};
use crate::{now, Error, Server};

/// Activation codes a session remembers (the QR codes it showed).
const MAX_CODES_SHOWN: usize = 5;

/// Methods an account needs.
const REQUIRED: usize = 2;

const TITLE: &str = "Keep your account secure";

/// The registration routes.
pub fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/signin/register", get(register_page))
        .route("/signin/register/choose", get(choose_page))
        .route("/signin/register/other-app", get(other_app_page))
        .route("/signin/register/status", get(app_status))
        .route("/signin/register/test", get(app_test))
        .route("/signin/register/done", get(app_approved))
        .route("/signin/register/finish", post(app_finish))
        .route("/signin/register/phone", post(phone_post))
        .route(
            "/signin/register/phone/verify",
            get(phone_verify_page).post(phone_verify_post),
        )
        .route("/signin/register/questions", post(questions_post))
        .route(
            "/signin/register/complete",
            get(complete_page).post(complete_post),
        )
        .route("/signin/register/skip", post(skip_post))
}

/// The stages these pages serve.
const STAGES: &[Stage] = &[Stage::Register, Stage::Add];

/// A method kind as the wizard names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    App,
    Phone,
    Questions,
}

impl Kind {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(Kind::App),
            "phone" => Some(Kind::Phone),
            "questions" => Some(Kind::Questions),
            _ => None,
        }
    }

    fn key(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Phone => "phone",
            Kind::Questions => "questions",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Kind::App => "Countersign app",
            Kind::Phone => "Phone",
            Kind::Questions => "Security questions",
        }
    }

    fn registered(self, m: &Methods) -> bool {
        match self {
            Kind::App => m.app,
            Kind::Phone => m.phone.is_some(),
            Kind::Questions => !m.questions.is_empty(),
        }
    }
}

const KINDS: [Kind; 3] = [Kind::App, Kind::Phone, Kind::Questions];

/// Where registration goes on after a method was added: the next method,
/// the end, or back to "My sign-ins" (which ends the `add` stage).
fn next_url(s: &Server, session: &mut WebSession) -> Result<&'static str, Error> {
    let m = s.methods(&session.username)?;
    Ok(if session.stage == Stage::Add {
        session.stage = Stage::Done;
        save(s, session)?;
        "/my?added=1"
    } else if m.count() >= REQUIRED {
        "/signin/register/complete"
    } else {
        "/signin/register"
    })
}

#[derive(Deserialize)]
struct MethodQuery {
    method: Option<String>,
}

async fn register_page(
    State(s): AppState,
    headers: HeaderMap,
    Query(q): Query<MethodQuery>,
) -> PageResult {
    let mut session = stage!(s, headers, STAGES);
    let m = s.methods(&session.username)?;
    if session.stage == Stage::Register && m.count() >= REQUIRED {
        return Ok(Redirect::to("/signin/register/complete").into_response());
    }
    let asked = q.method.as_deref().and_then(Kind::parse);
    let kind = match asked {
        Some(k) if !k.registered(&m) => k,
        _ => match KINDS.into_iter().find(|k| !k.registered(&m)) {
            Some(k) => k,
            None => return Ok(Redirect::to("/signin/register/complete").into_response()),
        },
    };
    let body = match kind {
        Kind::App => app_body(&s, &mut session)?,
        Kind::Phone => phone_form(&session.csrf, None, "", Channel::Sms),
        Kind::Questions => questions_form(&session.csrf, &[], &HashMap::new()),
    };
    wizard(&s, &session, &m, kind, body)
}

/// The frame of every wizard page: progress, the method's form, the way
/// to another method and "Skip setup".
fn wizard(s: &Server, session: &WebSession, m: &Methods, kind: Kind, body: Markup) -> PageResult {
    let user = s.user(&session.username)?;
    let skip = (session.stage == Stage::Register)
        .then(|| s.skip_setup_left(&user, now()))
        .flatten()
        .map(|secs| secs.div_ceil(3600));
    let step = (m.count() + 1).min(REQUIRED);
    let markup = html! {
        p.account { (account(s, &session.username)) }
        h1 { (TITLE) }
        @if session.stage == Stage::Register {
            p { "Your organization requires you to set up the following methods of proving who you are." }
            p.progress { "Method " (step) " of " (REQUIRED) ": " (kind.label()) }
        }
        (body)
        p { a href="/signin/register/choose" { "I want to set up a different method" } }
        @if let Some(hours) = skip {
            form method="post" action="/signin/register/skip" {
                (csrf(&session.csrf))
                p { "You can postpone this for " (hours) " more hour(s). After that, you must set up your methods to sign in." }
                button.secondary type="submit" { "Skip setup" }
            }
        }
        @if session.stage == Stage::Add { p { a href="/my" { "Cancel" } } }
    };
    Ok(page(s, TITLE, markup))
}

async fn choose_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, STAGES);
    let m = s.methods(&session.username)?;
    let open: Vec<Kind> = KINDS.into_iter().filter(|k| !k.registered(&m)).collect();
    let markup = html! {
        p.account { (account(&s, &session.username)) }
        h1 { "Choose a different method" }
        form method="get" action="/signin/register" {
            label for="method" { "Which method would you like to use?" }
            select #method name="method" {
                @for k in &open { option value=(k.key()) { (k.label()) } }
            }
            button type="submit" { "Confirm" }
        }
        p { a href="/signin/register" { "Cancel" } }
    };
    Ok(page(&s, "Choose a different method", markup))
}

async fn other_app_page(State(s): AppState) -> Response {
    page(
        &s,
        TITLE,
        html! {
            h1 { (TITLE) }
            p.error role="alert" { "Other authenticator apps are not supported. Use the Countersign app, a phone, or security questions." }
            p { a href="/signin/register" { "Back" } }
        },
    )
}

// --- The app -------------------------------------------------------------

/// The QR code to scan; the session remembers its activation, whose use
/// proves the app (see [`super::second_factor_rule`]).
fn app_body(s: &Server, session: &mut WebSession) -> Result<Markup, Error> {
    let (enrollment, activation) = s.enrollment(
        &session.username,
        &session.username,
        authority(session),
        now(),
    )?;
    // Codes shown before (a reload shows a new one) may still be scanned.
    let mut shown = match std::mem::take(&mut session.pending) {
        Pending::Enrollment(ids) => ids,
        _ => Vec::new(),
    };
    shown.push(activation);
    let keep = shown.len().saturating_sub(MAX_CODES_SHOWN);
    shown.drain(..keep);
    session.pending = Pending::Enrollment(shown);
    save(s, session)?;
    let payload = enrollment.to_uri();
    let code =
        qrcode::QrCode::new(payload.as_bytes()).map_err(|e| Error::Internal(e.to_string()))?;
    let img = code
        .render::<image::Luma<u8>>()
        .module_dimensions(4, 4)
        .build();
    let mut png = Vec::new();
    image::DynamicImage::ImageLuma8(img)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::Internal(e.to_string()))?;
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
        p { a href="/signin/register/test" { "Next" } }
        p { a href="/signin/register/other-app" { "I want to use a different authenticator app" } }
    })
}

async fn app_status(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, STAGES);
    let activated = s.methods(&session.username)?.app;
    Ok(Json(serde_json::json!({ "activated": activated })).into_response())
}

async fn app_test(State(s): AppState, headers: HeaderMap, ClientIp(ip): ClientIp) -> PageResult {
    let mut session = stage!(s, headers, STAGES);
    if !s.methods(&session.username)?.app {
        return Ok(Redirect::to("/signin/register?method=app").into_response());
    }
    let (id, number) = current_or_new_challenge(&s, &mut session, &ip, ChallengeKind::Test)?;
    Ok(page(
        &s,
        TITLE,
        html! {
            p.account { (account(&s, &session.username)) }
            h1 { (TITLE) }
            h2 { "Let's try it out" }
            p { "Approve the notification we're sending to your app by entering the number shown below." }
            p.number #challenge data-id=(id) data-next="/signin/register/done" aria-live="polite" { (number) }
        },
    ))
}

async fn app_approved(State(s): AppState, headers: HeaderMap) -> PageResult {
    let mut session = stage!(s, headers, STAGES);
    if challenge_status(&s, &session)? != Some(ChallengeStatus::Approved) {
        session.challenge_id.clear();
        save(&s, &session)?;
        return Ok(Redirect::to("/signin/register/test").into_response());
    }
    Ok(page(
        &s,
        TITLE,
        html! {
            p.account { (account(&s, &session.username)) }
            h1 { (TITLE) }
            p.ok role="status" { "Notification approved" }
            p { "Success! You have set up your Countersign app as a sign-in method." }
            form method="post" action="/signin/register/finish" {
                (csrf(&session.csrf))
                button type="submit" { "Next" }
            }
        },
    ))
}

async fn app_finish(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    if challenge_status(&s, &session)? != Some(ChallengeStatus::Approved) {
        return Ok(Redirect::to("/signin/register/test").into_response());
    }
    session.challenge_id.clear();
    s.write(now(), |w| {
        w.audit(&session_row(&session, "signin.register", &ip, "app"))?;
        w.save_session(&session)
    })?;
    Ok(Redirect::to(next_url(&s, &mut session)?).into_response())
}

// --- The phone -----------------------------------------------------------

fn phone_form(token: &str, message: Option<&str>, number: &str, channel: Channel) -> Markup {
    html! {
        h2 { "Phone" }
        p { "You can prove who you are by answering a call on your phone or receiving a code on your phone." }
        (error(message))
        form method="post" action="/signin/register/phone" {
            (csrf(token))
            label for="phone" { "Mobile phone number" }
            input #phone type="tel" name="phone" autocomplete="tel" required value=(number) placeholder="(205) 555-0123";
            fieldset {
                legend { "How should we reach you?" }
                label { input type="radio" name="channel" value="sms" checked[channel == Channel::Sms]; " Receive a code" }
                label { input type="radio" name="channel" value="voice" checked[channel == Channel::Voice]; " Call me" }
            }
            p.hint { "Use a mobile number: a landline cannot receive text messages. Message and data rates may apply." }
            button type="submit" { "Next" }
        }
    }
}

async fn phone_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    let m = s.methods(&session.username)?;
    let typed = form.get("phone").map(String::as_str).unwrap_or_default();
    let channel = channel_of(&form);
    let refuse = |session: &WebSession, status: StatusCode, message: &str| {
        let body = phone_form(&session.csrf, Some(message), typed, channel);
        wizard(&s, session, &m, Kind::Phone, body).map(|r| (status, r).into_response())
    };
    let number = match PhoneNumber::parse(typed) {
        Ok(n) => n,
        Err(e) => {
            let message = format!("That phone number can't be used: {e}.");
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
pub(super) fn channel_of(form: &HashMap<String, String>) -> Channel {
    form.get("channel")
        .and_then(|c| Channel::parse(c))
        .unwrap_or(Channel::Sms)
}

/// Sends a code to `session`'s account (to `number`, or the registered
/// phone) and makes it the step in progress. A refusal comes back as the
/// status and message to show on the page.
pub(super) async fn send_code(
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
            session.pending = Pending::PhoneCode(id);
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
pub(super) struct SentCode {
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

/// The code the session waits for, if any.
pub(super) fn pending_code(s: &Server, session: &WebSession) -> Result<Option<SentCode>, Error> {
    let Some(id) = session.pending.phone_code() else {
        return Ok(None);
    };
    Ok(s.store.phone_code(id)?.map(|c| SentCode {
        id: id.to_string(),
        to: countersign_core::methods::mask(&c.number),
        channel: c.channel,
    }))
}

async fn phone_verify_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, STAGES);
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
fn verify_body(session: &WebSession, to: &str, channel: &str, message: Option<&str>) -> Markup {
    html! {
        h2 { "Phone" }
        (code_form(&session.csrf, "/signin/register/phone/verify", to, channel, message))
        p { a href="/signin/register?method=phone" { "Resend code" } }
    }
}

async fn phone_verify_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    let Some(sent) = pending_code(&s, &session)? else {
        return Ok(Redirect::to("/signin/register?method=phone").into_response());
    };
    let code = form.get("code").map(String::as_str).unwrap_or_default();
    let again = |status: StatusCode, message: &str| {
        let m = s.methods(&session.username)?;
        let body = verify_body(&session, &sent.to, &sent.channel, Some(message));
        wizard(&s, &session, &m, Kind::Phone, body).map(|r| (status, r).into_response())
    };
    match s.check_phone_code(
        &session.username,
        &sent.id,
        code,
        Purpose::Register,
        &ip,
        now(),
    ) {
        Ok(Some(number)) => {
            match s.register_phone(&session.username, &number, authority(&session), &ip, now()) {
                Ok(()) => {}
                Err(Error::Refused { .. }) => return Ok(methods_changed(&s, &mut session)?),
                Err(e) => return Err(e.into()),
            }
            session.pending = Pending::Nothing;
            session.factor.get_or_insert(Factor {
                method: sent.factor(),
                at: now(),
                by_registration: true,
            });
            save(&s, &session)?;
            let next = next_url(&s, &mut session)?;
            Ok(page(
                &s,
                TITLE,
                html! {
                    p.account { (account(&s, &session.username)) }
                    h1 { (TITLE) }
                    p.ok role="status" { "Verification complete. Your phone has been registered." }
                    p { a.button href=(next) { "Next" } }
                },
            ))
        }
        Ok(None) => again(
            StatusCode::UNAUTHORIZED,
            "That code didn't work. Check the code and try again.",
        ),
        Err(Error::Refused { code, message }) => again(refusal(code), &message),
        Err(e) => Err(e.into()),
    }
}

// --- Security questions --------------------------------------------------

/// Five question pickers with answer fields, refilled after a problem.
fn questions_form(token: &str, problems: &[String], values: &HashMap<String, String>) -> Markup {
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

async fn questions_post(
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

/// A password-only registration met an account that has a method now
/// (registered from another browser): prove one of them first.
fn methods_changed(s: &Server, session: &mut WebSession) -> Result<Response, Error> {
    super::back_to_proof(s, session)?;
    Ok(Redirect::to("/signin/mfa").into_response())
}

// --- The end -------------------------------------------------------------

async fn complete_page(State(s): AppState, headers: HeaderMap) -> PageResult {
    let session = stage!(s, headers, STAGES);
    let m = s.methods(&session.username)?;
    if m.count() < REQUIRED {
        return Ok(Redirect::to("/signin/register").into_response());
    }
    let markup = html! {
        p.account { (account(&s, &session.username)) }
        h1 { "Success!" }
        p { "Great job! You have successfully set up your security info. Choose \"Done\" to continue signing in." }
        h2 { "Default sign-in method:" }
        ul.methods {
            @for k in KINDS.iter().filter(|k| k.registered(&m)) {
                li { (k.label()) @if *k == Kind::Phone { @if let Some(p) = &m.phone { " " (countersign_core::methods::mask(p)) } } }
            }
        }
        form method="post" action="/signin/register/complete" {
            (csrf(&session.csrf))
            button type="submit" { "Done" }
        }
    };
    Ok(page(&s, "Success!", markup))
}

async fn complete_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    let m = s.methods(&session.username)?;
    if m.count() < REQUIRED {
        return Ok(Redirect::to("/signin/register").into_response());
    }
    audit(&s, &session, "signin.register.complete", &ip, "ok")?;
    let next = if session.stage == Stage::Add {
        Stage::Done
    } else {
        Stage::Stay
    };
    advance(&s, &mut session, next)
}

/// "Skip setup": signed in without the missing methods until the grace ends.
async fn skip_post(
    State(s): AppState,
    headers: HeaderMap,
    ClientIp(ip): ClientIp,
    Form(form): Form<HashMap<String, String>>,
) -> PageResult {
    let mut session = stage_form!(s, headers, STAGES, form);
    if session.stage != Stage::Register {
        return Ok(Redirect::to("/my").into_response());
    }
    match s.skip_setup(&session.username, &ip, now()) {
        Ok(_) => advance(&s, &mut session, Stage::Stay),
        Err(Error::Refused { code, message }) => {
            Ok((refusal(code), page(&s, TITLE, info(TITLE, &[&message]))).into_response())
        }
        Err(e) => Err(e.into()),
    }
}
