//! Sign-in methods besides the app: a phone that receives codes by text or
//! call, and security questions. The rules here decide what a valid phone
//! number, question choice and answer are; storage and sending are the
//! server's.

/// The questions an officer chooses five of. Their index is what is stored,
/// so the list only ever grows at the end.
pub const SECURITY_QUESTIONS: &[&str] = &[
    "In what city were you born?",
    "What was the name of your first pet?",
    "What was the make of your first car?",
    "What is the name of the street you grew up on?",
    "What was the name of your elementary school?",
    "What is your oldest sibling's middle name?",
    "In what city did your parents meet?",
    "What was your childhood nickname?",
    "What was the first concert you attended?",
    "What is the name of your favorite childhood friend?",
    "What was the mascot of your high school?",
    "In what city or town was your first job?",
];

/// How many questions an officer answers at registration.
pub const QUESTIONS_TO_REGISTER: usize = 5;

/// How many of them recovery asks.
pub const QUESTIONS_TO_ASK: usize = 3;

/// Shortest answer accepted (after normalising).
pub const MIN_ANSWER_LEN: usize = 3;

/// Why a set of answers was refused; each has its own message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnswerProblem {
    /// Not exactly five questions chosen.
    #[error("Choose {QUESTIONS_TO_REGISTER} questions.")]
    Count,
    /// A question index outside the list.
    #[error("Question {0} is not one of the offered questions.")]
    Unknown(usize),
    /// The same question chosen twice.
    #[error("Choose five different questions.")]
    Repeated,
    /// An answer too short to be hard to guess.
    #[error("The answer to \"{0}\" is too short: use at least {MIN_ANSWER_LEN} characters.")]
    TooShort(&'static str),
    /// The same answer to two questions.
    #[error("Give a different answer to each question.")]
    SameAnswer,
}

/// An answer as it is compared: case, spacing and punctuation
/// do not matter ("St. Louis" = "st louis").
pub fn normalise_answer(answer: &str) -> String {
    answer
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks a registration's choices: `(question index, answer)` pairs.
/// Returns the normalised answers in the same order, or every problem.
pub fn check_answers(chosen: &[(usize, String)]) -> Result<Vec<String>, Vec<AnswerProblem>> {
    let mut problems = Vec::new();
    if chosen.len() != QUESTIONS_TO_REGISTER {
        problems.push(AnswerProblem::Count);
    }
    let mut seen = std::collections::HashSet::new();
    let mut answers = Vec::new();
    for (q, a) in chosen {
        let Some(text) = SECURITY_QUESTIONS.get(*q) else {
            problems.push(AnswerProblem::Unknown(*q));
            continue;
        };
        if !seen.insert(*q) && !problems.contains(&AnswerProblem::Repeated) {
            problems.push(AnswerProblem::Repeated);
        }
        let n = normalise_answer(a);
        if n.chars().count() < MIN_ANSWER_LEN {
            problems.push(AnswerProblem::TooShort(text));
        }
        if answers.contains(&n) && !problems.contains(&AnswerProblem::SameAnswer) {
            problems.push(AnswerProblem::SameAnswer);
        }
        answers.push(n);
    }
    if problems.is_empty() {
        Ok(answers)
    } else {
        Err(problems)
    }
}

/// A phone number in E.164 form (`+` and 8–15 digits). A ten-digit
/// number is taken as North American (`+1`); spaces, dots, dashes and
/// brackets are ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    /// Parses what a person typed.
    pub fn parse(input: &str) -> Result<Self, crate::Error> {
        let bad = |problem: &str| crate::Error::Field {
            field: "phone",
            problem: problem.into(),
        };
        let t = input.trim();
        let (plus, rest) = match t.strip_prefix('+') {
            Some(r) => (true, r),
            None => (false, t),
        };
        let mut digits = String::new();
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' => {}
                _ => return Err(bad("use only digits, spaces, dashes and brackets")),
            }
        }
        let full = match (plus, digits.len()) {
            (false, 10) => format!("1{digits}"),
            (false, 11) if digits.starts_with('1') => digits,
            (false, _) => {
                return Err(bad(
                    "enter a 10-digit number, or the full number starting with +",
                ))
            }
            (true, _) => digits,
        };
        if !(8..=15).contains(&full.len()) || full.starts_with('0') {
            return Err(bad("a full phone number has 8 to 15 digits after the +"));
        }
        Ok(PhoneNumber(format!("+{full}")))
    }

    /// The E.164 form, e.g. `+12055550123`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but the last two digits hidden, as pages show
    /// it: `+X XXXXXXXX23`.
    pub fn masked(&self) -> String {
        mask(&self.0)
    }
}

/// Hides all but the last two digits of a stored E.164 number.
pub fn mask(e164: &str) -> String {
    let n = e164.len();
    e164.char_indices()
        .map(|(i, c)| if i == 0 || i + 2 >= n { c } else { 'X' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn five() -> Vec<(usize, String)> {
        (0..5).map(|i| (i, format!("answer {i}"))).collect()
    }

    #[test]
    fn answers_are_compared_without_case_spacing_or_punctuation() {
        assert_eq!(normalise_answer("  St. Louis!! "), "st louis");
        assert_eq!(normalise_answer("ST-LOUIS"), "st louis");
        assert_eq!(normalise_answer("Zürich"), "zürich");
    }

    #[test]
    fn five_distinct_questions_with_distinct_answers_pass() {
        let ok = check_answers(&five()).unwrap();
        assert_eq!(ok[0], "answer 0");
        assert_eq!(ok.len(), 5);
    }

    #[test]
    fn each_problem_is_reported() {
        let mut c = five();
        c.pop();
        assert_eq!(check_answers(&c).unwrap_err(), vec![AnswerProblem::Count]);

        let mut c = five();
        c[1].0 = 0;
        assert_eq!(
            check_answers(&c).unwrap_err(),
            vec![AnswerProblem::Repeated]
        );

        let mut c = five();
        c[2].0 = 99;
        assert_eq!(
            check_answers(&c).unwrap_err(),
            vec![AnswerProblem::Unknown(99)]
        );

        let mut c = five();
        c[3].1 = " a. ".into();
        assert_eq!(
            check_answers(&c).unwrap_err(),
            vec![AnswerProblem::TooShort(SECURITY_QUESTIONS[3])]
        );

        let mut c = five();
        c[4].1 = "ANSWER 0".into();
        assert_eq!(
            check_answers(&c).unwrap_err(),
            vec![AnswerProblem::SameAnswer]
        );
    }

    #[test]
    fn phone_numbers_are_read_in_the_forms_people_type() {
        for typed in [
            "(205) 555-0123",
            "205.555.0123",
            "1 205 555 0123",
            "+1 205 555 0123",
        ] {
            assert_eq!(
                PhoneNumber::parse(typed).unwrap().as_str(),
                "+12055550123",
                "{typed}"
            );
        }
        assert_eq!(
            PhoneNumber::parse("+44 20 7946 0958").unwrap().as_str(),
            "+442079460958"
        );
        assert_eq!(
            PhoneNumber::parse("+12055550123").unwrap().masked(),
            "+XXXXXXXXX23"
        );
    }

    #[test]
    fn bad_phone_numbers_say_what_is_wrong() {
        for (typed, says) in [
            ("555-0123", "10-digit"),
            ("205-555-O123", "only digits"),
            ("+12", "8 to 15"),
            ("+1234567890123456", "8 to 15"),
            ("", "10-digit"),
        ] {
            let e = PhoneNumber::parse(typed).unwrap_err().to_string();
            assert!(e.contains(says), "{typed}: {e}");
        }
    }
}
