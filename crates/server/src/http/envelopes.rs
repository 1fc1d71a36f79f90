//! What a device stream carries: its pending challenges, then each new
//! one from its inbox, each once, signed for delivery, and a keep-alive
//! whenever its inbox says one is due.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use countersign_core::protocol::ChallengeEnvelope;
use futures_util::Stream;

use crate::domain::inbox::{Delivery, Inbox};
use crate::Server;

/// What a device stream writes next.
// Handed straight to be written, never kept: boxing the envelope would only
// add an allocation per push.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Outgoing {
    /// A challenge, signed.
    Challenge(ChallengeEnvelope),
    /// A comment that shows the stream is alive (every
    /// [`crate::http::events::KEEP_ALIVE`]).
    KeepAlive,
}

/// The envelopes a device stream carries: the pending ones, then each new
/// one, each once, with keep-alives between. Written out as a plain
/// [`Stream`] (not with stream combinators) because a server holds one per
/// connected device all day, and this way an idle one holds only its
/// inbox: what it has sent and what waits to be are on the heap only while
/// there is any.
pub(crate) struct DeviceEnvelopes {
    server: Arc<Server>,
    inbox: Inbox,
    held: Option<Box<Held>>,
}

/// What a [`DeviceEnvelopes`] keeps between calls.
#[derive(Default)]
struct Held {
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
            held: None,
        };
        envelopes.queue(pending, crate::now());
        envelopes
    }

    /// Queues those of `envelopes` not sent before.
    fn queue(&mut self, envelopes: Vec<ChallengeEnvelope>, now: u64) {
        let held = self.held.get_or_insert_with(Box::default);
        held.ready = envelopes
            .into_iter()
            .filter(|e| held.sent.first(e, now))
            .collect();
        held.ready.reverse();
        // Expired ones are never sent (`Sent::first`); now they are
        // forgotten, and nothing is held if nothing is left.
        self.forget_closed(now);
    }

    /// Forgets the challenges that expired by `now`, and frees what is
    /// held once nothing is.
    fn forget_closed(&mut self, now: u64) {
        if let Some(held) = &mut self.held {
            held.sent.forget_closed(now);
            if held.ready.is_empty() {
                held.ready = Vec::new();
                if held.sent.0.is_empty() {
                    self.held = None;
                }
            }
        }
    }
}

impl Stream for DeviceEnvelopes {
    type Item = Outgoing;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        let this = &mut *self;
        loop {
            if let Some(e) = this.held.as_mut().and_then(|h| h.ready.pop()) {
                return Poll::Ready(Some(Outgoing::Challenge(e)));
            }
            // Drained: hold nothing more than needed while idle.
            let now = crate::now();
            this.forget_closed(now);
            let envelopes = match ready!(Pin::new(&mut this.inbox).poll_next(cx)) {
                // Signed only once known to be sent.
                Some(Delivery::Challenge(c)) => {
                    let held = this.held.get_or_insert_with(Box::default);
                    if held.sent.first_of(&c.id, c.expires_at, now) {
                        let envelope = this.server.envelope((*c).clone(), now);
                        return Poll::Ready(Some(Outgoing::Challenge(envelope)));
                    }
                    continue;
                }
                Some(Delivery::KeepAlive) => return Poll::Ready(Some(Outgoing::KeepAlive)),
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
/// is not sent twice. Expired ones are forgotten at the stream's next
/// keep-alive or push (and an expired one is never sent), so an idle
/// stream holds none for long.
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
        let (_dir, s) = crate::scratch_server();
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
        // Its inbox (the first opened here) is due its keep-alive at tick 0.
        s.hub.keep_alive(1);
        let quiet = tokio::time::timeout(std::time::Duration::from_millis(50), stream.next());
        assert!(quiet.await.is_err(), "not due at tick 1");
        s.hub.keep_alive(0);
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next());
        let next = next.await.expect("due at tick 0");
        assert!(matches!(next, Some(super::Outgoing::KeepAlive)), "{next:?}");
        assert!(stream.held.is_some(), "c9 is still open");
    }

    #[tokio::test]
    async fn an_idle_stream_forgets_what_it_sent_once_expired() {
        use crate::domain::inbox::tests::challenge;
        use futures_util::StreamExt;
        let (_dir, s) = crate::scratch_server();
        let mut stream = DeviceEnvelopes::new(s.clone(), s.hub.subscribe("d1"), Vec::new());
        assert!(stream.held.is_none(), "nothing held before a push");
        s.hub.publish(countersign_core::protocol::Challenge {
            // Two seconds: one could pass before it is sent.
            expires_at: crate::now() + 2,
            ..challenge("c1", "d1")
        });
        assert_eq!(next_id(&mut stream).await, "c1");
        assert!(stream.held.is_some(), "c1 is remembered while open");
        // Its next keep-alive after c1 expired frees what it held.
        tokio::time::sleep(std::time::Duration::from_secs(3)).await;
        s.hub.keep_alive(0);
        let next = stream.next().await;
        assert!(matches!(next, Some(super::Outgoing::KeepAlive)), "{next:?}");
        assert!(stream.held.is_none(), "c1 has expired");
    }

    async fn next_id(stream: &mut DeviceEnvelopes) -> String {
        use futures_util::StreamExt;
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next());
        match next.await.expect("an envelope").expect("open") {
            super::Outgoing::Challenge(e) => e.challenge.id,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }
}
