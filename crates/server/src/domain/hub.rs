//! The hub: live channels inside one server process, from a created
//! challenge to the streams of its device, and from a settled challenge to
//! whoever follows it.

use std::collections::HashMap;
use std::sync::Mutex;

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

    /// Follows a challenge's status, starting from `current`.
    pub fn watch(
        &self,
        challenge_id: &str,
        current: ChallengeStatus,
    ) -> watch::Receiver<ChallengeStatus> {
        let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        let tx = map
            .entry(challenge_id.to_string())
            .or_insert_with(|| watch::channel(current).0);
        tx.subscribe()
    }

    /// Tells followers a challenge's final status.
    pub fn settle(&self, challenge_id: &str, status: ChallengeStatus) {
        let mut map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.remove(challenge_id) {
            let _ = tx.send(status);
        }
    }
}
