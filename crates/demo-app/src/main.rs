//! `lets-demo`: "LETS (demo)", a small application that hands its sign-in
//! to Countersign over OpenID Connect. It is written on the
//! `openidconnect` crate, a relying-party library nobody here wrote, so it
//! also proves the provider against code written elsewhere: discovery, the
//! code flow with PKCE, ID-token validation (signature, `iss`, `aud`,
//! `nonce`, `exp`), userinfo and logout.
//!
//! Its pages: `/` shows the signed-in officer and the claims, or a "Sign
//! in" button; `/login` starts a sign-in; `/callback` takes the code;
//! `/logout` signs out here and at Countersign; `/signed-out` is where
//! Countersign's sign-out pages return.

mod oidc;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use clap::Parser;
use maud::{html, Markup, DOCTYPE};

use oidc::{Provider, SignedIn};

/// Command line.
#[derive(Parser)]
#[command(
    name = "lets-demo",
    about = "LETS (demo): an application that signs officers in with Countersign"
)]
struct Args {
    /// Countersign's public URL (the OpenID Connect issuer).
    #[arg(long, env = "LETS_DEMO_ISSUER")]
    issuer: String,
    /// This application's client_id at Countersign.
    #[arg(long, env = "LETS_DEMO_CLIENT_ID", default_value = "lets-demo")]
    client_id: String,
    /// Its client secret (from `countersign-server client add`).
    #[arg(long, env = "LETS_DEMO_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// Where to listen.
    #[arg(long, env = "LETS_DEMO_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// The address browsers reach this application at (its redirect URI is
    /// this plus `/callback`).
    #[arg(long, env = "LETS_DEMO_URL")]
    url: Option<String>,
    /// A certificate to trust for Countersign (its self-signed one, in PEM).
    #[arg(long, env = "LETS_DEMO_CA", value_name = "PEM")]
    ca: Option<PathBuf>,
    /// The name shown on the pages.
    #[arg(long, default_value = "LETS (demo)")]
    name: String,
}

/// The application's state: the provider, sign-ins in progress (by
/// `state`) and signed-in browsers (by cookie).
struct App {
    provider: Provider,
    name: String,
    /// The session cookie's name: one per client id, since browsers share
    /// cookies between ports of a host.
    cookie: String,
    starting: Mutex<HashMap<String, oidc::Pending>>,
    sessions: Mutex<HashMap<String, SignedIn>>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let url = args
        .url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let provider = Provider::discover(
            &args.issuer,
            &args.client_id,
            &args.client_secret,
            &url,
            args.ca.as_deref(),
        )
        .await
        .with_context(|| format!("discovery at {}", args.issuer))?;
        let app = Arc::new(App {
            provider,
            name: args.name.clone(),
            cookie: format!("app-{}", args.client_id),
            starting: Mutex::default(),
            sessions: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        eprintln!("{}: open {url}/ (signs in with {})", args.name, args.issuer);
        axum::serve(listener, router(app)).await?;
        anyhow::Ok(())
    })
}

fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(home))
        .route("/login", get(login))
        .route("/callback", get(callback))
        .route("/logout", post(logout))
        .route("/signed-out", get(signed_out))
        .with_state(app)
}

fn page(app: &App, body: Markup) -> Response {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; title { (app.name) } }
                body { header { strong { (app.name) } } main { (body) } }
            }
        }
        .into_string(),
    )
    .into_response()
}

fn cookie_of(app: &App, headers: &HeaderMap) -> Option<String> {
    let prefix = format!("{}=", app.cookie);
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(&prefix).map(str::to_string))
}

async fn home(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let signed_in =
        cookie_of(&app, &headers).and_then(|c| app.sessions.lock().ok()?.get(&c).cloned());
    let body = match signed_in {
        Some(s) => html! {
            h1 { "Welcome, " (s.name) }
            p #officer { "Signed in as " strong { (s.username) } " (" (s.email) ")" }
            p #amr { "Sign-in methods (amr): " code { (s.amr.join(" ")) } }
            p #acr { "Assurance (acr): " code { (s.acr) } }
            h2 { "ID token claims" }
            pre #claims { (s.claims) }
            h2 { "Userinfo" }
            pre #userinfo { (s.userinfo) }
            form method="post" action="/logout" { button type="submit" { "Log out" } }
        },
        None => html! {
            h1 { "Law Enforcement Tactical System" }
            p { "This application needs you to sign in." }
            p { a #signin href="/login" { "Sign in" } }
        },
    };
    page(&app, body)
}

async fn login(State(app): State<Arc<App>>) -> Response {
    let (url, pending) = app.provider.start();
    if let Ok(mut starting) = app.starting.lock() {
        starting.insert(pending.state.clone(), pending);
    }
    Redirect::to(url.as_str()).into_response()
}

async fn callback(
    State(app): State<Arc<App>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Some(error) = q.get("error") {
        let body = html! {
            h1 { "Sign-in was refused" }
            p #error { (error) ": " (q.get("error_description").map_or("", String::as_str)) }
            p { a href="/" { "Back" } }
        };
        return (StatusCode::FORBIDDEN, page(&app, body)).into_response();
    }
    let state = q.get("state").cloned().unwrap_or_default();
    let pending = app.starting.lock().ok().and_then(|mut s| s.remove(&state));
    let (Some(pending), Some(code)) = (pending, q.get("code")) else {
        let body = html! { h1 { "Unknown sign-in" } p { a href="/" { "Start again" } } };
        return (StatusCode::BAD_REQUEST, page(&app, body)).into_response();
    };
    match app.provider.finish(code, pending).await {
        Ok(signed_in) => {
            let id = oidc::random();
            if let Ok(mut sessions) = app.sessions.lock() {
                sessions.insert(id.clone(), signed_in);
            }
            (
                [(
                    header::SET_COOKIE,
                    format!("{}={id}; Path=/; HttpOnly; SameSite=Lax", app.cookie),
                )],
                Redirect::to("/"),
            )
                .into_response()
        }
        Err(e) => {
            let body = html! { h1 { "Sign-in failed" } p #error { (format!("{e:#}")) } };
            (StatusCode::BAD_GATEWAY, page(&app, body)).into_response()
        }
    }
}

async fn logout(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let signed_in = cookie_of(&app, &headers).and_then(|c| app.sessions.lock().ok()?.remove(&c));
    let clear = format!("{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0", app.cookie);
    let target = match signed_in {
        Some(s) => app.provider.logout_url(&s),
        None => "/".to_string(),
    };
    ([(header::SET_COOKIE, clear)], Redirect::to(&target)).into_response()
}

async fn signed_out(State(app): State<Arc<App>>) -> Response {
    page(
        &app,
        html! {
            h1 { "You are signed out of " (app.name) }
            p { a #signin href="/login" { "Sign in again" } }
        },
    )
}
