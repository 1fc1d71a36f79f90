//! Several instances on one PostgreSQL database: what this one does when
//! another announces a change (see [`crate::store::Event`]). The device
//! stream that must carry a new challenge, and the page that follows it,
//! may each be held by any instance.

use countersign_core::api::ChallengeStatus;

use crate::store::Event;
use crate::{Error, Server};

impl Server {
    /// Acts on another instance's announcement: a new challenge goes to
    /// this instance's streams of its device, a settled one to whoever
    /// follows it here, audit rows wake live views.
    pub fn on_event(&self, e: Event) -> Result<(), Error> {
        match e {
            Event::Created(id) => {
                if let Some(row) = self.store.challenge(&id)? {
                    if row.status == ChallengeStatus::Pending {
                        self.hub.publish(row.challenge);
                    }
                }
            }
            Event::Settled(id, _) => {
                // The stored status, not the announced one: anyone who may
                // connect to the database may also send a notification.
                if let Some(row) = self.store.challenge(&id)? {
                    let status = row.status_at(crate::now());
                    if status.is_final() {
                        self.hub.settle(&id, status);
                    }
                }
            }
            Event::Audit => self.wake_audit_views(),
            // Only the keys instances share (a rotation's check value, say,
            // is no file of theirs).
            Event::Secret(name) if crate::domain::shared_keys::SHARED.contains(&name.as_str()) => {
                if let Some(keys) = &self.shared_keys {
                    keys.pull_one(&self.store, &name)
                        .map_err(|e| Error::Internal(e.to_string()))?;
                }
            }
            Event::Secret(_) => {}
        }
        Ok(())
    }

    /// After listening starts (again): what may have been missed meanwhile.
    /// Each stream held here is sent its device's open challenges (a
    /// device drops one it has seen), and followers re-read their status.
    pub fn catch_up(&self, now: u64) -> Result<(), Error> {
        for device in self.hub.devices_listening() {
            for row in self.store.pending_for_device(&device, now)? {
                self.hub.publish(row.challenge);
            }
        }
        for id in self.hub.followed() {
            if let Some(row) = self.store.challenge(&id)? {
                let status = row.status_at(now);
                if status.is_final() {
                    self.hub.settle(&id, status);
                }
            }
        }
        self.wake_audit_views();
        Ok(())
    }
}
