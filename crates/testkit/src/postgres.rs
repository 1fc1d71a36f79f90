//! The PostgreSQL back end in tests. `./test.sh` starts a throwaway
//! cluster (scripts/postgres.sh) and runs the server suites a second time
//! with `COUNTERSIGN_TEST_POSTGRES` set to its URL; each server a test
//! starts then gets a database of its own. Without the variable the
//! tests use the SQLite default. With `COUNTERSIGN_TEST_POSTGRES_TLS` set
//! too (`sslmode=verify-full&sslrootcert=...`, as `./test.sh` sets it),
//! the servers reach their databases over verified TLS; the tests' own
//! look behind a server's back stays plain.

use std::path::Path;

/// The variable naming the test cluster (a URL without a database).
pub const TEST_CLUSTER_ENV: &str = "COUNTERSIGN_TEST_POSTGRES";

/// The variable holding the URL parameters for TLS to the test cluster.
pub const TEST_CLUSTER_TLS_ENV: &str = "COUNTERSIGN_TEST_POSTGRES_TLS";

/// The key-encryption key the tests' servers seal shared keys with on
/// PostgreSQL (32 bytes, base64; a test value, never a real one).
pub const TEST_KEK: &str = "dGVzdC1rZWstMzItYnl0ZXMtLS0tLS0tLS0tLS0tLS0=";

/// A file holding [`TEST_KEK`], for servers started in the test process
/// (`store.kek_file`).
pub fn kek_file() -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("countersign-test-kek-{}", std::process::id()));
    if !path.exists() {
        // Tests on several threads may get here at once: each writes its
        // own file and moves it into place.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = path.with_extension(format!("tmp{n}"));
        std::fs::write(&tmp, TEST_KEK).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
    path
}

/// The test cluster's URL, if the tests run on PostgreSQL.
pub fn cluster() -> Option<String> {
    std::env::var(TEST_CLUSTER_ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| u.trim_end_matches('/').to_string())
}

/// The store URL for the server whose data folder is `data`: a database
/// of its own on the test cluster, the same one each time for the same
/// folder (a restarted server finds its state), over TLS when the tests
/// ask for it. `None` on SQLite.
pub fn store_for(data: &Path) -> Option<String> {
    plain_store_for(data).map(|url| with_tls(&url))
}

/// `url` with the TLS parameters of `COUNTERSIGN_TEST_POSTGRES_TLS`, if set.
pub fn with_tls(url: &str) -> String {
    match std::env::var(TEST_CLUSTER_TLS_ENV) {
        Ok(tls) if !tls.is_empty() => format!("{url}?{tls}"),
        _ => url.to_string(),
    }
}

/// The database a store URL names (without its parameters).
pub fn database_of(url: &str) -> String {
    let path = url.split('?').next().unwrap_or(url);
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// [`store_for`], always plain: for the tests' own connections.
fn plain_store_for(data: &Path) -> Option<String> {
    let cluster = cluster()?;
    let name = database_name(data);
    // The blocking client runs its own runtime: off any test runtime.
    std::thread::spawn(move || create_once(&cluster, &name))
        .join()
        .unwrap()
}

fn create_once(cluster: &str, name: &str) -> Option<String> {
    let mut admin = postgres::Client::connect(&format!("{cluster}/postgres"), postgres::NoTls)
        .unwrap_or_else(|e| panic!("the test cluster {cluster} cannot be reached: {e}"));
    // Parallel tests: one CREATE DATABASE at a time (each copies template1).
    admin.batch_execute("SELECT pg_advisory_lock(7)").unwrap();
    let exists = admin
        .query_opt(
            "SELECT 1 FROM pg_database WHERE datname = $1",
            &[&name.to_string()],
        )
        .unwrap()
        .is_some();
    if !exists {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
    }
    admin.batch_execute("SELECT pg_advisory_unlock(7)").unwrap();
    Some(format!("{cluster}/{name}"))
}

/// Points a `countersign-server` command at the database of the data
/// folder `data` when the tests run on PostgreSQL.
pub fn store_env(cmd: &mut std::process::Command, data: &Path) {
    match store_for(data) {
        Some(url) => cmd
            .env("COUNTERSIGN_STORE_URL", url)
            .env("COUNTERSIGN_KEK", TEST_KEK),
        None => cmd.env_remove("COUNTERSIGN_STORE_URL"),
    };
}

/// A fresh, empty database on the test cluster (for a store copy's
/// target, or a second look at one server's state), as a server's URL.
pub fn database_named(name: &str) -> Option<String> {
    let cluster = cluster()?;
    let name = name.to_string();
    std::thread::spawn(move || {
        let mut admin =
            postgres::Client::connect(&format!("{cluster}/postgres"), postgres::NoTls).unwrap();
        admin.batch_execute("SELECT pg_advisory_lock(7)").unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .unwrap();
        Some(with_tls(&format!("{cluster}/{name}")))
    })
    .join()
    .unwrap()
}

/// Drops the database `name` on the test cluster, cutting its
/// connections (a database that fails).
pub fn drop_database(name: &str) {
    let (cluster, name) = (
        cluster().expect("the tests run on PostgreSQL"),
        name.to_string(),
    );
    std::thread::spawn(move || {
        let mut admin =
            postgres::Client::connect(&format!("{cluster}/postgres"), postgres::NoTls).unwrap();
        admin
            .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .unwrap();
    })
    .join()
    .unwrap()
}

/// `cs_` and 16 hex digits of a hash of the folder's path.
fn database_name(data: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    data.hash(&mut h);
    format!("cs_{:016x}", h.finish())
}

/// Whether the tests run on PostgreSQL.
pub fn on_postgres() -> bool {
    cluster().is_some()
}

/// Runs one statement (`?1`-style parameters, all text) on the store of
/// the data folder `data`, behind the server's back, as an intruder or a
/// careless administrator would: the SQLite file in the folder, or its
/// database on the test cluster. Returns the rows, each column as text
/// (`NULL` as an empty string).
pub fn sql(data: &Path, sql: &str, params: &[&str]) -> Vec<Vec<String>> {
    let (data, sql) = (data.to_path_buf(), sql.to_string());
    let params: Vec<String> = params.iter().map(|p| p.to_string()).collect();
    std::thread::spawn(move || match plain_store_for(&data) {
        Some(url) => pg_sql(&url, &sql, &params),
        None => lite_sql(&data.join("countersign.db"), &sql, &params),
    })
    .join()
    .unwrap()
}

fn lite_sql(file: &Path, sql: &str, params: &[String]) -> Vec<Vec<String>> {
    use rusqlite::types::Value;
    let db = rusqlite::Connection::open(file).unwrap();
    let mut stmt = db.prepare(sql).unwrap();
    let n = stmt.column_count();
    let rows = stmt
        .query_map(rusqlite::params_from_iter(params), |r| {
            (0..n)
                .map(|i| {
                    Ok(match r.get::<_, Value>(i)? {
                        Value::Null => String::new(),
                        Value::Integer(v) => v.to_string(),
                        Value::Real(v) => v.to_string(),
                        Value::Text(v) => v,
                        Value::Blob(v) => data_encoding::HEXLOWER.encode(&v),
                    })
                })
                .collect()
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

fn pg_sql(url: &str, sql: &str, params: &[String]) -> Vec<Vec<String>> {
    use postgres::types::{ToSql, Type};
    let mut client = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let args: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as _).collect();
    let rows = client.query(&sql.replace('?', "$"), &args).unwrap();
    rows.iter()
        .map(|r| {
            (0..r.len())
                .map(|i| match *r.columns()[i].type_() {
                    Type::INT8 => r.get::<_, Option<i64>>(i).map(|v| v.to_string()),
                    Type::INT4 => r.get::<_, Option<i32>>(i).map(|v| v.to_string()),
                    Type::BOOL => r
                        .get::<_, Option<bool>>(i)
                        .map(|v| i32::from(v).to_string()),
                    Type::BYTEA => r
                        .get::<_, Option<Vec<u8>>>(i)
                        .map(|v| data_encoding::HEXLOWER.encode(&v)),
                    _ => r.get::<_, Option<String>>(i),
                })
                .map(Option::unwrap_or_default)
                .collect()
        })
        .collect()
}
