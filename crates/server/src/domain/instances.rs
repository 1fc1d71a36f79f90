//! Several instances on one PostgreSQL database: what this one does when
//! another announces a change (see [`crate::store::Event`]). The device
//! stream that must carry a new challenge, and the page that follows it,
//! may each be held by any instance.

use std::collections::HashSet;
use std::sync::Arc;

use countersign_core::api::ChallengeStatus;

use crate::store::Event;
use crate::{Error, Server};

impl Server {
    /// Acts on another instance's announcement: a new challenge goes to
    /// this instance's streams of its device, a settled one to whoever
    /// follows it here, audit rows wake live views (a challenge created or
    /// settled comes with its audit rows, announced with it).
    pub fn on_event(&self, e: Event) -> Result<(), Error> {
        if matches!(e, Event::Created(..) | Event::Settled(..) | Event::Audit) {
            self.wake_audit_views();
        }
        match e {
            // Read only where the device streams, or the challenge is
            // followed: two reads fewer per push on every other instance.
            Event::Created(_, device) if !device.is_empty() && self.hub.connected(&device) == 0 => {
            }
            Event::Settled(id, _) if !self.hub.follows(&id) => {}
            Event::Created(id, _) => {
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
            Event::Audit => {}
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

/// Devices whose streams this instance last reported (see
/// [`Server::report_streams`]); `None` when not known to be in the
/// database (no report yet, or the last one failed).
pub type Reported = Option<HashSet<Arc<str>>>;

impl Server {
    /// Tells the database which devices stream here now, as the change
    /// since `reported` when that is known to be there, and that this
    /// instance still serves (PostgreSQL; nothing on SQLite). Returns what
    /// is now reported: `None` when the database could not be told (the
    /// next report then sends every device again, whatever part of this
    /// one was kept).
    pub fn report_streams(&self, reported: Reported) -> Reported {
        let now = self.hub.devices_listening_ids();
        let all: Vec<&str> = now.iter().map(|d| &**d).collect();
        let change = reported.as_ref().map(|last| {
            let opened: Vec<&str> = now.difference(last).map(|d| &**d).collect();
            let closed: Vec<&str> = last.difference(&now).map(|d| &**d).collect();
            (opened, closed)
        });
        let change = change.as_ref().map(|(o, c)| (o.as_slice(), c.as_slice()));
        match self.store.report_streams(&all, change) {
            Ok(()) => Some(now),
            Err(e) => {
                tracing::warn!(error = %e, "could not tell other instances which devices stream here");
                None
            }
        }
    }

    /// Stops counting this instance's streams (it stops serving), and
    /// forgets instances that stopped reporting a minute ago.
    pub fn withdraw_streams(&self, this_instance: bool) {
        if let Err(e) = self.store.withdraw_streams(this_instance) {
            tracing::warn!(error = %e, "could not remove the record of streams");
        }
    }

    /// Streams a device has open on every serving instance: here, each
    /// stream; on another instance, one however many it holds there.
    pub fn streams_of(&self, device_id: &str) -> Result<usize, Error> {
        Ok(self.hub.connected(device_id) + self.store.streams_elsewhere(Some(device_id))?)
    }

    /// Streams open on every serving instance, counted as
    /// [`Server::streams_of`] does.
    pub fn streams_total(&self) -> Result<usize, Error> {
        Ok(self.hub.total_connected() + self.store.streams_elsewhere(None)?)
    }
}
