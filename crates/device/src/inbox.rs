//! The queue of sign-in requests waiting for the person: verified requests
//! in arrival order, each once, gone when answered or expired.

use crate::push::Pending;

/// Waiting requests, oldest first.
#[derive(Debug, Default)]
pub struct Inbox {
    waiting: Vec<Pending>,
    seen: std::collections::HashSet<String>,
}

impl Inbox {
    /// Adds a verified request; false when it was seen before (a stream
    /// reconnect replays the pending list).
    pub fn offer(&mut self, request: Pending) -> bool {
        if !self.seen.insert(request.envelope.challenge.id.clone()) {
            return false;
        }
        self.waiting.push(request);
        true
    }

    /// Whether the request `challenge_id` came before (queued, answered
    /// or expired): a replayed envelope is not verified or shown again.
    pub fn has_seen(&self, challenge_id: &str) -> bool {
        self.seen.contains(challenge_id)
    }

    /// The waiting requests, oldest first.
    pub fn waiting(&self) -> &[Pending] {
        &self.waiting
    }

    /// A waiting request by challenge id.
    pub fn get(&self, id: &str) -> Option<&Pending> {
        self.waiting.iter().find(|p| p.envelope.challenge.id == id)
    }

    /// Removes a request once it is answered.
    pub fn remove(&mut self, id: &str) -> Option<Pending> {
        let i = self
            .waiting
            .iter()
            .position(|p| p.envelope.challenge.id == id)?;
        Some(self.waiting.remove(i))
    }

    /// Removes and returns the requests that expired by `now`.
    pub fn expire(&mut self, now: u64) -> Vec<Pending> {
        let (gone, keep) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|p| p.envelope.challenge.expires_at <= now);
        self.waiting = keep;
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use countersign_core::protocol::{Challenge, ChallengeEnvelope, ChallengeKind};
    use countersign_core::SigningKey;

    fn request(id: &str, expires_at: u64) -> Pending {
        let key = SigningKey::generate(&ring::rand::SystemRandom::new()).unwrap();
        let challenge = Challenge {
            id: id.into(),
            device_id: "d".into(),
            account: "a".into(),
            application: "app".into(),
            ip: String::new(),
            location: String::new(),
            kind: ChallengeKind::SignIn,
            created_at: 0,
            expires_at,
        };
        Pending {
            account_id: "x".into(),
            account: "a".into(),
            envelope: ChallengeEnvelope::sign(challenge, 0, &key),
            drift: 0,
        }
    }

    #[test]
    fn requests_queue_once_each_and_leave_when_answered_or_expired() {
        let mut inbox = Inbox::default();
        assert!(inbox.offer(request("a", 60)));
        assert!(inbox.offer(request("b", 30)));
        assert!(
            !inbox.offer(request("a", 60)),
            "a replay is not queued twice"
        );
        let ids = |i: &Inbox| -> Vec<String> {
            i.waiting()
                .iter()
                .map(|p| p.envelope.challenge.id.clone())
                .collect()
        };
        assert_eq!(ids(&inbox), ["a", "b"]);
        let gone = inbox.expire(30);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].envelope.challenge.id, "b");
        assert_eq!(ids(&inbox), ["a"]);
        assert!(inbox.get("a").is_some());
        assert!(inbox.remove("a").is_some());
        assert!(inbox.remove("a").is_none());
        assert!(
            !inbox.offer(request("a", 60)),
            "an answered request stays answered"
        );
    }
}
