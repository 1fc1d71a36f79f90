//! Password rules from the sign-in policy: composition rules checked here,
//! history and age rules (which need storage) by the server.

use serde::{Deserialize, Serialize};

/// Composition rules for a new password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordPolicy {
    /// Fewest characters.
    pub min_length: usize,
    /// Needs an upper-case letter.
    pub require_upper: bool,
    /// Needs a lower-case letter.
    pub require_lower: bool,
    /// Needs a digit.
    pub require_digit: bool,
    /// Needs a special (non-alphanumeric) character.
    pub require_special: bool,
    /// How many earlier passwords may not be reused.
    pub history: usize,
    /// Hours that must pass between two changes by the user.
    pub min_age_hours: u64,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        PasswordPolicy {
            min_length: 14,
            require_upper: true,
            require_lower: true,
            require_digit: true,
            require_special: true,
            history: 24,
            min_age_hours: 24,
        }
    }
}

/// One broken rule; each has its own message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// Shorter than the minimum.
    TooShort(usize),
    /// No upper-case letter.
    NoUpper,
    /// No lower-case letter.
    NoLower,
    /// No digit.
    NoDigit,
    /// No special character.
    NoSpecial,
    /// Same as one of the last N passwords.
    Reused(usize),
    /// Changed too recently.
    TooSoon(u64),
    /// The confirmation differs.
    Mismatch,
    /// The current password was wrong.
    WrongCurrent,
}

impl Violation {
    /// A stable code for clients to branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Violation::TooShort(_) => "too_short",
            Violation::NoUpper => "no_upper",
            Violation::NoLower => "no_lower",
            Violation::NoDigit => "no_digit",
            Violation::NoSpecial => "no_special",
            Violation::Reused(_) => "reused",
            Violation::TooSoon(_) => "too_soon",
            Violation::Mismatch => "mismatch",
            Violation::WrongCurrent => "wrong_current",
        }
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Violation::TooShort(n) => {
                write!(f, "The password must be at least {n} characters long.")
            }
            Violation::NoUpper => f.write_str("The password must contain an upper-case letter."),
            Violation::NoLower => f.write_str("The password must contain a lower-case letter."),
            Violation::NoDigit => f.write_str("The password must contain a digit."),
            Violation::NoSpecial => {
                f.write_str("The password must contain a special character such as ! $ # or %.")
            }
            Violation::Reused(n) => {
                write!(f, "The password must differ from your last {n} passwords.")
            }
            Violation::TooSoon(h) => {
                write!(
                    f,
                    "You cannot change your password more than once in {h} hours."
                )
            }
            Violation::Mismatch => f.write_str("The new password and its confirmation differ."),
            Violation::WrongCurrent => f.write_str("The current password is not correct."),
        }
    }
}

impl PasswordPolicy {
    /// Every composition rule `password` breaks, in a fixed order.
    pub fn check(&self, password: &str) -> Vec<Violation> {
        let mut v = Vec::new();
        if password.chars().count() < self.min_length {
            v.push(Violation::TooShort(self.min_length));
        }
        if self.require_upper && !password.chars().any(char::is_uppercase) {
            v.push(Violation::NoUpper);
        }
        if self.require_lower && !password.chars().any(char::is_lowercase) {
            v.push(Violation::NoLower);
        }
        if self.require_digit && !password.chars().any(|c| c.is_ascii_digit()) {
            v.push(Violation::NoDigit);
        }
        if self.require_special
            && !password
                .chars()
                .any(|c| !c.is_alphanumeric() && !c.is_whitespace())
        {
            v.push(Violation::NoSpecial);
        }
        v
    }
}

/// Fills a temporary-password template. Placeholders: `{last_initial}`,
/// `{first_initial}` (lower case) and `{ssn_last4}`; the default template is
/// the guide's `New$Alacop#{last_initial}{ssn_last4}{first_initial}`.
pub fn temporary_password(template: &str, first: &str, last: &str, ssn_last4: &str) -> String {
    let initial = |s: &str| {
        s.chars()
            .next()
            .map(|c| c.to_lowercase().to_string())
            .unwrap_or_default()
    };
    template
        .replace("{last_initial}", &initial(last))
        .replace("{first_initial}", &initial(first))
        .replace("{ssn_last4}", ssn_last4)
}

/// The seed guide's template.
pub const DEFAULT_TEMPLATE: &str = "New$Alacop#{last_initial}{ssn_last4}{first_initial}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_rule_has_its_own_violation() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check("Correct-Horse-9-Battery"), vec![]);
        assert_eq!(p.check("Short-9a"), vec![Violation::TooShort(14)]);
        assert_eq!(p.check("correct-horse-9-battery"), vec![Violation::NoUpper]);
        assert_eq!(p.check("CORRECT-HORSE-9-BATTERY"), vec![Violation::NoLower]);
        assert_eq!(p.check("Correct-Horse-X-Battery"), vec![Violation::NoDigit]);
        assert_eq!(p.check("CorrectHorse9Battery"), vec![Violation::NoSpecial]);
        assert_eq!(p.check("a").len(), 4);
    }

    #[test]
    fn temporary_password_follows_the_guide() {
        // Clark Kent, SSN ending 4321.
        assert_eq!(
            temporary_password(DEFAULT_TEMPLATE, "Clark", "Kent", "4321"),
            "New$Alacop#k4321c"
        );
        assert!(PasswordPolicy::default()
            .check(&temporary_password(
                DEFAULT_TEMPLATE,
                "Clark",
                "Kent",
                "4321"
            ))
            .is_empty());
    }

    #[test]
    fn messages_are_plain() {
        assert_eq!(
            Violation::TooShort(14).to_string(),
            "The password must be at least 14 characters long."
        );
        assert_eq!(Violation::Reused(24).code(), "reused");
    }
}
