//! The hub: live channels inside one server process, from a created
//! challenge to the streams of its device, and from a settled challenge to
//! whoever follows it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use countersign_core::api::ChallengeStatus;
use countersign_core::protocol::Challenge;
use tokio::sync::{broadcast, watch};

/// Challenges a device's channel holds for a stream that has not taken
/// them yet. Each slot is kept for every connected device; a stream that
/// falls further behind re-reads what is open from the store instead.
const CHANNEL_SLOTS: usize = 4;

/// Live channels: new challenges to device streams, status changes to
/// whoever follows a challenge (sign-in page, `push` command).
#[derive(Default)]
pub struct Hub {
    devices: Mutex<HashMap<String, broadcast::Sender<Arc<Challenge>>>>,
    watchers: Mutex<HashMap<String, watch::Sender<ChallengeStatus>>>,
}

impl Hub {
    /// Subscribes a device stream to its new challenges.
    pub fn subscribe(&self, device_id: &str) -> broadcast::Receiver<Arc<Challenge>> {
        let mut map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(device_id.to_string())
            .or_insert_with(|| broadcast::channel(CHANNEL_SLOTS).0)
            .subscribe()
    }

    /// Streams currently connected for a device.
    pub fn connected(&self, device_id: &str) -> usize {
        let map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        map.get(device_id)
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// Streams connected across all devices.
    pub fn total_connected(&self) -> usize {
        let map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        map.values().map(broadcast::Sender::receiver_count).sum()
    }

    /// Devices with a stream open here.
    pub(crate) fn devices_listening(&self) -> Vec<String> {
        let map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        map.iter()
            .filter(|(_, tx)| tx.receiver_count() > 0)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Challenges someone here follows.
    pub(crate) fn followed(&self) -> Vec<String> {
        let map = self.watchers.lock().unwrap_or_else(|p| p.into_inner());
        map.keys().cloned().collect()
    }

    pub(crate) fn publish(&self, challenge: Challenge) {
        let mut map = self.devices.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = map.get(&challenge.device_id) {
            if tx.send(Arc::new(challenge.clone())).is_err() {
                // No stream left: forget the channel; the device fetches
                // pending challenges when it reconnects.
                map.remove(&challenge.device_id);
            }
        }
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
