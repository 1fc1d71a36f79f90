use super::*;

fn refused(url: &str) -> String {
    match Target::parse(url) {
        Err(StoreError::BadUrl(reason)) => reason,
        Err(e) => panic!("{url}: refused for another reason: {e}"),
        Ok(_) => panic!("{url}: accepted"),
    }
}

/// A CA certificate in a PEM file of its own.
fn ca_file() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params
        .self_signed(&rcgen::KeyPair::generate().unwrap())
        .unwrap();
    let path = dir.path().join("ca.pem");
    std::fs::write(&path, cert.pem()).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

use postgres::config::{Host, SslMode};

#[test]
fn a_url_without_tls_settings_is_plain_and_read_by_the_driver_as_written() {
    let t = Target::parse("postgres://cs@127.0.0.1:5432/countersign").unwrap();
    assert!(t.tls.is_none());
    assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
    assert_eq!(t.config.get_dbname(), Some("countersign"));
    assert_eq!(t.config.get_application_name(), Some("countersign-server"));
    // Parameters and passwords reach the driver untouched: a space as
    // %20, a '/' in a password.
    let t = Target::parse(
        "postgres://cs:ab/cd+ef@db/countersign?sslmode=disable&options=-c%20statement_timeout%3D5s&application_name=a",
    )
    .unwrap();
    assert!(t.tls.is_none());
    assert_eq!(t.config.get_password(), Some(&b"ab/cd+ef"[..]));
    assert_eq!(t.config.get_hosts(), [Host::Tcp("db".into())]);
    assert_eq!(t.config.get_options(), Some("-c statement_timeout=5s"));
    assert_eq!(t.config.get_application_name(), Some("a"));
}

#[test]
fn verify_full_and_require_both_verify_against_the_named_ca() {
    let (dir, _) = ca_file();
    // A '+' in the file's name stays a '+', as libpq reads it.
    let ca = dir.path().join("c+a.pem");
    std::fs::copy(dir.path().join("ca.pem"), &ca).unwrap();
    for mode in ["verify-full", "require"] {
        let t = Target::parse(&format!(
            "postgres://cs@db.example:5432/countersign?application_name=a&sslmode={mode}&sslrootcert={}",
            ca.display()
        ))
        .unwrap();
        assert!(t.tls.is_some(), "{mode}");
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require, "{mode}");
        assert_eq!(t.config.get_application_name(), Some("a"));
    }
}

#[test]
fn modes_that_could_fall_back_or_skip_the_host_name_are_refused_with_a_reason() {
    for mode in ["prefer", "allow"] {
        let why = refused(&format!("postgres://cs@db/c?sslmode={mode}"));
        assert!(why.contains("falls back to plain text"), "{why}");
    }
    let why = refused("postgres://cs@db/c?sslmode=verify-ca");
    assert!(why.contains("host name"), "{why}");
    let why = refused("postgres://cs@db/c?sslmode=maybe");
    assert!(why.contains("unknown sslmode \"maybe\""), "{why}");
}

#[test]
fn tls_without_a_ca_file_or_a_ca_file_without_tls_is_refused() {
    let why = refused("postgres://cs@db/c?sslmode=verify-full");
    assert!(why.contains("sslrootcert=FILE"), "{why}");
    let (_dir, ca) = ca_file();
    let why = refused(&format!("postgres://cs@db/c?sslrootcert={ca}"));
    assert!(why.contains("not encrypted"), "{why}");
}

#[test]
fn an_unreadable_or_empty_ca_file_is_named_in_the_error() {
    let why = refused("postgres://cs@db/c?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem");
    assert!(why.contains("/nonexistent/ca.pem"), "{why}");
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    let why = refused(&format!(
        "postgres://cs@db/c?sslmode=verify-full&sslrootcert={}",
        empty.display()
    ));
    assert!(why.contains("holds no certificate"), "{why}");
}

#[test]
fn a_refusal_never_repeats_the_password() {
    for url in [
        "postgres://cs:hunter2secret@db/c?sslmode=prefer",
        "postgres://cs:hunter2secret@db/c?sslmode=verify-full",
        "postgres://cs:hunter2secret@db/c?sslmode=verify-full&sslrootcert=/none",
        "postgres://cs:hunter2secret@db:notaport/c",
        "postgres://cs:hunter2secret@db/c?nonsense=1",
        "postgres://cs:hunter2#secret@db/c",
    ] {
        let why = Target::parse(url).err().expect(url).to_string();
        assert!(!why.contains("hunter2secret"), "{why}");
    }
}

#[test]
fn loopback_and_unix_sockets_are_told_from_the_network() {
    let local = |url: &str| Target::parse(url).unwrap().crosses_no_network();
    assert!(local("postgres://cs@127.0.0.1/c"));
    assert!(local("postgres://cs@localhost:5433/c"));
    assert!(local("postgres://cs@[::1]/c"));
    assert!(local("postgresql:///c?host=/var/run/postgresql"));
    assert!(local("postgresql:///c?host=%2Frun%2Fpostgresql"));
    assert!(local("postgres://cs@db.example/c?hostaddr=127.0.0.1"));
    assert!(!local("postgres://cs@10.0.0.5/c"));
    assert!(!local("postgres://cs@db.example/c"));
    assert!(!local("postgres://cs@localhost/c?hostaddr=10.0.0.5"));
    assert!(!local("postgres://cs@localhost,db.example/c"));
}

#[test]
fn the_channel_binding_hash_follows_the_certificate_signature() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["db".into()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    let der = cert.der();
    let hash = end_point_hash(der).unwrap();
    assert_eq!(
        hash,
        ring::digest::digest(&ring::digest::SHA384, der).as_ref()
    );
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["db".into()])
        .unwrap()
        .self_signed(&pair)
        .unwrap();
    assert!(end_point_hash(cert.der()).is_none());
}
