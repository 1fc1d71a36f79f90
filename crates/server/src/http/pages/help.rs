//! The Help Center: the officers' three guides (the sign-in page, the first
//! sign-in, everyday sign-in), in the steps of the seed guides, illustrated
//! with screenshots of the real pages and app that the test suite takes
//! (`help/img/`, kept by `countersign_testkit::help`).
//!
//! The guides are compiled in. Their placeholders take this deployment's
//! organisation, email domain, temporary-password pattern, password rules
//! and setup grace, so the words match what the pages will do.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use maud::{html, Markup, PreEscaped};
use std::sync::Arc;

use super::{html as page, AppState};
use crate::Server;

/// One guide: its address, title, one line on what it covers, and its
/// body (trusted HTML with `{placeholders}`).
pub(crate) struct Guide {
    pub(crate) slug: &'static str,
    pub(crate) title: &'static str,
    pub(crate) summary: &'static str,
    pub(crate) body: &'static str,
}

/// The guides, in the order an officer meets them.
pub(crate) const GUIDES: [Guide; 3] = [
    Guide {
        slug: "sign-in-page",
        title: "The sign-in page",
        summary: "What the sign-in page shows, how to recognise it, and what each link does, including \"Can't access your account?\".",
        body: include_str!("../../../help/sign-in-page.html"),
    },
    Guide {
        slug: "first-sign-in",
        title: "Your first sign-in",
        summary: "Your temporary password, the password rules, and setting up two sign-in methods: the Countersign app, a phone, security questions.",
        body: include_str!("../../../help/first-sign-in.html"),
    },
    Guide {
        slug: "everyday-sign-in",
        title: "Signing in with Countersign",
        summary: "Every day: your password, then the number approved in the Countersign app; what to do when the request expires or the app is not at hand; signing out.",
        body: include_str!("../../../help/everyday-sign-in.html"),
    },
];

/// The screenshots, by name (see `build.rs`).
pub(crate) const IMAGES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/help_images.rs"));

pub(crate) fn routes() -> Router<Arc<Server>> {
    Router::new()
        .route("/help", get(index))
        .route("/help/{guide}", get(guide))
        .route("/help/img/{file}", get(image))
}

async fn index(State(s): AppState) -> Response {
    let title = format!("{} Help Center", s.config.org_name);
    let body = html! {
        h1 { (title) }
        p { "Step-by-step guides for signing in to " (s.config.org_name) ", with pictures of each page." }
        ul.guides {
            @for g in &GUIDES {
                li {
                    a href=(format!("/help/{}", g.slug)) { (g.title) }
                    p { (g.summary) }
                }
            }
        }
        h2 { "Still stuck?" }
        p { "If you are locked out, have lost the phone or laptop with the Countersign app, or a request came that you did not make, contact the help desk." }
        p { a href="/signin" { "Back to sign in" } }
    };
    page(&s, &title, body)
}

async fn guide(State(s): AppState, Path(slug): Path<String>) -> Response {
    let Some(g) = GUIDES.iter().find(|g| g.slug == slug) else {
        return not_found(&s);
    };
    let body = html! {
        p { a href="/help" { (s.config.org_name) " Help Center" } }
        h1 { (g.title) }
        article.guide { (PreEscaped(fill(&s, g.body))) }
        p { a href="/help" { "Back to the Help Center" } " · " a href="/signin" { "Back to sign in" } }
    };
    page(&s, g.title, body)
}

async fn image(Path(file): Path<String>) -> Response {
    let found = file
        .strip_suffix(".png")
        .and_then(|name| IMAGES.iter().find(|(n, _)| *n == name));
    match found {
        Some((_, bytes)) => (
            [
                (header::CONTENT_TYPE, "image/png"),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *bytes,
        )
            .into_response(),
        None => crate::http::refusals::own_refusal(StatusCode::NOT_FOUND, "no such picture"),
    }
}

fn not_found(s: &Server) -> Response {
    let body = html! {
        h1 { "Page not found" }
        p { "There is no such guide." }
        p { a href="/help" { "Back to the Help Center" } }
    };
    (StatusCode::NOT_FOUND, page(s, "Page not found", body)).into_response()
}

/// Text as HTML (for the configured values put into a guide).
fn text(value: &str) -> String {
    html! { (value) }.into_string()
}

/// A guide's body with this deployment's values in place, in one pass: a
/// configured value that itself reads like a placeholder stays as it is.
pub(crate) fn fill(s: &Server, body: &str) -> String {
    let c = &s.config;
    let template = &c.users.temporary_password_template;
    let pattern = text(template)
        .replace(
            "{last_initial}",
            "</code><em>your last initial, lower case</em><code>",
        )
        .replace(
            "{ssn_last4}",
            "</code><em>the last four digits of your social security number</em><code>",
        )
        .replace(
            "{first_initial}",
            "</code><em>your first initial, lower case</em><code>",
        );
    let example = countersign_core::password::temporary_password(template, "Clark", "Kent", "4321");
    let value = |name: &str| -> Option<String> {
        Some(match name {
            "org" => text(&c.org_name),
            "domain" => text(&c.email_domain),
            "pattern" => pattern.clone(),
            "example" => text(&example),
            "rules" => rules(s).into_string(),
            "skip_hours" => c.users.skip_setup_hours.to_string(),
            _ => return None,
        })
    };
    let mut out = String::with_capacity(body.len() + 512);
    let mut rest = body;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after
            .find('}')
            .and_then(|close| Some((close, value(&after[..close])?)))
        {
            Some((close, v)) => {
                out.push_str(&v);
                rest = &after[close + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// The password rules in force, one list item each.
fn rules(s: &Server) -> Markup {
    let p = &s.config.password;
    let mut list = vec![format!("At least {} characters", p.min_length)];
    for (on, what) in [
        (p.require_upper, "an upper-case letter"),
        (p.require_lower, "a lower-case letter"),
        (p.require_digit, "a digit"),
        (p.require_special, "a special character, such as $ # ! or -"),
    ] {
        if on {
            list.push(format!("At least one {what}"));
        }
    }
    if p.history > 0 {
        list.push(format!("Not one of your last {} passwords", p.history));
    }
    if p.min_age_hours > 0 {
        list.push(format!(
            "Not changed more than once in {} hours: the change at your first sign-in and a recovery count, so your next change on My sign-ins must wait",
            p.min_age_hours
        ));
    }
    html! { @for item in &list { li { (item) } } }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources() -> impl Iterator<Item = &'static str> {
        GUIDES.iter().flat_map(|g| {
            g.body
                .split("src=\"/help/img/")
                .skip(1)
                .filter_map(|rest| rest.split_once(".png\"").map(|(name, _)| name))
        })
    }

    #[test]
    fn a_configured_value_is_put_in_once_and_never_read_as_a_placeholder() {
        let config = crate::infra::config::Config {
            org_name: "Org {rules} <b>".into(),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let data = crate::infra::datadir::DataDir::open(dir.path()).unwrap();
        let server = crate::Server::open(config, &data).unwrap();
        let out = fill(&server, "<p>{org} {unknown} {domain}</p>");
        assert_eq!(out, "<p>Org {rules} &lt;b&gt; {unknown} alacop.gov</p>");
    }

    /// Every picture a guide shows is carried, was taken by the suite (it
    /// has the fingerprint `countersign_testkit::help` writes), and every
    /// picture carried is shown somewhere.
    #[test]
    fn every_picture_is_shown_and_every_shown_picture_is_a_screenshot() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("help/img");
        let shown: std::collections::BTreeSet<&str> = sources().collect();
        assert!(shown.len() >= 25, "only {} pictures", shown.len());
        for name in &shown {
            assert!(
                IMAGES.iter().any(|(n, _)| n == name),
                "{name}.png is shown but missing: run the browser and window tests"
            );
            assert!(
                dir.join(format!("{name}.txt")).exists(),
                "{name}.png has no fingerprint: it was not taken by the test suite"
            );
        }
        for (name, bytes) in IMAGES {
            assert!(shown.contains(name), "{name}.png is not shown in any guide");
            assert!(bytes.starts_with(b"\x89PNG"), "{name}.png is not a PNG");
        }
    }
}
