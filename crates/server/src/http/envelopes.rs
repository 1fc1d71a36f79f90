//! What a device stream carries: its pending challenges, then each new
//! one from its inbox, each once, signed for delivery.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use countersign_core::protocol::ChallengeEnvelope;
use futures_util::Stream;

use crate::domain::inbox::{Delivery, Inbox};
use crate::Server;

/// The envelopes a device stream carries: the pending ones, then each new
/// one, each once. Written out as a plain [`Stream`] (not with stream
/// combinators) because a server holds one per connected device all day,
/// and this way it holds only its inbox and what it has sent.
pub(crate) struct DeviceEnvelopes {
    server: Arc<Server>,
    inbox: Inbox,
    sent: Sent,
    /// Envelopes to send before taking from the inbox again, the next
    /// one last.
    ready: Vec<ChallengeEnvelope>,
}

impl DeviceEnvelopes {
    /// Pending envelopes first, then what comes to `inbox`.
    pub(crate) fn new(server: Arc<Server>, inbox: Inbox, pending: Vec<ChallengeEnvelope>) -> Self {
        let mut envelopes = DeviceEnvelopes {
            server,
            inbox,
            sent: Sent::default(),
            ready: Vec::new(),
        };
        envelopes.queue(pending, crate::now());
        envelopes
    }

    /// Queues those of `envelopes` not sent before.
    fn queue(&mut self, envelopes: Vec<ChallengeEnvelope>, now: u64) {
        self.sent.forget_closed(now);
        self.ready = envelopes
            .into_iter()
            .filter(|e| self.sent.first(e, now))
            .collect();
        self.ready.reverse();
    }
}

impl Stream for DeviceEnvelopes {
    type Item = ChallengeEnvelope;

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<ChallengeEnvelope>> {
        let this = &mut *self;
        loop {
            if let Some(e) = this.ready.pop() {
                return Poll::Ready(Some(e));
            }
            // Drained: hold no buffer while idle.
            this.ready = Vec::new();
            let now = crate::now();
            let envelopes = match ready!(Pin::new(&mut this.inbox).poll_next(cx)) {
                // Signed only once known to be sent.
                Some(Delivery::Challenge(c)) => {
                    this.sent.forget_closed(now);
                    if this.sent.first_of(&c.id, c.expires_at, now) {
                        return Poll::Ready(Some(this.server.envelope((*c).clone(), now)));
                    }
                    continue;
                }
                // Fell behind: send everything still open instead. If that
                // cannot be read, the stream ends (and is logged): the
                // device reconnects and is sent what is open then.
                Some(Delivery::FellBehind) => {
                    match this.server.pending_envelopes(this.inbox.device_id(), now) {
                        Ok(envelopes) => envelopes,
                        Err(e) => {
                            tracing::error!(error = %e, device = %this.inbox.device_id(), "cannot read open challenges; closing the stream");
                            return Poll::Ready(None);
                        }
                    }
                }
                None => return Poll::Ready(None),
            };
            this.queue(envelopes, now);
        }
    }
}

/// The challenges a stream has sent that are still open: one created
/// while the stream started, or sent again after the stream fell behind,
/// is not sent twice. Expired ones are forgotten at the next push (and an
/// expired one is never sent), so a stream open all day holds no more
/// than the challenges of its last pushes.
#[derive(Default)]
struct Sent(Vec<(String, u64)>);

impl Sent {
    /// Whether `e` is to be sent: open at `now` and not sent before. It
    /// counts as sent from now on.
    fn first(&mut self, e: &ChallengeEnvelope, now: u64) -> bool {
        self.first_of(&e.challenge.id, e.challenge.expires_at, now)
    }

    fn first_of(&mut self, id: &str, expires_at: u64, now: u64) -> bool {
        if expires_at <= now || self.0.iter().any(|(sent, _)| sent == id) {
            return false;
        }
        self.0.push((id.to_string(), expires_at));
        true
    }

    /// Forgets the challenges that have expired by `now`.
    fn forget_closed(&mut self, now: u64) {
        self.0.retain(|(_, expires_at)| *expires_at > now);
        if self.0.is_empty() {
            self.0 = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{DeviceEnvelopes, Sent};

    #[test]
    fn a_stream_sends_a_challenge_once_and_forgets_it_when_it_expires() {
        let mut sent = Sent::default();
        assert!(sent.first_of("c1", 100, 0));
        assert!(sent.first_of("c2", 200, 0));
        assert!(!sent.first_of("c1", 100, 0), "c1 was sent already");
        sent.forget_closed(150);
        assert!(!sent.first_of("c2", 200, 150), "c2 is still open");
        assert!(
            !sent.first_of("c1", 100, 150),
            "an expired one is never sent"
        );
        sent.forget_closed(200);
        assert_eq!(sent.0.capacity(), 0, "nothing held once all expired");
        assert!(sent.first_of("c1", 300, 200));
    }

    #[tokio::test]
    async fn a_device_stream_sends_pending_then_new_challenges_each_once() {
        use crate::domain::inbox::tests::challenge;
        use futures_util::StreamExt;
        let dir = tempfile::tempdir().unwrap();
        let data = crate::infra::datadir::DataDir::open(dir.path()).unwrap();
        let config = crate::infra::config::Config::default();
        let s = std::sync::Arc::new(crate::Server::open(config, &data).unwrap());
        let open = |id: &str| countersign_core::protocol::Challenge {
            expires_at: crate::now() + 60,
            ..challenge(id, "d1")
        };
        let inbox = s.hub.subscribe("d1");
        let pending = vec![s.envelope(open("c0"), crate::now())];
        let mut stream = DeviceEnvelopes::new(s.clone(), inbox, pending);
        s.hub.publish(open("c0"));
        s.hub.publish(open("c1"));
        assert_eq!(next_id(&mut stream).await, "c0");
        assert_eq!(next_id(&mut stream).await, "c1", "c0 is not sent twice");
        // Behind by more than the inbox holds: what is open is read from
        // the store instead (nothing here), and the stream goes on.
        for n in 2..9 {
            s.hub.publish(open(&format!("c{n}")));
        }
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), stream.next());
        assert!(quiet.await.is_err(), "nothing open in the store");
        s.hub.publish(open("c1"));
        s.hub.publish(open("c9"));
        assert_eq!(next_id(&mut stream).await, "c9", "c1 is not sent twice");
    }

    async fn next_id(stream: &mut DeviceEnvelopes) -> String {
        use futures_util::StreamExt;
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next());
        next.await.expect("an envelope").expect("open").challenge.id
    }
}
