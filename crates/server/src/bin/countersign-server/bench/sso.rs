//! `countersign-server bench --sso`: single sign-on code exchanges. Signed-in
//! browser sessions (a push proven) are seeded with one application; each
//! worker then runs what an application does when an officer who is
//! already signed in opens it: authorize (the code comes back at once) →
//! token (client_secret_basic, an RS256 ID token) → userinfo.

use super::*;
use countersign_server::domain::oidc::NewClient;
use countersign_server::infra::token_keys::TokenAlg;
use countersign_server::store::{Factor, FactorMethod, Stage, WebSession};

/// Browser sessions the workers share out.
const SESSIONS: usize = 100;
const REDIRECT: &str = "http://127.0.0.1:9/cb";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92Q5KTrE0jtq5lXaYpbX2kYSuZw8";
const CHALLENGE: &str = "5DSN7o6PmcQ54_rLZlge04ib_Y58wML8Fuua1G7d5pk";

/// Seeds, starts the server, drives the exchanges and prints the figures.
pub fn run(concurrency: usize, duration: Duration) -> anyhow::Result<()> {
    let tmp = tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let config_path = tmp.join("bench.toml");
    std::fs::write(&config_path, format!("listen = \"127.0.0.1:{port}\"\n"))?;
    eprintln!("seeding {SESSIONS} signed-in sessions in {}", tmp.display());
    let (cookies, secret) = seed(&tmp, &config_path)?;
    // Stopped, and the folder removed, on every way out.
    let _child = Servers(vec![start_child(&tmp, &config_path, port)?]);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(drive(&tmp, concurrency, duration, cookies, secret))
}

/// Officers with a signed-in session each, and the application.
fn seed(dir: &Path, config_path: &Path) -> anyhow::Result<(Vec<String>, String)> {
    let config = Config::load(Some(config_path), None)?;
    let data = DataDir::open(dir)?;
    let server = Server::open(config, &data)?;
    let hash = countersign_server::domain::accounts::hash_password("Bench-Password-123")?;
    let t = now();
    let mut cookies = Vec::new();
    for i in 0..SESSIONS {
        let username = format!("sso{i:04}");
        let user = NewUser {
            username: &username,
            first_name: "Bench",
            last_name: "User",
            password_hash: &hash,
            temporary_until: 0,
        };
        let cookie = format!("bench-session-{i:04}-{}", tempdir_tag(dir));
        let session = WebSession {
            id_hash: countersign_server::domain::sha256(cookie.as_bytes()).to_vec(),
            csrf: "bench".into(),
            username: username.clone(),
            stage: Stage::Done(Some(Factor {
                method: FactorMethod::App,
                at: t,
                by_registration: false,
            })),
            sid: format!("bench-sid-{i:04}"),
            authenticated_at: t,
            return_to: String::new(),
            persistent: true,
            created_at: t,
            expires_at: t + 86_400,
        };
        server.store.write(t, |w| {
            w.insert_user(&user, t)?;
            w.insert_session(&session)
        })?;
        cookies.push(cookie);
    }
    let secret = server
        .add_client(
            NewClient {
                id: "bench".into(),
                name: "Bench".into(),
                redirect_uris: vec![REDIRECT.into()],
                post_logout_redirect_uris: Vec::new(),
                backchannel_logout_uri: None,
                public: false,
                id_token_alg: TokenAlg::Rs256,
                require_mfa: true,
                max_age: None,
            },
            "bench",
            t,
        )?
        .context("a secret")?;
    // The signing keys are made now, not during the measurement.
    server.token_keys.jwks(t)?;
    Ok((cookies, secret.to_string()))
}

/// A tag unique to this run (cookies must not be guessable across runs).
fn tempdir_tag(dir: &Path) -> String {
    dir.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn drive(
    dir: &Path,
    concurrency: usize,
    duration: Duration,
    cookies: Vec<String>,
    secret: String,
) -> anyhow::Result<()> {
    let (base, pin) = running(&DataDir::open(dir)?)?;
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(PinnedVerifier::client_config(pin)?)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(usize::MAX)
        .timeout(Duration::from_secs(60))
        .build()?;
    println!(
        "single sign-on code exchanges (authorize → code → token → userinfo), TLS on loopback"
    );
    println!("  signed-in sessions:  {SESSIONS}");
    println!("  in flight:           {concurrency}");
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let cookies = Arc::new(cookies);
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (http, base, cookies, secret) =
                (http.clone(), base.clone(), cookies.clone(), secret.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut errors = 0;
                let mut n = w;
                while Instant::now() < deadline {
                    let cookie = &cookies[n % cookies.len()];
                    n += concurrency;
                    let t0 = Instant::now();
                    match exchange(&http, &base, cookie, &secret).await {
                        Ok(()) => latencies.push(t0.elapsed()),
                        Err(e) => {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("exchange failed: {e:#}");
                            }
                        }
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    let mut phase = Phase {
        latencies: Vec::new(),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for w in workers {
        let (l, e) = w.await?;
        phase.latencies.extend(l);
        phase.errors += e;
    }
    phase.elapsed = started.elapsed();
    phase.latencies.sort_unstable();
    phase.print_as("exchanges");
    Ok(())
}

/// One officer opening the application.
async fn exchange(
    http: &reqwest::Client,
    base: &str,
    cookie: &str,
    secret: &str,
) -> anyhow::Result<()> {
    let authorize = format!(
        "{base}/oidc/authorize?response_type=code&client_id=bench&redirect_uri=http%3A%2F%2F127.0.0.1%3A9%2Fcb\
         &scope=openid&state=s&nonce=n&code_challenge={CHALLENGE}&code_challenge_method=S256"
    );
    let r = http
        .get(&authorize)
        .header("cookie", format!("__Host-cs_session={cookie}"))
        .send()
        .await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .context("no redirect")?;
    let code = url::Url::parse(location)?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .with_context(|| format!("no code in {location}"))?;
    let tokens: serde_json::Value = http
        .post(format!("{base}/oidc/token"))
        .basic_auth("bench", Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let access = tokens["access_token"].as_str().context("no access token")?;
    anyhow::ensure!(tokens["id_token"].is_string(), "no ID token");
    http.get(format!("{base}/oidc/userinfo"))
        .bearer_auth(access)
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}
