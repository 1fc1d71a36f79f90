//! The hub: live channels inside one server process, from a created
//! challenge to the streams of its device, and from a settled challenge to
//! whoever follows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::Challenge;
use tokio::sync::watch;

use super::inbox::{Inbox, Inboxes};

/// Live channels: new challenges to device streams, status changes to
/// whoever follows a challenge (sign-in page, `push` command).
#[derive(Default)]
pub struct Hub {
    devices: Inboxes,
    watchers: Mutex<HashMap<String, watch::Sender<ChallengeStatus>>>,
}

impl Hub {
    /// Subscribes a device stream to its new challenges.
    pub fn subscribe(&self, device_id: &str) -> Inbox {
        self.devices.open(device_id)
    }

    /// Streams currently connected for a device.
    pub fn connected(&self, device_id: &str) -> usize {
        self.devices.connected(device_id)
    }

    /// Streams connected across all devices.
    pub fn total_connected(&self) -> usize {
        self.devices.total_connected()
    }

    /// Devices with a stream open here.
    pub(crate) fn devices_listening(&self) -> Vec<String> {
        self.devices.devices_listening()
    }

    /// Devices with a stream open here, as shared ids.
    pub(crate) fn devices_listening_ids(&self) -> std::collections::HashSet<std::sync::Arc<str>> {
        self.devices.devices_listening_ids()
    }

    /// Whether someone here follows the challenge `id`.
    pub(crate) fn follows(&self, id: &str) -> bool {
        let map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        map.contains_key(id)
    }

    /// Challenges someone here follows.
    pub(crate) fn followed(&self) -> Vec<String> {
        let map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }

    /// Tells the streams due a keep-alive at `tick` (see
    /// [`super::inbox::KEEP_ALIVE_TICKS`]).
    pub(crate) fn keep_alive(&self, tick: u64) {
        self.devices.keep_alive(tick);
    }

    /// Hands a new challenge to its device's streams here.
    pub(crate) fn publish(&self, challenge: Challenge) {
        self.devices.publish(challenge);
    }

    /// Follows a challenge's status, starting from `current`, for as long
    /// as the [`Following`] lives.
    pub fn watch(self: &Arc<Self>, challenge_id: &str, current: ChallengeStatus) -> Following {
        let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        let tx = map
            .entry(challenge_id.to_string())
            .or_insert_with(|| watch::channel(current).0);
        Following {
            rx: tx.subscribe(),
            hub: self.clone(),
            id: challenge_id.to_string(),
        }
    }

    /// Tells followers a challenge's final status.
    pub fn settle(&self, challenge_id: &str, status: ChallengeStatus) {
        let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.remove(challenge_id) {
            let _ = tx.send(status);
        }
    }
}

/// A challenge's status as it changes ([`Hub::watch`]). When the last
/// follower of a challenge goes (answered, timed out, or the page left),
/// the hub forgets it: a challenge followed once it was already final
/// (nothing settles it again) is not kept for ever.
pub struct Following {
    rx: watch::Receiver<ChallengeStatus>,
    hub: Arc<Hub>,
    id: String,
}

impl std::ops::Deref for Following {
    type Target = watch::Receiver<ChallengeStatus>;
    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl std::ops::DerefMut for Following {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl Drop for Following {
    fn drop(&mut self) {
        let mut map = self.hub.watchers.lock().unwrap_or_else(|p| p.into_inner());
        // This follower's receiver is still counted. A challenge settled
        // (its sender dropped: this receiver is closed) and followed again
        // has another channel, not this one's.
        let last =
            !self.rx.is_closed() && map.get(&self.id).is_some_and(|tx| tx.receiver_count() <= 1);
        if last {
            map.remove(&self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use countersign_core::api::ChallengeStatus;

    use super::Hub;

    #[test]
    fn a_challenge_is_forgotten_when_its_last_follower_goes() {
        let hub = Arc::new(Hub::default());
        let first = hub.watch("c1", ChallengeStatus::Approved);
        let second = hub.watch("c1", ChallengeStatus::Approved);
        drop(first);
        assert!(hub.follows("c1"), "forgotten while followed");
        drop(second);
        assert!(!hub.follows("c1"), "kept with nobody following");
    }

    #[test]
    fn a_settled_challenge_reaches_its_followers_and_is_forgotten() {
        let hub = Arc::new(Hub::default());
        let mut page = hub.watch("c1", ChallengeStatus::Pending);
        hub.settle("c1", ChallengeStatus::Approved);
        assert_eq!(*page.borrow_and_update(), ChallengeStatus::Approved);
        assert!(!hub.follows("c1"));
        // Followed again once settled (a page come back): the first
        // follower's going does not forget the new one.
        let again = hub.watch("c1", ChallengeStatus::Approved);
        drop(page);
        assert!(hub.follows("c1"));
        drop(again);
        assert!(!hub.follows("c1"));
    }
}
