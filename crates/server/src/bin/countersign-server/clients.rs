//! `countersign-server client ...`: the applications that hand their
//! sign-in to Countersign (OpenID Connect clients), and `oidc rotate-keys`.

use clap::{Subcommand, ValueEnum};
use countersign_server::domain::oidc::{Client, NewClient};
use countersign_server::infra::datadir::DataDir;
use countersign_server::infra::token_keys::{TokenAlg, TokenKeys};
use countersign_server::{now, Server};
use std::io::Read;
use std::process::ExitCode;

#[derive(Subcommand)]
pub(crate) enum ClientCommand {
    /// Register an application; prints its secret once (keep it in the
    /// application's configuration).
    Add {
        /// The client_id: 2–64 of a-z, 0-9, '.', '_' and '-'.
        id: String,
        /// The name officers see: "Sign in to continue to NAME".
        #[arg(long)]
        name: String,
        /// Where codes may be sent (exact match; repeat for several).
        #[arg(long = "redirect-uri", required = true, value_name = "URL")]
        redirect_uris: Vec<String>,
        /// Where a logout may return (exact match; repeat for several).
        #[arg(long = "post-logout-redirect-uri", value_name = "URL")]
        post_logout_redirect_uris: Vec<String>,
        /// Where logout tokens are posted when the officer signs out.
        #[arg(long, value_name = "URL")]
        backchannel_logout_uri: Option<String>,
        /// A public client (a browser or mobile application): no secret,
        /// PKCE required.
        #[arg(long)]
        public: bool,
        /// How its ID tokens are signed.
        #[arg(long, value_enum, default_value_t = Alg::Rs256)]
        id_token_alg: Alg,
        /// Accept sign-ins with the password alone (by default a second
        /// factor is required).
        #[arg(long)]
        password_only: bool,
        /// The oldest sign-in it accepts, in seconds.
        #[arg(long, value_name = "SECONDS")]
        max_age: Option<u64>,
    },
    /// List the applications.
    List {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Show one application.
    Show {
        /// The client_id.
        id: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Remove a registered application; its tokens stop working.
    Remove {
        /// The client_id.
        id: String,
    },
    /// Give an application a new secret (printed once); the old one stops
    /// working at once.
    RotateSecret {
        /// The client_id.
        id: String,
    },
    /// Read a secret on standard input and print the `secret_sha256` to put
    /// in the configuration file's `[[oidc.clients]]` entry.
    HashSecret,
}

#[derive(Subcommand)]
pub(crate) enum OidcCommand {
    /// Make new ID-token signing keys; the old ones stay published until
    /// every token they signed has expired. A running server uses the new
    /// keys at once.
    RotateKeys,
}

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Alg {
    #[value(name = "RS256")]
    Rs256,
    #[value(name = "ES256")]
    Es256,
    #[value(name = "EdDSA")]
    EdDsa,
}

impl From<Alg> for TokenAlg {
    fn from(a: Alg) -> Self {
        match a {
            Alg::Rs256 => TokenAlg::Rs256,
            Alg::Es256 => TokenAlg::Es256,
            Alg::EdDsa => TokenAlg::EdDsa,
        }
    }
}

fn json_of(c: &Client) -> serde_json::Value {
    serde_json::json!({
        "id": c.id,
        "name": c.name,
        "public": c.is_public(),
        "redirect_uris": c.redirect_uris,
        "post_logout_redirect_uris": c.post_logout_redirect_uris,
        "backchannel_logout_uri": c.backchannel_logout_uri,
        "id_token_alg": c.id_token_alg.as_str(),
        "require_mfa": c.require_mfa,
        "max_age": c.max_age,
        "defined_in": if c.in_config { "configuration" } else { "database" },
    })
}

fn print_client(c: &Client) {
    println!("{} ({})", c.id, c.name);
    let kind = if c.is_public() {
        "public (PKCE)"
    } else {
        "confidential"
    };
    println!("  kind:             {kind}");
    for u in &c.redirect_uris {
        println!("  redirect:         {u}");
    }
    for u in &c.post_logout_redirect_uris {
        println!("  after logout:     {u}");
    }
    if let Some(u) = &c.backchannel_logout_uri {
        println!("  logout tokens to: {u}");
    }
    println!("  ID tokens:        {}", c.id_token_alg.as_str());
    let mfa = if c.require_mfa {
        "required"
    } else {
        "not required"
    };
    println!("  second factor:    {mfa}");
    if let Some(m) = c.max_age {
        println!("  max_age:          {m} s");
    }
    let place = if c.in_config {
        "configuration file"
    } else {
        "database"
    };
    println!("  defined in:       {place}");
}

/// Runs one `client` command.
pub fn run(server: &Server, cmd: ClientCommand, actor: &str) -> anyhow::Result<ExitCode> {
    match cmd {
        ClientCommand::Add {
            id,
            name,
            redirect_uris,
            post_logout_redirect_uris,
            backchannel_logout_uri,
            public,
            id_token_alg,
            password_only,
            max_age,
        } => {
            let new = NewClient {
                id: id.clone(),
                name,
                redirect_uris,
                post_logout_redirect_uris,
                backchannel_logout_uri,
                public,
                id_token_alg: id_token_alg.into(),
                require_mfa: !password_only,
                max_age,
            };
            match server.add_client(new, actor, now())? {
                Some(secret) => {
                    eprintln!("registered {id}; its client secret (shown once):");
                    println!("{}", secret.as_str());
                }
                None => eprintln!("registered {id} (public client: no secret, PKCE required)"),
            }
        }
        ClientCommand::List { json } => {
            let all = server.clients()?;
            if json {
                let list: Vec<_> = all.iter().map(json_of).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                for c in &all {
                    let kind = if c.is_public() {
                        "public"
                    } else {
                        "confidential"
                    };
                    println!(
                        "{}\t{}\t{kind}\t{}",
                        c.id,
                        c.name,
                        c.redirect_uris.join(" ")
                    );
                }
            }
        }
        ClientCommand::Show { id, json } => {
            let Some(c) = server.client(&id)? else {
                anyhow::bail!("no application '{id}'");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&json_of(&c))?);
            } else {
                print_client(&c);
            }
        }
        ClientCommand::Remove { id } => {
            server.remove_client(&id, actor, now())?;
            eprintln!("removed {id}; its tokens no longer work");
        }
        ClientCommand::RotateSecret { id } => {
            let secret = server.rotate_client_secret(&id, actor, now())?;
            eprintln!("new client secret for {id} (shown once; the old one no longer works):");
            println!("{}", secret.as_str());
        }
        ClientCommand::HashSecret => {
            let mut secret = zeroize::Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut secret)?;
            let hash = countersign_server::domain::sha256(
                secret.trim_end_matches(['\r', '\n']).as_bytes(),
            );
            println!("{}", data_encoding::HEXLOWER.encode(&hash));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs one `oidc` command.
pub fn run_oidc(server: &Server, dir: &DataDir, cmd: OidcCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OidcCommand::RotateKeys => {
            let published_for =
                countersign_server::domain::oidc::keys_published_for(&server.config);
            let r = TokenKeys::rotate(&TokenKeys::file(dir.root()), published_for, now())?;
            println!("current keys: {}", r.current.join(", "));
            if !r.still_published.is_empty() {
                println!(
                    "retired, still published for {published_for} s: {}",
                    r.still_published.join(", ")
                );
            }
            if !r.dropped.is_empty() {
                println!("dropped: {}", r.dropped.join(", "));
            }
            // Instances sharing a PostgreSQL database take the new keys
            // from it as soon as they hear of them.
            if let Some(keys) = &server.shared_keys {
                keys.publish(&server.store, "oidc-keys.json", now())?;
                println!("published to every instance of the store");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
