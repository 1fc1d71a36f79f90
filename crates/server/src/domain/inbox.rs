//! Device inboxes: the challenges created for a device, waiting for each
//! of its streams connected here to take them.
//!
//! One small inbox per stream rather than a channel per device: a server
//! holds a stream for every officer all day, and an empty inbox holds no
//! buffer and no waiter list, only the stream's waker.
//!
//! The inboxes also say when a stream's keep-alive is due, so a stream
//! needs no timer of its own (a timer made each stream's task a size
//! class larger): [`Inboxes::keep_alive`] is called every tick, and each
//! inbox is due once every [`KEEP_ALIVE_TICKS`] ticks. The inboxes are
//! spread evenly over the ticks, and the ticks are short, so the
//! keep-alives of many streams are written a few at a time, not in bursts
//! that would hold up pushes.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};

use countersign_core::protocol::Challenge;
use futures_util::Stream;

/// Challenges an inbox holds for a stream that has not taken them yet. A
/// stream further behind is told so ([`Delivery::FellBehind`]) and
/// re-reads what is open from the store instead.
const SLOTS: usize = 4;

/// An inbox is due a keep-alive once every this many ticks.
pub const KEEP_ALIVE_TICKS: usize = 300;

type ByDevice = Mutex<HashMap<Arc<str>, Vec<Arc<Slot>>>>;

/// The inboxes of the streams connected to this server, by device and by
/// the tick their keep-alives are due at.
pub struct Inboxes {
    by_device: Arc<ByDevice>,
    /// Every open inbox (and, until its tick comes, a closed one) in one
    /// of [`KEEP_ALIVE_TICKS`] lists.
    by_tick: Box<[Mutex<Vec<Weak<Slot>>>]>,
    /// The tick the next inbox opened is due its keep-alives at.
    next_tick: AtomicUsize,
}

impl Default for Inboxes {
    fn default() -> Self {
        Inboxes {
            by_device: Arc::default(),
            by_tick: (0..KEEP_ALIVE_TICKS).map(|_| Mutex::default()).collect(),
            next_tick: AtomicUsize::new(0),
        }
    }
}

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
    /// Time the stream showed it is alive.
    KeepAlive,
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
    keep_alive: bool,
    waker: Option<Waker>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inboxes {
    /// Opens an inbox for a stream of `device_id`.
    pub fn open(&self, device_id: &str) -> Inbox {
        let mut map = lock(&self.by_device);
        let device_id = match map.get_key_value(device_id) {
            Some((id, _)) => id.clone(),
            None => device_id.into(),
        };
        let slot = Arc::new(Slot {
            device_id,
            inboxes: self.by_device.clone(),
            waiting: Mutex::default(),
        });
        map.entry(slot.device_id.clone())
            .or_insert_with(|| Vec::with_capacity(1))
            .push(slot.clone());
        drop(map);
        let tick = self.next_tick.fetch_add(1, Ordering::Relaxed) % KEEP_ALIVE_TICKS;
        lock(&self.by_tick[tick]).push(Arc::downgrade(&slot));
        Inbox { slot }
    }

    /// Streams connected for `device_id`.
    pub fn connected(&self, device_id: &str) -> usize {
        lock(&self.by_device).get(device_id).map_or(0, Vec::len)
    }

    /// Streams connected across all devices.
    pub fn total_connected(&self) -> usize {
        lock(&self.by_device).values().map(Vec::len).sum()
    }

    /// Devices with a stream connected.
    pub fn devices_listening(&self) -> Vec<String> {
        lock(&self.by_device)
            .keys()
            .map(|id| id.to_string())
            .collect()
    }

    /// Devices with a stream connected, as the map's own ids (no copies
    /// of the text).
    pub fn devices_listening_ids(&self) -> std::collections::HashSet<Arc<str>> {
        lock(&self.by_device).keys().cloned().collect()
    }

    /// Puts `challenge` in the inbox of each stream of its device.
    pub fn publish(&self, challenge: Challenge) {
        let mut wake = Vec::new();
        {
            let map = lock(&self.by_device);
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

    /// Tells the inboxes due at `tick` (counted modulo
    /// [`KEEP_ALIVE_TICKS`]) that their stream's keep-alive is due, and
    /// forgets those closed since their last tick.
    pub fn keep_alive(&self, tick: u64) {
        let ticks = KEEP_ALIVE_TICKS as u64;
        let mut wake = Vec::new();
        {
            let mut list = lock(&self.by_tick[(tick % ticks) as usize]);
            list.retain(|slot| {
                let Some(slot) = slot.upgrade() else {
                    return false;
                };
                let mut waiting = lock(&slot.waiting);
                waiting.keep_alive = true;
                wake.extend(waiting.waker.take());
                true
            });
            // After a surge of connections, give the room back.
            let len = list.len();
            if list.capacity() > 2 * len + 8 {
                list.shrink_to(len + len / 4);
            }
        }
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
            // Whatever is still held is open in the store too. A keep-alive
            // due stays due: what is re-read may all have been sent.
            let keep_alive = waiting.keep_alive;
            *waiting = Waiting {
                keep_alive,
                ..Waiting::default()
            };
            return Poll::Ready(Some(Delivery::FellBehind));
        }
        if let Some(challenge) = waiting.challenges.pop_front() {
            if waiting.challenges.is_empty() {
                // Idle again: hold no buffer.
                waiting.challenges = VecDeque::new();
            }
            return Poll::Ready(Some(Delivery::Challenge(challenge)));
        }
        if std::mem::take(&mut waiting.keep_alive) {
            return Poll::Ready(Some(Delivery::KeepAlive));
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
        inboxes.keep_alive(0);
        assert!(matches!(inbox.next().await, Some(Delivery::FellBehind)));
        inboxes.publish(challenge("later", "d1"));
        assert_eq!(taken(inbox.next().await), "later");
        let due = ready(&mut inbox);
        assert!(
            matches!(due, Some(Delivery::KeepAlive)),
            "still due: {due:?}"
        );
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
        assert_eq!(Arc::strong_count(&inboxes.by_device), 1);
        // Nor does a tick: each list forgets the inboxes closed since.
        (0..KEEP_ALIVE_TICKS as u64).for_each(|t| inboxes.keep_alive(t));
        assert!(inboxes.by_tick.iter().all(|list| lock(list).is_empty()));
        // A surge's room is given back at the next tick.
        let surge: Vec<Inbox> = (0..20 * KEEP_ALIVE_TICKS)
            .map(|_| inboxes.open("d1"))
            .collect();
        assert!(lock(&inboxes.by_tick[0]).capacity() >= 20);
        drop(surge);
        inboxes.keep_alive(0);
        assert_eq!(lock(&inboxes.by_tick[0]).capacity(), 0);
        // Publishing to a device with no stream keeps nothing.
        inboxes.publish(challenge("c1", "d1"));
        assert_eq!(inboxes.total_connected(), 0);
    }

    /// Whether `inbox` holds something to take now.
    fn ready(inbox: &mut Inbox) -> Option<Delivery> {
        let mut cx = Context::from_waker(Waker::noop());
        match Pin::new(inbox).poll_next(&mut cx) {
            Poll::Ready(d) => d,
            Poll::Pending => None,
        }
    }

    #[tokio::test]
    async fn each_inbox_is_due_a_keep_alive_once_every_so_many_ticks_spread_evenly() {
        let inboxes = Inboxes::default();
        let ticks = KEEP_ALIVE_TICKS as u64;
        let mut all: Vec<Inbox> = (0..2 * ticks)
            .map(|n| inboxes.open(&format!("d{}", n % 3)))
            .collect();
        for tick in ticks..3 * ticks {
            inboxes.keep_alive(tick);
            let due: Vec<usize> = all
                .iter_mut()
                .enumerate()
                .filter_map(|(n, inbox)| match ready(inbox) {
                    Some(Delivery::KeepAlive) => Some(n),
                    None => None,
                    Some(other) => panic!("{other:?}"),
                })
                .collect();
            // Two of them each tick, and each inbox once in so many ticks.
            let t = (tick % ticks) as usize;
            assert_eq!(due, vec![t, t + ticks as usize], "tick {tick}");
        }
        // A challenge comes before a keep-alive due at the same time, and
        // a waiting stream is woken for either.
        let mut inbox = inboxes.open("d9");
        let waiting = tokio::spawn(async move {
            let first = inbox.next().await;
            (first, inbox)
        });
        tokio::task::yield_now().await;
        inboxes.keep_alive(2 * ticks);
        let (first, mut inbox) = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken by its tick")
            .expect("no panic");
        assert!(matches!(first, Some(Delivery::KeepAlive)), "{first:?}");
        inboxes.publish(challenge("c1", "d9"));
        inboxes.keep_alive(2 * ticks);
        assert_eq!(taken(ready(&mut inbox)), "c1");
        assert!(matches!(ready(&mut inbox), Some(Delivery::KeepAlive)));
        assert!(ready(&mut inbox).is_none(), "one keep-alive a tick");
    }
}
