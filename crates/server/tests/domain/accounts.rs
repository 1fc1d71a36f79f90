//! Accounts and passwords: adding officers, the password step, the
//! lockout and the password rules.

use super::{refusal, Domain, IP, T0};
use countersign_core::password::Violation;
use countersign_server::domain::Code;

#[test]
fn a_new_officer_signs_in_with_the_temporary_password_and_must_change_it() {
    let d = Domain::new();
    let (user, temporary) =
        d.s.add_user("cs0101", "Pat", "Doe", Some("1234"), "admin", T0)
            .unwrap();
    assert!(user.must_change);
    let ok = d.s.check_password("cs0101", &temporary, IP, T0).unwrap();
    assert!(ok.must_change);
    // The same username again is refused, and the first account is kept.
    let again = d.s.add_user("cs0101", "Other", "Name", None, "admin", T0);
    assert_eq!(refusal(again), Code::UserExists);
    assert_eq!(d.s.user("cs0101").unwrap().first_name, "Pat");
    assert_eq!(d.rows("user.add"), ["user.add ok"]);
}

#[test]
fn bad_names_are_refused_and_change_nothing() {
    let d = Domain::new();
    for (username, first, says) in [
        ("CS0101", "Pat", "invalid_username"),
        ("c", "Pat", "invalid_username"),
        ("cs0101", " ", "invalid_name"),
        ("cs0101", "Pat\u{1b}[2J", "invalid_name"),
    ] {
        let e =
            d.s.add_user(username, first, "Doe", None, "admin", T0)
                .unwrap_err();
        assert_eq!(e.code(), says, "{username} {first:?}");
    }
    let bad_digits =
        d.s.add_user("cs0101", "Pat", "Doe", Some("12a4"), "admin", T0);
    assert_eq!(refusal(bad_digits), Code::Invalid("invalid_ssn_last4"));
    assert!(d.s.store.user_by_name("cs0101").unwrap().is_none());
    assert!(d.rows("user.add").is_empty());
}

#[test]
fn wrong_passwords_lock_the_account_and_the_lock_tells_only_the_right_password() {
    let d = Domain::new();
    let password = d.officer("cs0101");
    let max = d.s.config.lockout.max_failures;
    for i in 0..max {
        // A different address each time: the per-address limit is not
        // what locks the account.
        let ip = format!("192.0.2.{}", i + 10);
        let wrong = d.s.check_password("cs0101", "Wrong-Password-1", &ip, T0);
        assert_eq!(refusal(wrong), Code::InvalidCredentials);
    }
    // Locked: a wrong password still gets the same answer as ever...
    let wrong =
        d.s.check_password("cs0101", "Wrong-Password-1", "192.0.2.99", T0);
    assert_eq!(refusal(wrong), Code::InvalidCredentials);
    // ...and only the right one learns of the lock.
    let right = d.s.check_password("cs0101", password, "192.0.2.99", T0);
    assert_eq!(refusal(right), Code::AccountLocked);
    // The lock ends on its own.
    let later = T0 + d.s.config.lockout.minutes * 60 + 1;
    assert!(d
        .s
        .check_password("cs0101", password, "192.0.2.99", later)
        .is_ok());
    let rows = d.rows("signin.password");
    assert_eq!(rows.iter().filter(|r| r.ends_with(" locked")).count(), 1);
    d.chain_verifies();
}

#[test]
fn an_unknown_officer_and_a_wrong_password_get_the_same_answer() {
    let d = Domain::new();
    d.officer("cs0101");
    let unknown = d.s.check_password("nobody", "Wrong-Password-1", IP, T0);
    let wrong = d.s.check_password("cs0101", "Wrong-Password-1", IP, T0);
    let (Err(a), Err(b)) = (unknown, wrong) else {
        panic!("both must be refused");
    };
    assert_eq!((a.code(), a.to_string()), (b.code(), b.to_string()));
}

#[test]
fn an_officer_changes_the_password_once_a_day_and_never_back_to_a_recent_one() {
    let d = Domain::new();
    let current = d.officer("cs0101");
    let next = "Another-Good-Pass-42";
    let too_soon =
        d.s.change_password("cs0101", current, next, next, IP, T0 + 60)
            .unwrap()
            .unwrap_err();
    assert!(
        too_soon.iter().any(|v| matches!(v, Violation::TooSoon(_))),
        "{too_soon:?}"
    );
    let a_day_later = T0 + 86_400 + 1;
    d.s.change_password("cs0101", current, next, next, IP, a_day_later)
        .unwrap()
        .unwrap();
    let two_days_later = a_day_later + 86_400 + 1;
    let reused =
        d.s.change_password("cs0101", next, current, current, IP, two_days_later)
            .unwrap()
            .unwrap_err();
    assert!(
        reused.iter().any(|v| matches!(v, Violation::Reused(_))),
        "{reused:?}"
    );
    // A wrong current password is named; so is every rule the new one
    // breaks; and nothing changed.
    let wrong =
        d.s.change_password("cs0101", "not-it", "short", "other", IP, two_days_later)
            .unwrap()
            .unwrap_err();
    assert_eq!(wrong, [Violation::WrongCurrent]);
    let broken =
        d.s.change_password("cs0101", next, "short", "other", IP, two_days_later)
            .unwrap()
            .unwrap_err();
    assert!(broken.contains(&Violation::Mismatch), "{broken:?}");
    assert!(
        broken.iter().any(|v| matches!(v, Violation::TooShort(_))),
        "{broken:?}"
    );
    assert!(d
        .s
        .check_password("cs0101", next, IP, two_days_later)
        .is_ok());
    assert_eq!(
        d.rows("password.change"),
        [
            "password.change ok",
            "password.change refused",
            "password.change ok",
            "password.change refused",
            "password.change refused",
            "password.change refused"
        ]
    );
}

/// Registration requests sent at once from one address get the limit and
/// no more: the count and the request are one write.
#[test]
fn registration_requests_sent_at_once_get_the_limit_and_no_more() {
    use countersign_server::domain::registration::MAX_PER_IP_PER_HOUR;
    use countersign_server::store::NewRegistration;
    let d = &Domain::new();
    let queued: usize = std::thread::scope(|s| {
        let threads: Vec<_> = (0..8)
            .map(|t| {
                s.spawn(move || {
                    (0..2)
                        .filter(|i| {
                            let r = NewRegistration {
                                first_name: "Pat".into(),
                                last_name: "Doe".into(),
                                email: format!("pat{t}-{i}@example.gov"),
                                agency: "State Police".into(),
                                phone: String::new(),
                                reason: "Patrol".into(),
                            };
                            match d.s.request_registration(&r, IP, T0) {
                                Ok(_) => true,
                                Err(e) => {
                                    assert_eq!(refusal(Err::<(), _>(e)), Code::TooManyRequests);
                                    false
                                }
                            }
                        })
                        .count()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    assert_eq!(queued as u64, MAX_PER_IP_PER_HOUR);
    let rows = d.rows("registration.request");
    let count = |line: &str| rows.iter().filter(|r| *r == line).count();
    assert_eq!(count("registration.request queued"), 5);
    assert_eq!(count("registration.request refused"), 11);
}
