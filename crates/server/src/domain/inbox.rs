//! Device inboxes: the challenges created for a device, waiting for each
//! of its streams connected here to take them.
//!
//! One small inbox per stream rather than a channel per device: a server
//! holds a stream for every officer all day, and an empty inbox holds no
//! buffer and no waiter list, only the stream's waker.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use countersign_core::protocol::Challenge;
use futures_util::Stream;

/// Challenges an inbox holds for a stream that has not taken them yet. A
/// stream further behind is told so ([`Delivery::FellBehind`]) and
/// re-reads what is open from the store instead.
const SLOTS: usize = 4;

type ByDevice = Mutex<HashMap<Arc<str>, Vec<Arc<Slot>>>>;

/// The inboxes of the streams connected to this server, by device.
#[derive(Default)]
pub struct Inboxes(Arc<ByDevice>);

/// One stream's inbox: registered from [`Inboxes::open`] until dropped.
/// As a [`Stream`] it yields each delivery and never ends.
pub struct Inbox {
    slot: Arc<Slot>,
}

/// What a stream takes from its inbox.
#[derive(Debug)]
pub enum Delivery {
    /// A challenge created for the device.
    Challenge(Arc<Challenge>),
    /// More challenges came than the inbox holds: some were dropped.
    FellBehind,
}

struct Slot {
    device_id: Arc<str>,
    /// Where the slot is registered (to leave when dropped).
    inboxes: Arc<ByDevice>,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    challenges: VecDeque<Arc<Challenge>>,
    fell_behind: bool,
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inboxes {
    /// Opens an inbox for a stream of `device_id`.
    pub fn open(&self, device_id: &str) -> Inbox {
        let mut map = lock(&self.0);
        let device_id = match map.get_key_value(device_id) {
            Some((id, _)) => id.clone(),
            None => device_id.into(),
        };
        let slot = Arc::new(Slot {
            device_id,
            inboxes: self.0.clone(),
            waiting: Mutex::default(),
        });
        map.entry(slot.device_id.clone())
            .or_insert_with(|| Vec::with_capacity(1))
            .push(slot.clone());
        Inbox { slot }
    }

    /// Streams connected for `device_id`.
    pub fn connected(&self, device_id: &str) -> usize {
        lock(&self.0).get(device_id).map_or(0, Vec::len)
    }

    /// Streams connected across all devices.
    pub fn total_connected(&self) -> usize {
        lock(&self.0).values().map(Vec::len).sum()
    }

    /// Devices with a stream connected.
    pub fn devices_listening(&self) -> Vec<String> {
        lock(&self.0).keys().map(|id| id.to_string()).collect()
    }

    /// Devices with a stream connected, as the map's own ids (no copies
    /// of the text).
    pub fn devices_listening_ids(&self) -> std::collections::HashSet<Arc<str>> {
        lock(&self.0).keys().cloned().collect()
    }

    /// Puts `challenge` in the inbox of each stream of its device.
    pub fn publish(&self, challenge: Challenge) {
        let mut wake = Vec::new();
        {
            let map = lock(&self.0);
            let Some(slots) = map.get(challenge.device_id.as_str()) else {
                // No stream: the device fetches pending challenges when it
                // connects.
                return;
            };
            let challenge = Arc::new(challenge);
            for slot in slots {
                let mut waiting = lock(&slot.waiting);
                if waiting.challenges.len() < SLOTS {
                    waiting.challenges.push_back(challenge.clone());
                } else {
                    waiting.fell_behind = true;
                }
                wake.extend(waiting.waker.take());
            }
        }
        // Woken with no lock held.
        wake.into_iter().for_each(Waker::wake);
    }
}

impl Inbox {
    /// The device whose challenges come here.
    pub fn device_id(&self) -> &str {
        &self.slot.device_id
    }
}

impl Stream for Inbox {
    type Item = Delivery;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Delivery>> {
        let mut waiting = lock(&self.slot.waiting);
        if waiting.fell_behind {
            // Whatever is still held is open in the store too.
            *waiting = Waiting::default();
            return Poll::Ready(Some(Delivery::FellBehind));
        }
        if let Some(challenge) = waiting.challenges.pop_front() {
            if waiting.challenges.is_empty() {
                // Idle again: hold no buffer.
                waiting.challenges = VecDeque::new();
            }
            return Poll::Ready(Some(Delivery::Challenge(challenge)));
        }
        if !waiting
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            waiting.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut map = lock(&self.slot.inboxes);
        if let Some(slots) = map.get_mut(&self.slot.device_id) {
            slots.retain(|s| !Arc::ptr_eq(s, &self.slot));
            if slots.is_empty() {
                map.remove(&self.slot.device_id);
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// A sign-in challenge for tests.
    pub(crate) fn challenge(id: &str, device_id: &str) -> Challenge {
        Challenge {
            id: id.into(),
            device_id: device_id.into(),
            account: "cs0101".into(),
            application: "Portal".into(),
            ip: "192.0.2.1".into(),
            location: String::new(),
            kind: countersign_core::protocol::ChallengeKind::SignIn,
            created_at: 100,
            expires_at: 160,
        }
    }

    fn taken(d: Option<Delivery>) -> String {
        match d {
            Some(Delivery::Challenge(c)) => c.id.clone(),
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn each_stream_of_a_device_gets_each_challenge_and_others_none() {
        let inboxes = Inboxes::default();
        let mut a = inboxes.open("d1");
        let mut b = inboxes.open("d1");
        let mut other = inboxes.open("d2");
        inboxes.publish(challenge("c1", "d1"));
        inboxes.publish(challenge("c2", "d3"));
        assert_eq!(taken(a.next().await), "c1");
        assert_eq!(taken(b.next().await), "c1");
        let nothing = tokio::time::timeout(std::time::Duration::from_millis(20), other.next());
        assert!(nothing.await.is_err(), "d2 was sent nothing");
        assert_eq!(inboxes.connected("d1"), 2);
        assert_eq!(inboxes.total_connected(), 3);
    }

    #[tokio::test]
    async fn a_waiting_stream_is_woken_by_a_publish() {
        let inboxes = Arc::new(Inboxes::default());
        let mut inbox = inboxes.open("d1");
        let publisher = inboxes.clone();
        let publish = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            publisher.publish(challenge("c1", "d1"));
        });
        let woken = tokio::time::timeout(std::time::Duration::from_secs(5), inbox.next());
        assert_eq!(taken(woken.await.expect("woken by the publish")), "c1");
        publish.await.expect("no panic");
    }

    #[tokio::test]
    async fn a_stream_behind_by_more_than_the_slots_is_told_once_and_starts_afresh() {
        let inboxes = Inboxes::default();
        let mut inbox = inboxes.open("d1");
        for n in 0..=SLOTS {
            inboxes.publish(challenge(&format!("c{n}"), "d1"));
        }
        assert!(matches!(inbox.next().await, Some(Delivery::FellBehind)));
        inboxes.publish(challenge("later", "d1"));
        assert_eq!(taken(inbox.next().await), "later");
    }

    #[test]
    fn a_dropped_inbox_is_forgotten_with_its_device() {
        let inboxes = Inboxes::default();
        let a = inboxes.open("d1");
        let b = inboxes.open("d1");
        assert_eq!(inboxes.devices_listening(), vec!["d1".to_string()]);
        drop(a);
        assert_eq!(inboxes.connected("d1"), 1);
        drop(b);
        assert_eq!(inboxes.connected("d1"), 0);
        assert!(inboxes.devices_listening().is_empty());
        // A slot refers back to the map; nothing is left holding it.
        assert_eq!(Arc::strong_count(&inboxes.0), 1);
        // Publishing to a device with no stream keeps nothing.
        inboxes.publish(challenge("c1", "d1"));
        assert_eq!(inboxes.total_connected(), 0);
    }
}
