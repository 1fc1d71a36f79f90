//! What a person answers on a sign-in prompt, one type for every front end
//! (the app, the CLI's `answer` and `watch`) and for the server that reads
//! the signed response back.

use crate::protocol::{Decision, Response, NUMBER_RANGE};
use crate::Error;

/// The reason a denial carries when the person could not see the number.
pub const CANNOT_SEE_NUMBER: &str = "cannot_see_number";

/// The number typed to approve: exactly two digits, 10–99 (`05` is not a
/// number the sign-in page shows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number(u8);

impl Number {
    /// Reads what the person typed (surrounding spaces ignored).
    pub fn parse(typed: &str) -> Result<Self, Error> {
        let t = typed.trim();
        let two_digits = t.len() == 2 && t.bytes().all(|b| b.is_ascii_digit());
        match t.parse::<u8>() {
            Ok(n) if two_digits && NUMBER_RANGE.contains(&n) => Ok(Number(n)),
            _ => Err(Error::field(
                "number",
                "enter the number shown on the sign-in page: a number from 10 to 99",
            )),
        }
    }

    /// The number.
    pub fn get(self) -> u8 {
        self.0
    }
}

/// One answer to a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// "Yes, it's me", with the number from the sign-in page.
    Approve(Number),
    /// "No, it's not me".
    Deny,
    /// "No, it's not me", reported as fraud: blocks further pushes.
    Report,
    /// "I can't see the number": a denial that says why.
    CannotSeeNumber,
}

impl Answer {
    /// Reads an answer as the front ends name it: `approve` (with the
    /// number), `deny`, `report` or `cannot_see_number`.
    pub fn parse(kind: &str, number: Option<&str>) -> Result<Self, Error> {
        Ok(match kind {
            "approve" => Answer::Approve(Number::parse(number.unwrap_or(""))?),
            "deny" => Answer::Deny,
            "report" => Answer::Report,
            "cannot_see_number" => Answer::CannotSeeNumber,
            other => {
                return Err(Error::field(
                    "answer",
                    format!(
                        "unknown answer '{other}' (approve, deny, report or cannot_see_number)"
                    ),
                ))
            }
        })
    }

    /// The name [`Answer::parse`] reads.
    pub fn as_str(self) -> &'static str {
        match self {
            Answer::Approve(_) => "approve",
            Answer::Deny => "deny",
            Answer::Report => "report",
            Answer::CannotSeeNumber => "cannot_see_number",
        }
    }

    /// What the signed response decides.
    pub fn decision(self) -> Decision {
        match self {
            Answer::Approve(_) => Decision::Approve,
            Answer::Deny | Answer::CannotSeeNumber => Decision::Deny,
            Answer::Report => Decision::Report,
        }
    }

    /// The typed number, for an approval.
    pub fn number(self) -> Option<u8> {
        match self {
            Answer::Approve(n) => Some(n.get()),
            _ => None,
        }
    }

    /// The reason the signed response carries (empty but for
    /// [`Answer::CannotSeeNumber`]).
    pub fn reason(self) -> &'static str {
        match self {
            Answer::CannotSeeNumber => CANNOT_SEE_NUMBER,
            _ => "",
        }
    }

    /// The answer a signed response stands for; `None` for an approval
    /// without a valid number (which [`Response::verify`] refuses anyway).
    pub fn of(response: &Response) -> Option<Self> {
        Some(match response.decision {
            Decision::Approve => {
                Answer::Approve(Number::parse(&response.number?.to_string()).ok()?)
            }
            Decision::Deny if response.reason == CANNOT_SEE_NUMBER => Answer::CannotSeeNumber,
            Decision::Deny => Answer::Deny,
            Decision::Report => Answer::Report,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_is_exactly_two_digits_from_10_to_99() {
        assert_eq!(Number::parse(" 42 ").unwrap().get(), 42);
        assert_eq!(Number::parse("10").unwrap().get(), 10);
        for bad in ["05", "5", "100", "9", "4a", "", "+42", "-1", "٤٢"] {
            assert!(Number::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_answer_reads_back_and_signs_its_decision() {
        let n = Number::parse("61").unwrap();
        for a in [
            Answer::Approve(n),
            Answer::Deny,
            Answer::Report,
            Answer::CannotSeeNumber,
        ] {
            assert_eq!(Answer::parse(a.as_str(), Some("61")).unwrap(), a);
            let response = Response {
                v: crate::protocol::PROTOCOL_VERSION,
                challenge_id: "c".into(),
                device_id: "d".into(),
                decision: a.decision(),
                number: a.number(),
                reason: a.reason().into(),
                answered_at: 0,
                signature: crate::Signature([0; 64]),
            };
            assert_eq!(Answer::of(&response), Some(a));
        }
        assert!(Answer::parse("approve", None).is_err());
        assert!(Answer::parse("approve", Some("05")).is_err());
        assert!(Answer::parse("maybe", None).is_err());
    }
}
