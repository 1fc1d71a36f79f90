//! The domain's services called directly, on a server over a temporary
//! data folder: no router, no TLS, no port. Each rule is checked where it
//! lives, with its refusal's code, and with what it left in the database
//! (nothing, when refused) and in the audit chain.

mod accounts;
mod audit;
mod codes;
mod copy;
mod fixes;
mod methods;
mod push;

use countersign_server::domain::methods::Authority;
use countersign_server::domain::Code;
use countersign_server::infra::config::Config;
use countersign_server::infra::datadir::DataDir;
use countersign_server::store::AuditFilter;
use countersign_server::{Error, Server};

/// The clock the tests run on (Unix seconds).
const T0: u64 = 1_900_000_000;
/// The address every request comes from.
const IP: &str = "192.0.2.7";

/// Runs `f` `each` times on each of `threads` threads, all at once:
/// how many succeeded, and how many were refused with `code`. Any other
/// error fails the test.
fn at_once<T>(
    threads: usize,
    each: usize,
    code: &str,
    f: impl Fn() -> Result<T, Error> + Sync,
) -> (usize, usize) {
    let sum = |a: (usize, usize), b: (usize, usize)| (a.0 + b.0, a.1 + b.1);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    (0..each)
                        .map(|_| match f() {
                            Ok(_) => (1, 0),
                            Err(e) => {
                                assert_eq!(e.code(), code, "{e}");
                                (0, 1)
                            }
                        })
                        .fold((0, 0), sum)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().unwrap())
            .fold((0, 0), sum)
    })
}

/// A server on a temporary data folder.
struct Domain {
    _dir: tempfile::TempDir,
    s: Server,
}

impl Domain {
    fn new() -> Self {
        Self::with(Config::default())
    }

    fn with(config: Config) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = countersign_testkit::postgres::store_for(dir.path()).unwrap_or_default();
        Self::in_folder(dir, config, &url)
    }

    /// A server on `store` (empty: SQLite in the data folder), whatever
    /// the run's back end.
    fn with_store(config: Config, store: &str) -> Self {
        Self::in_folder(tempfile::tempdir().unwrap(), config, store)
    }

    fn in_folder(dir: tempfile::TempDir, mut config: Config, store: &str) -> Self {
        config.store.url = store.to_string();
        config.store.kek_file = Some(countersign_testkit::postgres::kek_file());
        let data = DataDir::open(dir.path()).unwrap();
        let s = Server::open(config, &data).unwrap();
        Domain { _dir: dir, s }
    }

    /// The helpers around a server opened elsewhere.
    fn around(s: Server) -> Self {
        Domain {
            _dir: tempfile::tempdir().unwrap(),
            s,
        }
    }

    /// A new officer whose temporary password was changed; returns the
    /// password.
    fn officer(&self, username: &str) -> &'static str {
        let (_, temporary) = self
            .s
            .add_user(username, "Pat", "Doe", Some("1234"), "admin", T0)
            .unwrap();
        let new = "Correct-Horse-Battery-9";
        self.s
            .change_password(username, &temporary, new, new, IP, T0)
            .unwrap()
            .unwrap();
        new
    }

    /// Registers five security questions for `username`.
    fn questions(&self, username: &str, authority: Authority) {
        let chosen: Vec<(usize, String)> = (0..5).map(|q| (q, format!("answer {q}"))).collect();
        self.s
            .register_answers(username, &chosen, authority, IP, T0)
            .unwrap()
            .unwrap();
    }

    /// The audit rows whose action starts with `action`, as
    /// `action outcome` lines, oldest first.
    fn rows(&self, action: &str) -> Vec<String> {
        let filter = AuditFilter {
            action: Some(action.to_string()),
            ..AuditFilter::default()
        };
        self.s
            .store
            .audit_entries(&filter)
            .unwrap()
            .into_iter()
            .map(|e| format!("{} {}", e.action, e.outcome))
            .collect()
    }

    /// The audit chain verifies, end to end.
    fn chain_verifies(&self) {
        assert!(self.s.store.verify_audit().unwrap().is_ok());
    }
}

/// The refusal's code, or a failure naming what came instead.
fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> Code {
    match r {
        Err(Error::Refused { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}
