//! Where a browser session is in the sign-in flow, what each step has
//! shown or sent, and the factor it proved, as stored in a session's
//! `stage`, `pending`, `challenge_id`, `factor` and `factor_at` columns.

use super::sessions::Factor;

/// Where a browser session is, each step carrying what it has shown or
/// sent; moving to another stage drops it, so nothing a step started (a
/// phone code, a push, the questions asked) outlives it. Each page serves
/// some stages ([`StageKind`]) and sends any other to its own page, so no
/// step can be skipped.
///
/// The second factor the session proved ([`Factor`]) travels from stage
/// to stage ([`Stage::then`]) where a stage can hold one: a proof made at
/// `mfa` is what `done` and `add` act on. The password steps and recovery
/// before its proof hold none, so going back to the password drops it.
/// Without one, a session acts for the account only while the account
/// has no method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The email was given; the password is next.
    Password,
    /// A temporary password was accepted; a new one must be set.
    ChangePassword,
    /// The password was accepted and the account has no method (first
    /// sign-in, or after a methods reset): register two. A factor here was
    /// gained by registering (or kept through an application's step-up).
    Register(Registering, Option<Factor>),
    /// The password was accepted: prove a registered method. A factor
    /// here is an earlier one, kept through an application's step-up.
    Mfa(Proving, Option<Factor>),
    /// "Stay signed in?", once signed in.
    Stay(Option<Factor>),
    /// Signed in.
    Done(Option<Factor>),
    /// Signed in and adding a method from "My sign-ins".
    Add(Registering, Option<Factor>),
    /// Signed in, proving a method again before changing methods (the
    /// last proof, kept here, is too old); back to [`Stage::Done`] once
    /// proven.
    Reverify(Proving, Option<Factor>),
    /// Recovery: the CAPTCHA was solved; prove a registered method.
    Recover(Proving),
    /// Recovery: a method was proved; set a new password.
    RecoverReset(Option<Factor>),
}

/// Registering a method: what the session has shown or sent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registering {
    /// The public ids of the app's QR codes shown in this session, newest
    /// last (a reload shows a new one; the older ones may still be
    /// scanned).
    pub shown: Vec<String>,
    /// The code sent to the phone being registered: its id.
    pub phone_code: Option<String>,
    /// The test push the newly activated app must approve.
    pub test_push: Option<String>,
}

/// Proving a registered method: what the session has sent or asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proving {
    /// The push challenge being waited for.
    pub push: Option<String>,
    /// The code sent to the phone: its id.
    pub phone_code: Option<String>,
    /// The security questions asked, by number (asked again on a reload,
    /// never redrawn).
    pub asked: Vec<usize>,
}

/// The name of a stage, without its step: what a page checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageKind {
    /// See [`Stage::Password`].
    Password,
    /// See [`Stage::ChangePassword`].
    ChangePassword,
    /// See [`Stage::Register`].
    Register,
    /// See [`Stage::Mfa`].
    Mfa,
    /// See [`Stage::Stay`].
    Stay,
    /// See [`Stage::Done`].
    Done,
    /// See [`Stage::Add`].
    Add,
    /// See [`Stage::Reverify`].
    Reverify,
    /// See [`Stage::Recover`].
    Recover,
    /// See [`Stage::RecoverReset`].
    RecoverReset,
}

impl StageKind {
    /// Every stage.
    pub const ALL: [StageKind; 10] = [
        StageKind::Password,
        StageKind::ChangePassword,
        StageKind::Register,
        StageKind::Mfa,
        StageKind::Stay,
        StageKind::Done,
        StageKind::Add,
        StageKind::Reverify,
        StageKind::Recover,
        StageKind::RecoverReset,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            StageKind::Password => "password",
            StageKind::ChangePassword => "change",
            StageKind::Register => "register",
            StageKind::Mfa => "mfa",
            StageKind::Stay => "stay",
            StageKind::Done => "done",
            StageKind::Add => "add",
            StageKind::Reverify => "reverify",
            StageKind::Recover => "recover",
            StageKind::RecoverReset => "recover_reset",
        }
    }

    /// Reads a stored name; anything else starts again at the email page.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|stage| stage.as_str() == s)
    }

    /// This stage with nothing shown or sent yet, and no factor.
    pub fn start(self) -> Stage {
        match self {
            StageKind::Password => Stage::Password,
            StageKind::ChangePassword => Stage::ChangePassword,
            StageKind::Register => Stage::Register(Registering::default(), None),
            StageKind::Mfa => Stage::Mfa(Proving::default(), None),
            StageKind::Stay => Stage::Stay(None),
            StageKind::Done => Stage::Done(None),
            StageKind::Add => Stage::Add(Registering::default(), None),
            StageKind::Reverify => Stage::Reverify(Proving::default(), None),
            StageKind::Recover => Stage::Recover(Proving::default()),
            StageKind::RecoverReset => Stage::RecoverReset(None),
        }
    }

    /// Whether a session here acts for the account (registers or removes
    /// methods, finishes signing in, is signed in): only with a proven
    /// second factor, or while the account has no method.
    pub fn acts_for_account(self) -> bool {
        matches!(
            self,
            StageKind::Register | StageKind::Add | StageKind::Stay | StageKind::Done
        )
    }
}

impl Stage {
    /// Which stage this is.
    pub fn kind(&self) -> StageKind {
        match self {
            Stage::Password => StageKind::Password,
            Stage::ChangePassword => StageKind::ChangePassword,
            Stage::Register(..) => StageKind::Register,
            Stage::Mfa(..) => StageKind::Mfa,
            Stage::Stay(_) => StageKind::Stay,
            Stage::Done(_) => StageKind::Done,
            Stage::Add(..) => StageKind::Add,
            Stage::Reverify(..) => StageKind::Reverify,
            Stage::Recover(_) => StageKind::Recover,
            Stage::RecoverReset(_) => StageKind::RecoverReset,
        }
    }

    /// Where this stage keeps the session's proven factor; `None` at a
    /// stage that holds none.
    fn factor_slot(&mut self) -> Option<&mut Option<Factor>> {
        match self {
            Stage::Register(_, f)
            | Stage::Mfa(_, f)
            | Stage::Stay(f)
            | Stage::Done(f)
            | Stage::Add(_, f)
            | Stage::Reverify(_, f)
            | Stage::RecoverReset(f) => Some(f),
            Stage::Password | Stage::ChangePassword | Stage::Recover(_) => None,
        }
    }

    /// The second factor this session proved, if any.
    pub fn factor(&self) -> Option<Factor> {
        match self {
            Stage::Register(_, f) | Stage::Mfa(_, f) | Stage::Add(_, f) | Stage::Reverify(_, f) => {
                *f
            }
            Stage::Stay(f) | Stage::Done(f) | Stage::RecoverReset(f) => *f,
            Stage::Password | Stage::ChangePassword | Stage::Recover(_) => None,
        }
    }

    /// Records a proven factor, at a stage that can hold one (a stage that
    /// cannot is left as it is).
    pub fn prove(&mut self, factor: Factor) {
        if let Some(slot) = self.factor_slot() {
            *slot = Some(factor);
        }
    }

    /// Stage `kind`, started afresh, with this stage's factor where `kind`
    /// can hold one.
    pub fn then(&self, kind: StageKind) -> Stage {
        let mut next = kind.start();
        if let Some(factor) = self.factor() {
            next.prove(factor);
        }
        next
    }

    /// What a registering stage has shown or sent.
    pub fn registering(&mut self) -> Option<&mut Registering> {
        match self {
            Stage::Register(r, _) | Stage::Add(r, _) => Some(r),
            _ => None,
        }
    }

    /// What a proving stage has sent or asked.
    pub fn proving(&mut self) -> Option<&mut Proving> {
        match self {
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => Some(p),
            _ => None,
        }
    }

    /// The push challenge this stage waits for: the sign-in's, or the new
    /// app's test push.
    pub fn push(&self) -> Option<&str> {
        match self {
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => p.push.as_deref(),
            Stage::Register(r, _) | Stage::Add(r, _) => r.test_push.as_deref(),
            _ => None,
        }
    }

    /// Where this stage keeps its push challenge; `None` at a stage that
    /// sends none.
    pub fn push_slot(&mut self) -> Option<&mut Option<String>> {
        match self {
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => Some(&mut p.push),
            Stage::Register(r, _) | Stage::Add(r, _) => Some(&mut r.test_push),
            _ => None,
        }
    }

    /// Forgets the push this stage waited for (answered, or given up).
    pub fn forget_push(&mut self) {
        if let Some(slot) = self.push_slot() {
            *slot = None;
        }
    }

    /// The code sent to a phone that this stage waits for: its id.
    pub fn phone_code(&self) -> Option<&str> {
        match self {
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => p.phone_code.as_deref(),
            Stage::Register(r, _) | Stage::Add(r, _) => r.phone_code.as_deref(),
            _ => None,
        }
    }

    /// Where this stage keeps the code sent to a phone.
    pub fn phone_code_slot(&mut self) -> Option<&mut Option<String>> {
        match self {
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => Some(&mut p.phone_code),
            Stage::Register(r, _) | Stage::Add(r, _) => Some(&mut r.phone_code),
            _ => None,
        }
    }

    /// The step's stored columns: `pending` (space-separated parts
    /// `code:ID`, `questions:1,2,3`, `enroll:ID,ID`) and `challenge_id`.
    pub(super) fn to_columns(&self) -> (String, String) {
        let mut parts = Vec::new();
        let (code, push) = match self {
            Stage::Register(r, _) | Stage::Add(r, _) => {
                if !r.shown.is_empty() {
                    parts.push(format!("enroll:{}", r.shown.join(",")));
                }
                (&r.phone_code, &r.test_push)
            }
            Stage::Mfa(p, _) | Stage::Reverify(p, _) | Stage::Recover(p) => {
                if !p.asked.is_empty() {
                    let list: Vec<String> = p.asked.iter().map(ToString::to_string).collect();
                    parts.push(format!("questions:{}", list.join(",")));
                }
                (&p.phone_code, &p.push)
            }
            _ => return (String::new(), String::new()),
        };
        if let Some(id) = code {
            parts.push(format!("code:{id}"));
        }
        (parts.join(" "), push.clone().unwrap_or_default())
    }

    /// Read back from its name and columns. A part that does not read (a
    /// row written by an older version) is left out: that step starts
    /// again.
    pub(super) fn from_columns(
        kind: StageKind,
        pending: &str,
        challenge_id: &str,
        factor: Option<Factor>,
    ) -> Self {
        let mut stage = kind.start();
        if let Some(factor) = factor {
            stage.prove(factor);
        }
        let push = (!challenge_id.is_empty()).then(|| challenge_id.to_string());
        for part in pending.split(' ') {
            let (name, value) = part.split_once(':').unwrap_or_default();
            if value.is_empty() {
                continue;
            }
            match name {
                "code" => {
                    if let Some(slot) = stage.phone_code_slot() {
                        *slot = Some(value.to_string());
                    }
                }
                "enroll" => {
                    if let Some(r) = stage.registering() {
                        r.shown = value.split(',').map(str::to_string).collect();
                    }
                }
                "questions" => {
                    let asked: Option<Vec<usize>> =
                        value.split(',').map(|q| q.parse().ok()).collect();
                    if let (Some(p), Some(asked)) = (stage.proving(), asked) {
                        p.asked = asked;
                    }
                }
                _ => {}
            }
        }
        if let Some(slot) = stage.push_slot() {
            *slot = push;
        }
        stage
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_read_back_and_only_four_act_for_the_account() {
        let all = StageKind::ALL;
        for s in all {
            assert_eq!(StageKind::parse(s.as_str()), Some(s));
            assert_eq!(s.start().kind(), s);
        }
        assert_eq!(StageKind::parse("verified"), None);
        let acting: Vec<StageKind> = all.into_iter().filter(|s| s.acts_for_account()).collect();
        assert_eq!(
            acting,
            [
                StageKind::Register,
                StageKind::Stay,
                StageKind::Done,
                StageKind::Add
            ]
        );
    }

    #[test]
    fn a_step_that_does_not_read_starts_again() {
        for column in [
            "",
            "AbC-_9",
            "q:1,2,3",
            "code:",
            "questions:1,x",
            "captcha:00",
            "other:1",
        ] {
            let stage = Stage::from_columns(StageKind::Mfa, column, "", None);
            assert_eq!(stage, Stage::Mfa(Proving::default(), None), "{column}");
        }
    }

    #[test]
    fn a_step_belongs_to_its_stage() {
        // What one kind of stage keeps is not read into another: questions
        // asked while proving are not a registering step, QR codes shown
        // while registering are not a proving one, and a stage without a
        // step keeps none.
        let proving = Stage::from_columns(StageKind::Mfa, "enroll:a,b questions:1", "c", None);
        assert_eq!(
            proving,
            Stage::Mfa(
                Proving {
                    push: Some("c".into()),
                    phone_code: None,
                    asked: vec![1]
                },
                None
            )
        );
        let registering = Stage::from_columns(StageKind::Add, "enroll:a,b questions:1", "", None);
        assert_eq!(
            registering,
            Stage::Add(
                Registering {
                    shown: vec!["a".into(), "b".into()],
                    ..Registering::default()
                },
                None
            )
        );
        assert_eq!(
            Stage::from_columns(StageKind::Done, "code:x", "c", None),
            Stage::Done(None)
        );
        assert_eq!(
            Stage::Done(None).to_columns(),
            (String::new(), String::new())
        );
    }

    #[test]
    fn the_proven_factor_goes_along_except_back_to_the_password() {
        let proof = Factor {
            method: super::super::sessions::FactorMethod::App,
            at: 5,
            by_registration: false,
        };
        let mut mfa = StageKind::Mfa.start();
        assert_eq!(mfa.factor(), None);
        mfa.prove(proof);
        for kind in StageKind::ALL {
            let next = mfa.then(kind);
            assert_eq!(next.kind(), kind);
            let holds = !matches!(
                kind,
                StageKind::Password | StageKind::ChangePassword | StageKind::Recover
            );
            assert_eq!(next.factor(), holds.then_some(proof), "{kind:?}");
        }
        // A stage that holds none stays as it is when told of a proof.
        let mut password = StageKind::Password.start();
        password.prove(proof);
        assert_eq!(password, Stage::Password);
    }
}
