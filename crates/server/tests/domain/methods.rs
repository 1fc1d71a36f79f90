//! Methods: registering them on the right authority, proving them, and
//! never removing the last one.

use super::{refusal, Domain, IP, T0};
use countersign_server::domain::methods::{Authority, MethodKind};
use countersign_server::domain::Code;

#[test]
fn the_last_method_is_never_removed() {
    let d = Domain::new();
    d.officer("cs0101");
    d.questions("cs0101", Authority::FirstMethod);
    d.s.register_phone("cs0101", "+12025550123", Authority::Proven, IP, T0)
        .unwrap();
    assert_eq!(d.s.methods("cs0101").unwrap().count(), 2);
    assert!(d
        .s
        .remove_method("cs0101", MethodKind::Phone, "cs0101", IP, T0)
        .unwrap());
    let last =
        d.s.remove_method("cs0101", MethodKind::Questions, "cs0101", IP, T0);
    assert_eq!(refusal(last), Code::LastMethod);
    assert_eq!(d.s.methods("cs0101").unwrap().questions.len(), 5);
    // Nothing registered of that kind: nothing to remove, and no refusal.
    assert!(!d
        .s
        .remove_method("cs0101", MethodKind::App, "cs0101", IP, T0)
        .unwrap());
    d.chain_verifies();
}

#[test]
fn a_first_method_binds_only_while_the_account_has_none() {
    let d = Domain::new();
    d.officer("cs0101");
    d.questions("cs0101", Authority::FirstMethod);
    // A second browser that signed in on the password alone, before the
    // first registered anything, cannot add a method now.
    let late =
        d.s.register_phone("cs0101", "+12025550123", Authority::FirstMethod, IP, T0);
    assert_eq!(refusal(late), Code::MethodsChanged);
    assert!(d.s.methods("cs0101").unwrap().phone.is_none());
    assert_eq!(
        d.rows("method.phone.register"),
        ["method.phone.register refused"]
    );
}

#[test]
fn security_answers_prove_the_officer_only_all_right_and_in_any_case() {
    let d = Domain::new();
    d.officer("cs0101");
    d.questions("cs0101", Authority::FirstMethod);
    let asked = [0, 2, 4];
    let right: Vec<String> = asked.iter().map(|q| format!("  ANSWER {q} ")).collect();
    assert!(d.s.check_answers("cs0101", &asked, &right, IP, T0).unwrap());
    let mut one_wrong = right.clone();
    one_wrong[1] = "answer 3".into();
    assert!(!d
        .s
        .check_answers("cs0101", &asked, &one_wrong, IP, T0)
        .unwrap());
    // Fewer answers than questions asked never pass.
    assert!(!d
        .s
        .check_answers("cs0101", &asked, &right[..2], IP, T0)
        .unwrap());
    assert!(!d.s.check_answers("cs0101", &[], &[], IP, T0).unwrap());
    let rows = d.rows("method.questions.check");
    assert_eq!(rows[0], "method.questions.check ok");
    assert!(rows[1..].iter().all(|r| !r.ends_with(" ok")), "{rows:?}");
}

#[test]
fn answers_that_break_the_rules_are_named_and_nothing_is_registered() {
    let d = Domain::new();
    d.officer("cs0101");
    let same: Vec<(usize, String)> = (0..5).map(|q| (q, "same".to_string())).collect();
    let problems =
        d.s.register_answers("cs0101", &same, Authority::FirstMethod, IP, T0)
            .unwrap()
            .unwrap_err();
    assert!(!problems.is_empty());
    let four: Vec<(usize, String)> = (0..4).map(|q| (q, format!("answer {q}"))).collect();
    assert!(d
        .s
        .register_answers("cs0101", &four, Authority::FirstMethod, IP, T0)
        .unwrap()
        .is_err());
    assert_eq!(d.s.methods("cs0101").unwrap().count(), 0);
}
