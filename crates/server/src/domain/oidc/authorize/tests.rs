use super::*;
use crate::infra::token_keys::TokenAlg;
use crate::store::FactorMethod;

fn request(require_mfa: bool) -> AuthRequest {
    AuthRequest {
        client: Client {
            id: "lets".into(),
            name: "LETS".into(),
            secret_hash: Some([1; 32]),
            redirect_uris: vec!["https://lets.example/cb".into()],
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            id_token_alg: TokenAlg::Rs256,
            require_mfa,
            max_age: None,
            in_config: false,
        },
        redirect_uri: "https://lets.example/cb".into(),
        state: "s".into(),
        nonce: String::new(),
        scope: "openid".into(),
        code_challenge: String::new(),
        prompt_login: false,
        prompt_none: false,
        max_age: None,
        require_mfa,
    }
}

fn session(authenticated_at: u64, factor: Option<(FactorMethod, bool)>) -> SignedIn {
    SignedIn {
        user_id: 1,
        sid: "sid".into(),
        authenticated_at,
        factor: factor.map(|(method, by_registration)| Factor {
            method,
            at: authenticated_at,
            by_registration,
        }),
        has_methods: true,
    }
}

const PUSH: Option<(FactorMethod, bool)> = Some((FactorMethod::App, false));

#[test]
fn a_signed_in_session_with_a_factor_gets_its_code() {
    let r = request(true);
    assert_eq!(r.next(Some(&session(100, PUSH)), None, 200), Next::Issue);
    assert_eq!(r.next(None, None, 200), Next::SignIn);
}

#[test]
fn an_application_requiring_mfa_is_not_satisfied_by_the_password_alone() {
    let r = request(true);
    assert_eq!(r.next(Some(&session(100, None)), None, 200), Next::Prove);
    // A method registered in the same session proves nothing.
    let registered = session(100, Some((FactorMethod::App, true)));
    assert_eq!(r.next(Some(&registered), None, 200), Next::Prove);
    let mut no_methods = session(100, None);
    no_methods.has_methods = false;
    assert_eq!(r.next(Some(&no_methods), None, 200), Next::Register);
    // Without the requirement, the password is enough.
    assert_eq!(
        request(false).next(Some(&session(100, None)), None, 200),
        Next::Issue
    );
}

#[test]
fn prompt_login_needs_a_password_given_after_the_request() {
    let mut r = request(true);
    r.prompt_login = true;
    let s = session(100, PUSH);
    // Just arrived: whatever the session, sign in again.
    assert_eq!(r.next(Some(&s), None, 100), Next::SignIn);
    // Back from the sign-in: a password given at or after the request.
    assert_eq!(r.next(Some(&s), Some(100), 101), Next::Issue);
    assert_eq!(r.next(Some(&s), Some(101), 101), Next::SignIn);
}

#[test]
fn max_age_counts_from_the_last_password() {
    let mut r = request(true);
    r.max_age = Some(60);
    assert_eq!(r.next(Some(&session(100, PUSH)), None, 160), Next::Issue);
    assert_eq!(r.next(Some(&session(100, PUSH)), None, 161), Next::SignIn);
    // A sign-in made for this request passes, even if the second step
    // took longer than max_age (max_age=0 would otherwise never pass).
    r.max_age = Some(0);
    assert_eq!(
        r.next(Some(&session(110, PUSH)), Some(100), 170),
        Next::Issue
    );
    assert_eq!(
        r.next(Some(&session(90, PUSH)), Some(100), 170),
        Next::SignIn
    );
}

#[test]
fn prompt_none_refuses_instead_of_asking() {
    let mut r = request(true);
    r.prompt_none = true;
    let error_of = |n: Next| match n {
        Next::Refuse(Refusal::Redirect { error, .. }) => error,
        other => panic!("{other:?}"),
    };
    assert_eq!(error_of(r.next(None, None, 1)), "login_required");
    assert_eq!(
        error_of(r.next(Some(&session(100, None)), None, 200)),
        "interaction_required"
    );
    assert_eq!(r.next(Some(&session(100, PUSH)), None, 200), Next::Issue);
}

#[test]
fn redirects_keep_the_registered_address_and_add_the_answer() {
    assert_eq!(
        redirect_with(
            "https://lets.example/cb?x=1",
            &[("code", "a b"), ("state", "")]
        ),
        "https://lets.example/cb?x=1&code=a+b"
    );
}
