//! Every API handler's and page's refusals through the router alone
//! (`tower::ServiceExt::oneshot`): no TLS and no port, a few milliseconds
//! each. The journeys that need a real connection are in `api` and `web`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::Server;
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A server on a temporary data folder, reached through its router.
struct Oneshot {
    _dir: tempfile::TempDir,
    server: Arc<Server>,
    admin: String,
}

/// What came back.
struct Answer {
    status: StatusCode,
    location: String,
    cookie: String,
    body: String,
}

impl Answer {
    /// The `code` of a JSON refusal.
    fn code(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    /// The CSRF token the page's form carries.
    fn csrf(&self) -> String {
        let at = self.body.find(r#"name="csrf" value=""#).expect("a form");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_string()
    }
}

impl Oneshot {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let mut config = Config::default();
        config.store.url = countersign_testkit::postgres::store_for(dir.path()).unwrap_or_default();
        config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
        let server = Arc::new(Server::open(config, &data).unwrap());
        let admin = data.admin_token().unwrap().to_string();
        Oneshot {
            _dir: dir,
            server,
            admin,
        }
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = countersign_server::http::router(self.server.clone())
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let header = |name| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (status, location, cookie) = (
            resp.status(),
            header(header::LOCATION),
            header(header::SET_COOKIE),
        );
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        Answer {
            status,
            location,
            cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        self.call(Method::GET, path, headers, "").await
    }

    async fn json(&self, method: Method, path: &str, bearer: Option<&str>, body: &str) -> Answer {
        let auth = bearer.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("content-type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        self.call(method, path, &headers, body).await
    }

    async fn form(&self, path: &str, cookie: &str, body: &str) -> Answer {
        let headers = [
            ("content-type", "application/x-www-form-urlencoded"),
            ("cookie", cookie),
        ];
        self.call(Method::POST, path, &headers, body).await
    }
}

/// A request (method, path, bearer token, JSON body) and the status and
/// code it must get.
type Case<'a> = (
    Method,
    &'a str,
    Option<&'a str>,
    String,
    StatusCode,
    &'a str,
);

/// The cookie to send back (`name=value`) from a `Set-Cookie` header.
fn cookie_of(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_refuses_what_it_cannot_take() {
    let o = Oneshot::new();
    let admin = o.admin.clone();
    assert_eq!(o.get("/healthz", &[]).await.status, StatusCode::OK);
    let ready = o.get("/readyz", &[]).await;
    assert_eq!(
        (ready.status, ready.body.as_str()),
        (StatusCode::OK, "ready")
    );
    let cases: Vec<Case> = vec![
        (
            Method::POST,
            "/api/v1/devices/activate",
            None,
            "{".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/devices/activate",
            None,
            format!("\"{}\"", "x".repeat(20_000)),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
        ),
        (
            Method::POST,
            "/api/v1/devices/activate",
            None,
            format!(
                r#"{{"code":"nosuch-secret","device_key":"{k}","device_name":"Phone","platform":"cli","app_version":""}}"#,
                k = data_encoding::BASE64URL_NOPAD.encode(&[1; 32])
            ),
            StatusCode::BAD_REQUEST,
            "invalid_code",
        ),
        (
            Method::DELETE,
            "/api/v1/devices/d1",
            None,
            String::new(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::DELETE,
            "/api/v1/devices/d1",
            Some("wrong"),
            String::new(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::GET,
            "/api/v1/devices/d1/challenges",
            Some("wrong"),
            String::new(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        // Whoever may not follow a challenge is told it does not exist.
        (
            Method::GET,
            "/api/v1/challenges/c1",
            None,
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/v1/challenges/c1",
            Some(&admin),
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/challenges/c1/response",
            None,
            "[]".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/challenges/c1/receipt",
            None,
            "{}".into(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
        ),
        (
            Method::POST,
            "/api/v1/totp/verify",
            None,
            r#"{"username":"cs0101","code":"123456"}"#.into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::POST,
            "/api/v1/totp/verify",
            Some(&admin),
            r#"{"username":"nobody","code":"123456"}"#.into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::POST,
            "/api/v1/admin/push",
            Some("wrong"),
            r#"{"username":"cs0101"}"#.into(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            Method::POST,
            "/api/v1/admin/push",
            Some(&admin),
            r#"{"username":"nobody"}"#.into(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
        (
            Method::GET,
            "/api/v1/admin/streams",
            None,
            String::new(),
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
    ];
    for (method, path, bearer, body, status, code) in cases {
        let a = o.json(method.clone(), path, bearer, &body).await;
        assert_eq!(
            (a.status, a.code().as_str()),
            (status, code),
            "{method} {path}: {}",
            a.body
        );
    }
    let streams = o
        .json(
            Method::GET,
            "/api/v1/admin/streams?device=d1",
            Some(&admin),
            "",
        )
        .await;
    assert_eq!(streams.status, StatusCode::OK);
    assert_eq!(streams.body, r#"{"connected":0,"device":0}"#);
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_send_a_browser_without_a_session_to_sign_in() {
    let o = Oneshot::new();
    for path in [
        "/signin/password",
        "/signin/update-password",
        "/signin/register",
        "/signin/mfa",
        "/signin/stay",
        "/my",
        "/recover/password",
        "/helpdesk",
    ] {
        let a = o.get(path, &[]).await;
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, "/signin"),
            "GET {path}"
        );
    }
    for path in [
        "/signin/password",
        "/signin/stay",
        "/my/methods/add",
        "/my/methods/remove",
        "/my/back",
        "/helpdesk/users/cs0101/fix",
        "/helpdesk/users/cs0101/push",
        "/signout",
    ] {
        let a = o.form(path, "", "csrf=x").await;
        let to = if path == "/signout" {
            "/signout/done"
        } else {
            "/signin"
        };
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, to),
            "POST {path}"
        );
    }
    // The email step without the pre-session cookie that carries its token.
    let a = o.form("/signin", "", "csrf=x&email=cs0101").await;
    assert_eq!(
        (a.status, a.location.as_str()),
        (StatusCode::SEE_OTHER, "/signin")
    );
    assert_eq!(o.get("/nowhere", &[]).await.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_is_held_to_its_stage_and_its_token() {
    let o = Oneshot::new();
    // The email step: a pre-session cookie and its token, then a session.
    let page = o.get("/signin", &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    let pre = cookie_of(&page.cookie);
    let wrong = o.form("/signin", &pre, "csrf=forged&email=cs0101").await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let body = format!("csrf={}&email=cs0101", page.csrf());
    let started = o.form("/signin", &pre, &body).await;
    assert_eq!(
        (started.status, started.location.as_str()),
        (StatusCode::SEE_OTHER, "/signin/password")
    );
    let session = cookie_of(&started.cookie);
    assert!(session.starts_with("__Host-cs_session="), "{session}");

    // At the password stage: every other page sends it back there.
    for path in ["/signin/stay", "/signin/register", "/my", "/signin/mfa"] {
        let a = o.get(path, &[("cookie", &session)]).await;
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, "/signin/password"),
            "GET {path}"
        );
    }
    let password = o.get("/signin/password", &[("cookie", &session)]).await;
    let token = password.csrf();
    // Forms of later stages, with the right token, change nothing either.
    for (path, body) in [
        ("/signin/stay", format!("csrf={token}&stay=yes")),
        ("/my/back", format!("csrf={token}")),
        ("/my/methods/add", format!("csrf={token}")),
    ] {
        let a = o.form(path, &session, &body).await;
        assert_eq!(
            (a.status, a.location.as_str()),
            (StatusCode::SEE_OTHER, "/signin/password"),
            "POST {path}"
        );
    }
    // Its own form with a forged token is refused, and changes nothing.
    let forged = o
        .form("/signin/password", &session, "csrf=forged&password=x")
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(forged.body.contains("Request refused"), "{}", forged.body);
    // A form that does not read (a field sent twice) is refused as such.
    let twice = o
        .form(
            "/signin/password",
            &session,
            &format!("csrf={token}&password=a&password=b"),
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    // The right token reaches the password check (an unknown account).
    let checked = o
        .form(
            "/signin/password",
            &session,
            &format!("csrf={token}&password=x"),
        )
        .await;
    assert_eq!(checked.status, StatusCode::UNAUTHORIZED);
    assert!(checked
        .body
        .contains("Your account or password is incorrect."));
}
