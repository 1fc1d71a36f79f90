//! TLS between an instance and PostgreSQL: `./test.sh` runs the whole
//! PostgreSQL pass over it (`sslmode=verify-full`, the cluster's own CA);
//! these tests check that it is really used and really verified.

use countersign_server::store::Store;
use countersign_testkit::postgres;

use crate::common::TestServer;

/// The TLS parameters the run uses, or `None` (with the reason printed)
/// when the tests do not run on a cluster that offers TLS.
fn tls_run() -> Option<String> {
    match std::env::var(postgres::TEST_CLUSTER_TLS_ENV) {
        Ok(tls) if postgres::on_postgres() && !tls.is_empty() => Some(tls),
        _ => {
            println!(
                "skipped: needs the test cluster with TLS (./test.sh runs this on its cluster)"
            );
            None
        }
    }
}

/// Opens a store at `url` off the test's runtime; the error's text.
fn refusal(url: String) -> String {
    std::thread::spawn(move || match Store::open_url(&url) {
        Ok(_) => panic!("a store opened at {url}"),
        Err(e) => e.to_string(),
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_connection_a_server_keeps_to_its_database_is_encrypted() {
    if tls_run().is_none() {
        return;
    }
    let ts = TestServer::start().await;
    ts.add_user("cs2301");
    ts.enroll("cs2301").await;
    // Counted from a plain connection of the test's own, left out.
    let rows = postgres::sql(
        ts.dir.path(),
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s ON s.pid = a.pid \
         WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        &[],
    );
    let (encrypted, plain) = (rows[0][0].as_str(), rows[0][1].as_str());
    assert_eq!(plain, "0", "{encrypted} encrypted, {plain} plain");
    assert_ne!(encrypted, "0", "the server keeps no connection at all");
}

#[test]
fn a_database_whose_certificate_another_ca_signed_is_refused() {
    if tls_run().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let other = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, other.pem()).unwrap();
    let url = format!(
        "{}/postgres?sslmode=verify-full&sslrootcert={}",
        postgres::cluster().unwrap(),
        ca.display()
    );
    let why = refusal(url);
    assert!(why.contains("UnknownIssuer"), "{why}");
}

#[test]
fn a_database_reached_by_a_name_its_certificate_lacks_is_refused() {
    if tls_run().is_none() {
        return;
    }
    // The cluster's certificate names 127.0.0.1 only.
    let url = postgres::database_named("cs_tls_names").unwrap();
    assert!(url.contains("@127.0.0.1:"), "{url}");
    let why = refusal(url.replace("@127.0.0.1:", "@localhost:"));
    assert!(why.contains("not valid for name \"localhost\""), "{why}");
    // The same URL by the certificate's name opens.
    std::thread::spawn(move || Store::open_url(&url).map(|_| ()))
        .join()
        .unwrap()
        .unwrap();
}

#[test]
fn a_password_sign_in_is_bound_to_the_tls_connection() {
    let Some(tls) = tls_run() else {
        return;
    };
    // The cluster admits this role with SCRAM over TLS only
    // (scripts/postgres.sh); `channel_binding=require` fails unless the
    // connection's tls-server-end-point hash is offered and matches.
    let cluster = postgres::cluster().unwrap();
    let admin = format!("{cluster}/postgres");
    std::thread::spawn(move || {
        let mut c = ::postgres::Client::connect(&admin, ::postgres::NoTls).unwrap();
        c.batch_execute(
            "DO $$ BEGIN \
               IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'countersign_scram') THEN \
                 CREATE ROLE countersign_scram LOGIN PASSWORD 'scram-test-password'; \
               END IF; END $$",
        )
        .unwrap();
    })
    .join()
    .unwrap();
    let url = cluster.replace("postgres@", "countersign_scram:scram-test-password@");
    let url = format!("{url}/postgres?channel_binding=require&{tls}");
    std::thread::spawn(move || Store::ping_url(&url))
        .join()
        .unwrap()
        .unwrap();
}
