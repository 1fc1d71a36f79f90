//! What the help desk needs to see where a push flow breaks and to fix an
//! account: user search, a challenge's timeline (created → delivered →
//! shown → answered → result), fixes that record the staff member's
//! reason, and push health figures. Pages and commands sit on top.

use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::{ChallengeKind, Response};
use countersign_core::Answer;
use serde::Serialize;

use crate::domain::push::Origin;
use crate::store::{ChallengeRow, DeviceRow, NewAudit, UserRow};
use crate::{Error, Server};

/// The longest label a test push may carry (what the device shows as the
/// application asking).
pub const TEST_LABEL_MAX: usize = 64;

/// One step of a challenge's life.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Step {
    /// `created`, `delivered`, `shown`, `answered`, `result`.
    pub step: &'static str,
    /// When (Unix ms), if it happened.
    pub at_ms: Option<u64>,
    /// What the help desk reads: "not delivered", "approved with the right
    /// number", "wrong number (typed 42)".
    pub detail: String,
}

/// A challenge seen from the help desk.
#[derive(Debug, Clone, Serialize)]
pub struct Timeline {
    /// Challenge id.
    pub id: String,
    /// Whose.
    pub username: String,
    /// The device it went to.
    pub device_id: String,
    /// `sign_in` or `test`.
    pub kind: &'static str,
    /// The application shown.
    pub application: String,
    /// The number on the sign-in page (to read to the officer).
    pub number: u8,
    /// Status now.
    pub status: &'static str,
    /// Whether the status can still change.
    pub open: bool,
    /// The steps, in order.
    pub steps: Vec<Step>,
}

/// A device with whether it listens right now.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceView {
    /// The stored device.
    #[serde(flatten)]
    pub device: DeviceRow,
    /// Request streams open now.
    pub streams: usize,
}

pub use super::fixes::{Fix, PreparedFix, Staff};

/// Push figures over a window.
#[derive(Debug, Clone, Serialize)]
pub struct Health {
    /// Request streams open now.
    pub connected: usize,
    /// Challenges created per minute, oldest minute first.
    pub per_minute: Vec<u32>,
    /// Challenges in the window.
    pub total: usize,
    /// Delivery latencies (creation → delivery receipt), ms, sorted, of
    /// the challenges whose device was connected when asked: what the push
    /// path itself takes.
    #[serde(skip)]
    pub latencies_ms: Vec<u64>,
    /// Challenges delivered only once their device connected (or whose
    /// connection at the time is unknown): their wait is the device's
    /// time offline, kept out of the latency.
    pub delivered_later: usize,
    /// Share of finished challenges that expired.
    pub expired_rate: f64,
    /// Share of answered challenges with a wrong number.
    pub mismatch_rate: f64,
}

impl Health {
    /// Delivery latency percentiles, ms: p50, p90, p99 (none without a
    /// delivery).
    pub fn latency_ms(&self) -> Option<[u64; 3]> {
        let v = &self.latencies_ms;
        (!v.is_empty()).then(|| [quantile(v, 0.5), quantile(v, 0.9), quantile(v, 0.99)])
    }
}

/// Milliseconds of a row's creation (rows from before milliseconds were
/// kept have only seconds).
fn created_ms(r: &ChallengeRow) -> u64 {
    r.created_ms.max(r.challenge.created_at * 1000)
}

/// Milliseconds of a row's delivery, if delivered.
fn delivered_ms(r: &ChallengeRow) -> Option<u64> {
    r.delivered_ms.or(r.delivered_at.map(|s| s * 1000))
}

/// The `q`-th quantile of sorted `v`.
fn quantile(v: &[u64], q: f64) -> u64 {
    let i = ((v.len() as f64 - 1.0) * q).round() as usize;
    v[i.min(v.len() - 1)]
}

/// A row's timeline at `now`.
pub fn timeline(r: &ChallengeRow, now: u64) -> Timeline {
    let status = r.status_at(now);
    let response: Option<Response> = r
        .response
        .as_deref()
        .and_then(|j| serde_json::from_str(j).ok());
    let connected = match r.connected_when_asked {
        Some(true) => "; the device was connected",
        Some(false) => "; the device was not connected",
        None => "",
    };
    let created = Step {
        step: "created",
        at_ms: Some(created_ms(r)),
        detail: format!(
            "{} for {}{connected}",
            r.challenge.application, r.challenge.account
        ),
    };
    let delivered = Step {
        step: "delivered",
        at_ms: delivered_ms(r),
        detail: if delivered_ms(r).is_some() {
            "the device acknowledged it".into()
        } else {
            "not delivered: the device has not fetched it".into()
        },
    };
    let shown = Step {
        step: "shown",
        at_ms: r.shown_ms.or(r.shown_at.map(|s| s * 1000)),
        detail: if r.shown_at.is_some() {
            "the prompt was opened on the device".into()
        } else {
            "not shown".into()
        },
    };
    let answered = Step {
        step: "answered",
        at_ms: r.answered_ms.or(r.answered_at.map(|s| s * 1000)),
        detail: match (&response, status) {
            (Some(resp), ChallengeStatus::NumberMismatch) => format!(
                "approved with a wrong number (typed {}, shown {})",
                resp.number.map_or("nothing".into(), |n| n.to_string()),
                r.number
            ),
            (Some(resp), _) => match Answer::of(resp) {
                Some(Answer::Approve(_)) => "approved with the right number".into(),
                Some(Answer::CannotSeeNumber) => "denied: can't see the number".into(),
                Some(Answer::Deny) => "denied: \"No, it's not me\"".into(),
                Some(Answer::Report) => "reported as fraud".into(),
                None => "an answer that does not read".into(),
            },
            (None, _) => "no answer".into(),
        },
    };
    let result = Step {
        step: "result",
        at_ms: match status {
            ChallengeStatus::Pending => None,
            ChallengeStatus::Expired => Some(r.challenge.expires_at * 1000),
            _ => r.answered_ms.or(r.answered_at.map(|s| s * 1000)),
        },
        detail: status.as_str().replace('_', " "),
    };
    Timeline {
        id: r.challenge.id.clone(),
        username: r.challenge.account.clone(),
        device_id: r.challenge.device_id.clone(),
        kind: r.challenge.kind.as_str(),
        application: r.challenge.application.clone(),
        number: r.number,
        status: status.as_str(),
        open: status == ChallengeStatus::Pending,
        steps: vec![created, delivered, shown, answered, result],
    }
}

impl Server {
    /// Users whose username, name or email contains `q` (case-insensitive).
    pub fn find_users(&self, q: &str) -> Result<Vec<UserRow>, Error> {
        let q = q.trim().to_lowercase();
        let q = q
            .strip_suffix(&format!("@{}", self.config.email_domain))
            .unwrap_or(&q)
            .to_string();
        Ok(self.store.find_users(&q, 50)?)
    }

    /// A user's devices with their live streams.
    pub fn devices_view(&self, user: &UserRow) -> Result<Vec<DeviceView>, Error> {
        self.store
            .devices_of(user.id)?
            .into_iter()
            .map(|d| {
                Ok(DeviceView {
                    streams: self.streams_of(&d.id)?,
                    device: d,
                })
            })
            .collect()
    }

    /// A challenge's timeline.
    pub fn timeline(&self, id: &str, now: u64) -> Result<Timeline, Error> {
        let row = self
            .store
            .challenge(id)?
            .ok_or_else(|| Error::not_found("challenge"))?;
        Ok(timeline(&row, now))
    }

    /// A test push from the help desk to one of `username`'s devices, at
    /// `now_ms` (Unix milliseconds), labelled `label` (at most
    /// [`TEST_LABEL_MAX`] characters). An account above the staff
    /// member's role is refused, and the refusal audited, as for a fix: a
    /// push uses up the account's allowance of requests.
    pub fn helpdesk_push(
        &self,
        username: &str,
        device_id: Option<&str>,
        label: &str,
        staff: Staff<'_>,
        ip: &str,
        now_ms: u64,
    ) -> Result<(String, u8), Error> {
        let label = label.trim();
        if label.chars().count() > TEST_LABEL_MAX {
            return Err(Error::invalid(
                "invalid_label",
                format!("The label is at most {TEST_LABEL_MAX} characters."),
            ));
        }
        let user = self.user(username)?;
        let row = NewAudit::of(staff.name, "helpdesk.push", &user.username, ip);
        let act = "send this account a test push";
        self.within_role(&user, staff, (row, act), now_ms / 1000)?;
        let origin = Origin {
            application: if label.is_empty() {
                "Help desk test"
            } else {
                label
            },
            ip,
            location: "",
            kind: ChallengeKind::Test,
            actor: staff.name,
        };
        let created = self.create_challenge(username, device_id, &origin, now_ms)?;
        Ok((created.challenge_id, created.number))
    }

    /// Push figures over the last `minutes`.
    pub fn push_health(&self, minutes: u64, now: u64) -> Result<Health, Error> {
        let since = now.saturating_sub(minutes * 60);
        let rows = self.store.challenges_created_since(since)?;
        let mut per_minute = vec![0u32; minutes as usize];
        let mut latencies: Vec<u64> = Vec::new();
        let mut delivered_later = 0;
        let (mut finished, mut expired, mut answered, mut mismatched) = (0u32, 0u32, 0u32, 0u32);
        for r in &rows {
            let slot = ((r.challenge.created_at - since) / 60) as usize;
            if let Some(m) = per_minute.get_mut(slot) {
                *m += 1;
            }
            if let Some(d) = delivered_ms(r) {
                if r.connected_when_asked == Some(true) {
                    latencies.push(d.saturating_sub(created_ms(r)));
                } else {
                    delivered_later += 1;
                }
            }
            match r.status_at(now) {
                ChallengeStatus::Pending => {}
                ChallengeStatus::Expired => {
                    finished += 1;
                    expired += 1;
                }
                ChallengeStatus::NumberMismatch => {
                    finished += 1;
                    answered += 1;
                    mismatched += 1;
                }
                _ => {
                    finished += 1;
                    answered += 1;
                }
            }
        }
        latencies.sort_unstable();
        let rate = |a: u32, b: u32| {
            if b == 0 {
                0.0
            } else {
                f64::from(a) / f64::from(b)
            }
        };
        Ok(Health {
            connected: self.streams_total()?,
            per_minute,
            total: rows.len(),
            latencies_ms: latencies,
            delivered_later,
            expired_rate: rate(expired, finished),
            mismatch_rate: rate(mismatched, answered),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_latencies() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), 51);
        assert_eq!(quantile(&v, 0.99), 99);
        assert_eq!(quantile(&[7], 0.9), 7);
    }

    #[test]
    fn fixes_are_read_with_what_they_need() {
        assert_eq!(Fix::parse("unlock", None, None).unwrap(), Fix::Unlock);
        assert_eq!(
            Fix::parse("remove-device", Some("d1"), None).unwrap(),
            Fix::RemoveDevice("d1".into())
        );
        assert_eq!(
            Fix::parse("extend-skip-setup", None, Some(24)).unwrap(),
            Fix::ExtendSkipSetup(24)
        );
        for (a, d, h, says) in [
            ("remove-device", None, None, "needs a device"),
            ("extend-skip-setup", None, None, "needs a number of hours"),
            ("extend-skip-setup", None, Some(0), "1 to 720"),
            ("delete-everything", None, None, "unknown fix"),
        ] {
            let e = Fix::parse(a, d, h).unwrap_err().to_string();
            assert!(e.contains(says), "{a}: {e}");
        }
    }
}
