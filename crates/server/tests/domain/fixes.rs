//! The help desk's fixes: each with a reason, never on an account above
//! the actor's role, and committed with the rows that stand for it.

use super::{refusal, Domain, IP, T0};
use countersign_server::domain::fixes::{Fix, Staff};
use countersign_server::domain::methods::Authority;
use countersign_server::domain::Code;
use countersign_server::store::Role;

const DESK: Staff<'static> = Staff {
    name: "desk1",
    role: Role::Helpdesk,
};

#[test]
fn a_fix_needs_a_reason_of_one_plain_line() {
    let d = Domain::new();
    d.officer("cs0101");
    for reason in ["", "  ok ", "called\u{1b}[2J", &"x".repeat(501)] {
        let r = d.s.apply_fix("cs0101", &Fix::Unlock, DESK, reason, IP, T0);
        assert!(matches!(refusal(r), Code::Invalid(_)), "{reason:?}");
    }
    assert!(d.rows("helpdesk.").is_empty(), "nothing was done");
    let r =
        d.s.apply_fix("cs0101", &Fix::Unlock, DESK, "officer called", IP, T0);
    assert!(r.unwrap().is_none());
    assert_eq!(
        d.rows("helpdesk."),
        ["helpdesk.unlock ok"],
        "the fix's own row"
    );
    assert_eq!(
        d.rows("user.unlock"),
        ["user.unlock ok"],
        "and the change's"
    );
    d.chain_verifies();
}

#[test]
fn the_help_desk_cannot_fix_an_administrator() {
    let d = Domain::new();
    d.officer("admin1");
    d.s.set_role("admin1", Role::Admin, "root", T0).unwrap();
    let r = d.s.apply_fix(
        "admin1",
        &Fix::ResetPassword,
        DESK,
        "says they forgot it",
        IP,
        T0,
    );
    assert_eq!(refusal(r), Code::RoleTooHigh);
    assert_eq!(d.rows("helpdesk."), ["helpdesk.reset_password refused"]);
    // The password still works: nothing changed.
    assert!(d
        .s
        .check_password("admin1", "Correct-Horse-Battery-9", IP, T0)
        .is_ok());
}

#[test]
fn a_password_reset_gives_a_temporary_password_and_ends_the_old_one() {
    let d = Domain::new();
    let old = d.officer("cs0101");
    let temporary =
        d.s.apply_fix("cs0101", &Fix::ResetPassword, DESK, "forgot it", IP, T0)
            .unwrap()
            .expect("a temporary password to read out");
    let r = d.s.check_password("cs0101", old, IP, T0);
    assert_eq!(refusal(r), Code::InvalidCredentials);
    assert!(d.s.check_password("cs0101", &temporary, IP, T0).is_ok());
    d.chain_verifies();
}

#[test]
fn a_reset_prepared_beforehand_is_checked_like_any_and_goes_to_its_own_account() {
    let d = Domain::new();
    d.officer("admin1");
    d.s.set_role("admin1", Role::Admin, "root", T0).unwrap();
    let old = d.officer("cs0101");
    d.officer("cs0102");
    // Above the staff member's role, or without a reason: prepared all
    // the same (it changes nothing), refused when applied, and audited
    // as a refusal of the account it was prepared for.
    let prepared =
        d.s.prepare_fix("admin1", Fix::ResetPassword, DESK, ("forgot it", IP), T0)
            .unwrap();
    let r = d.s.apply_prepared_fix(prepared, DESK, "forgot it", IP, T0);
    assert_eq!(refusal(r), Code::RoleTooHigh);
    let prepared =
        d.s.prepare_fix("cs0101", Fix::ResetPassword, DESK, ("", IP), T0)
            .unwrap();
    let r = d.s.apply_prepared_fix(prepared, DESK, "", IP, T0);
    assert!(matches!(refusal(r), Code::Invalid(_)));
    // Made for an officer who became an administrator before it was
    // applied: refused as the account stands when applied.
    let prepared =
        d.s.prepare_fix("cs0102", Fix::ResetPassword, DESK, ("forgot it", IP), T0)
            .unwrap();
    d.s.set_role("cs0102", Role::Admin, "root", T0).unwrap();
    let r = d.s.apply_prepared_fix(prepared, DESK, "forgot it", IP, T0);
    assert_eq!(refusal(r), Code::RoleTooHigh);
    d.s.set_role("cs0102", Role::Officer, "root", T0).unwrap();
    // Prepared with a reason, applied without one: the reason applied is
    // the one checked.
    let prepared =
        d.s.prepare_fix("cs0102", Fix::ResetPassword, DESK, ("forgot it", IP), T0)
            .unwrap();
    let r = d.s.apply_prepared_fix(prepared, DESK, " ", IP, T0);
    assert!(matches!(refusal(r), Code::Invalid(_)));
    assert_eq!(
        d.rows("helpdesk."),
        [
            "helpdesk.reset_password refused",
            "helpdesk.reset_password refused"
        ]
    );
    assert!(d.s.check_password("cs0101", old, IP, T0).is_ok());
    assert!(d.s.check_password("cs0102", old, IP, T0).is_ok());
    // Prepared and applied: the account it was made for, no other.
    let prepared =
        d.s.prepare_fix("cs0101", Fix::ResetPassword, DESK, ("forgot it", IP), T0)
            .unwrap();
    let temporary =
        d.s.apply_prepared_fix(prepared, DESK, "forgot it", IP, T0)
            .unwrap()
            .expect("a temporary password to read out");
    assert!(d.s.check_password("cs0101", &temporary, IP, T0).is_ok());
    assert!(d.s.check_password("cs0102", old, IP, T0).is_ok());
    let filter = countersign_server::store::AuditFilter {
        action: Some("user.reset_password".into()),
        ..Default::default()
    };
    let rows = d.s.store.audit_entries(&filter).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].target, "cs0101");
    d.chain_verifies();
}

#[test]
fn a_methods_reset_removes_every_method_and_another_officers_device_is_not_found() {
    let d = Domain::new();
    d.officer("cs0101");
    d.officer("cs0102");
    d.questions("cs0101", Authority::FirstMethod);
    let (device, _) = super::push::device(&d, "cs0102", "Other phone");
    // A device of another officer is not this officer's to remove.
    let r = d.s.apply_fix(
        "cs0101",
        &Fix::RemoveDevice(device),
        DESK,
        "lost phone",
        IP,
        T0,
    );
    assert_eq!(refusal(r), Code::NotFound);
    d.s.apply_fix("cs0101", &Fix::ResetMethods, DESK, "new phone", IP, T0)
        .unwrap();
    assert_eq!(d.s.methods("cs0101").unwrap().count(), 0);
    assert_eq!(
        d.s.methods("cs0102").unwrap().count(),
        1,
        "the other keeps theirs"
    );
    d.chain_verifies();
}

#[test]
fn a_test_push_to_an_account_above_the_staff_members_role_is_refused() {
    let d = Domain::new();
    d.officer("admin1");
    d.s.set_role("admin1", Role::Admin, "root", T0).unwrap();
    let (device, _) = super::push::device(&d, "admin1", "Admin's phone");
    let at = T0 * 1000;
    // Help-desk staff: refused and audited, and the admin's allowance of
    // requests is untouched (no challenge made).
    let r =
        d.s.helpdesk_push("admin1", Some(&device), "ALEA Portal", DESK, IP, at);
    assert_eq!(refusal(r), Code::RoleTooHigh);
    assert_eq!(d.rows("helpdesk.push"), ["helpdesk.push refused"]);
    assert!(d.rows("challenge.create").is_empty());
    // An administrator may; a label past its length is refused first.
    let admin = Staff {
        name: "root",
        role: Role::Admin,
    };
    let long = "x".repeat(65);
    let r =
        d.s.helpdesk_push("admin1", Some(&device), &long, admin, IP, at);
    assert!(matches!(refusal(r), Code::Invalid("invalid_label")));
    d.s.helpdesk_push("admin1", Some(&device), &"x".repeat(64), admin, IP, at)
        .unwrap();
    assert_eq!(d.rows("challenge.create").len(), 1);
}

#[test]
fn a_fix_asked_in_capitals_is_audited_under_the_accounts_own_name() {
    let d = Domain::new();
    d.officer("cs0101");
    d.s.apply_fix("CS0101", &Fix::Unlock, DESK, "called in", IP, T0)
        .unwrap();
    let rows = d.s.store.audit_entries(&Default::default()).unwrap();
    let fix = rows.iter().find(|r| r.action == "helpdesk.unlock").unwrap();
    assert_eq!(fix.target, "cs0101");
    let unlock = rows.iter().find(|r| r.action == "user.unlock").unwrap();
    assert_eq!(unlock.target, "cs0101");
    // An enrolment code asked for in capitals, too.
    d.s.enrollment("CS0101", "hd0001", Authority::Proven, T0)
        .unwrap();
    let rows = d.s.store.audit_entries(&Default::default()).unwrap();
    let link = rows
        .iter()
        .find(|r| r.action == "device.enroll_link")
        .unwrap();
    assert_eq!(link.target, "cs0101");
}

#[test]
fn a_staff_member_may_reset_only_so_many_accounts_an_hour() {
    let mut config = countersign_server::infra::config::Config::default();
    config.users.helpdesk_resets_per_hour = 4;
    let d = Domain::with(config);
    for u in ["cs0101", "cs0102", "cs0103", "cs0104", "cs0105", "admin1"] {
        d.officer(u);
    }
    d.s.set_role("admin1", Role::Admin, "root", T0).unwrap();
    // cs0104's phone is its only method; cs0105 has questions beside it.
    let (only, _) = super::push::device(&d, "cs0104", "Phone");
    let (spare, _) = super::push::device(&d, "cs0105", "Phone");
    d.questions("cs0105", Authority::Proven);
    let counted = |at: u64| {
        let (n, _) =
            d.s.store
                .address_events("helpdesk-reset", DESK.name, (at + 1).saturating_sub(3600))
                .unwrap();
        n
    };
    // Password and methods resets count; other fixes do not, nor a reset
    // refused for the account's role (nothing is hashed for it either),
    // nor removing a device that is not the account's last method.
    d.s.apply_fix("cs0101", &Fix::ResetPassword, DESK, "forgot it", IP, T0)
        .unwrap();
    d.s.apply_fix("cs0102", &Fix::ResetMethods, DESK, "new phone", IP, T0 + 10)
        .unwrap();
    d.s.apply_fix("cs0103", &Fix::Unlock, DESK, "locked out", IP, T0 + 20)
        .unwrap();
    // A password reset as the console makes it: prepared, then applied.
    let reset = |user: &str, at: u64| {
        let prepared =
            d.s.prepare_fix(user, Fix::ResetPassword, DESK, ("forgot it", IP), at)
                .unwrap();
        d.s.apply_prepared_fix(prepared, DESK, "forgot it", IP, at)
    };
    assert_eq!(refusal(reset("admin1", T0 + 25)), Code::RoleTooHigh);
    let spare_removed = Fix::RemoveDevice(spare);
    d.s.apply_fix("cs0105", &spare_removed, DESK, "lost it", IP, T0 + 26)
        .unwrap();
    assert_eq!(counted(T0 + 26), 2);
    // A reset is counted when its password is prepared, before hashing:
    // one prepared and never applied (the browser left) still counts.
    reset("cs0103", T0 + 30).unwrap();
    let _dropped =
        d.s.prepare_fix(
            "cs0104",
            Fix::ResetPassword,
            DESK,
            ("forgot it", IP),
            T0 + 35,
        )
        .unwrap();
    assert_eq!(counted(T0 + 35), 4);
    // Past the limit: refused and audited, nothing changed; removing an
    // account's last method is a methods reset.
    let before = d.s.user("cs0104").unwrap().password_hash;
    assert_eq!(refusal(reset("cs0104", T0 + 40)), Code::TooManyRequests);
    let r =
        d.s.apply_fix("cs0104", &Fix::ResetMethods, DESK, "new phone", IP, T0 + 41);
    assert_eq!(refusal(r), Code::TooManyRequests);
    let remove = Fix::RemoveDevice(only);
    let r =
        d.s.apply_fix("cs0104", &remove, DESK, "lost it", IP, T0 + 42);
    assert_eq!(refusal(r), Code::TooManyRequests);
    assert_eq!(d.s.user("cs0104").unwrap().password_hash, before);
    assert!(d.s.methods("cs0104").unwrap().app);
    assert_eq!(counted(T0 + 42), 4);
    assert_eq!(
        d.rows("helpdesk.re"),
        [
            "helpdesk.reset_password ok",
            "helpdesk.reset_methods ok",
            "helpdesk.reset_password refused",
            "helpdesk.remove_device ok",
            "helpdesk.reset_password ok",
            "helpdesk.reset_password refused",
            "helpdesk.reset_methods refused",
            "helpdesk.remove_device refused",
        ]
    );
    // Other fixes, another staff member, and commands on the server itself
    // (no address) go on.
    d.s.apply_fix("cs0104", &Fix::Unlock, DESK, "locked out", IP, T0 + 50)
        .unwrap();
    d.s.apply_fix("cs0104", &remove, other_desk(), "lost it", IP, T0 + 60)
        .unwrap();
    d.s.apply_fix("cs0103", &Fix::ResetMethods, DESK, "new phone", "", T0 + 61)
        .unwrap();
    // An hour after the first, one more; forgetting old counts keeps the
    // rest.
    d.s.forget_old_resets(T0 + 3600).unwrap();
    assert_eq!(counted(T0 + 3600), 3);
    d.s.apply_fix(
        "cs0101",
        &Fix::ResetMethods,
        DESK,
        "new phone",
        IP,
        T0 + 3600,
    )
    .unwrap();
    let r =
        d.s.apply_fix("cs0102", &Fix::ResetMethods, DESK, "again", IP, T0 + 3601);
    assert_eq!(refusal(r), Code::TooManyRequests);
    d.chain_verifies();
}

/// Another help-desk member.
fn other_desk() -> Staff<'static> {
    Staff {
        name: "desk2",
        role: Role::Helpdesk,
    }
}
