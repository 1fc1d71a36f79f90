//! What one instance tells the others through PostgreSQL `LISTEN/NOTIFY`:
//! a challenge was created or settled, an audit row was written. Each
//! notification is sent inside the transaction that made the change, so
//! it is delivered exactly when the change commits, and never for a change
//! that rolled back. The database stays the source of truth: a listener
//! that reads an announcement loads the row it names.
//!
//! On SQLite (one instance) nothing is sent.

use std::cell::RefCell;
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;

use super::db::{args, Db, PgConn};
use super::pg::{Pg, Presence};
use super::StoreError;

/// The channel every instance listens on.
const CHANNEL: &str = "countersign";

/// A change other instances act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A push challenge was created (its id, and its device's): the
    /// device's stream may be held by another instance. The device is a
    /// hint, so that an instance without its stream reads nothing; one
    /// that has it reads the challenge, and its device, from the row.
    Created(String, String),
    /// A challenge reached a final status (id, status as stored): the page
    /// that follows it may be served by another instance.
    Settled(String, String),
    /// Audit rows were written (and nothing else announced: a challenge
    /// created or settled stands for its rows): live help-desk views
    /// refresh.
    Audit,
    /// A shared key was replaced (its name): each instance takes the new
    /// one from the database.
    Secret(String),
}

impl Event {
    fn payload(&self, origin: &str) -> String {
        match self {
            Event::Created(id, device) => format!("{origin} created {id} {device}"),
            Event::Settled(id, status) => format!("{origin} settled {id} {status}"),
            Event::Audit => format!("{origin} audit"),
            Event::Secret(name) => format!("{origin} secret {name}"),
        }
    }

    /// The event in a payload, unless it came from `origin` (this instance
    /// acted on it already) or is not one this version knows.
    fn parse(payload: &str, origin: &str) -> Option<Event> {
        let mut words = payload.split(' ');
        if words.next()? == origin {
            return None;
        }
        let event = match (words.next()?, words.next(), words.next()) {
            ("created", Some(id), Some(device)) => {
                Event::Created(id.to_string(), device.to_string())
            }
            // An earlier version's, naming no device: read wherever it is heard.
            ("created", Some(id), None) => Event::Created(id.to_string(), String::new()),
            ("settled", Some(id), Some(status)) => {
                Event::Settled(id.to_string(), status.to_string())
            }
            ("audit", None, None) => Event::Audit,
            ("secret", Some(name), None) => Event::Secret(name.to_string()),
            _ => return None,
        };
        words.next().is_none().then_some(event)
    }
}

/// The statements that send `events` when the transaction commits
/// (PostgreSQL only; run with the commit, in one round trip). Payloads
/// are ids, statuses and key names of our own making; quoted all the same.
pub(super) fn notify_sql(
    db: &Db<'_>,
    origin: &str,
    events: &[Event],
) -> Result<String, StoreError> {
    if !db.is_pg() {
        return Ok(String::new());
    }
    events
        .iter()
        .map(|e| {
            let payload = e.payload(origin);
            let notify = db.execute_text("SELECT pg_notify(?1, ?2)", args![CHANNEL, payload])?;
            Ok(notify + ";")
        })
        .collect()
}

/// Listens until `alive` says stop or the connection breaks (an error:
/// the caller connects again). The connection holds the serving lock
/// that keeps key rotations away: `first`'s, or a new one's (taken
/// again after a break, waiting while a rotation runs). `connected` runs
/// once listening, so that the caller can catch up on what it may have
/// missed meanwhile, and check that no rotation ran.
pub(super) fn listen(
    pg: &Pg,
    origin: &str,
    first: Option<Presence>,
    alive: &dyn Fn() -> bool,
    connected: &mut dyn FnMut(),
    on: &mut dyn FnMut(Event),
) -> Result<(), StoreError> {
    let presence = match first {
        Some(p) => p,
        None => pg.hold_shared()?,
    };
    let Some(client) = presence.into_client() else {
        return Ok(()); // Not PostgreSQL's: nothing to listen on.
    };
    let conn = RefCell::new(PgConn::new(client));
    Db::Pg(&conn).batch(&format!("LISTEN {CHANNEL}"))?;
    connected();
    let mut conn = conn.into_inner();
    while alive() {
        let mut notes = conn.client.notifications();
        let mut waiting = notes.timeout_iter(Duration::from_secs(1));
        while let Some(n) = waiting.next()? {
            if let Some(e) = Event::parse(n.payload(), origin) {
                on(e);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_earlier_versions_announcement_of_a_challenge_names_no_device() {
        assert_eq!(
            Event::parse("a created c1", "b"),
            Some(Event::Created("c1".into(), String::new()))
        );
    }

    #[test]
    fn events_read_back_and_an_instance_skips_its_own() {
        for e in [
            Event::Created("c1".into(), "d1".into()),
            Event::Settled("c1".into(), "approved".into()),
            Event::Audit,
            Event::Secret("oidc-keys.json".into()),
        ] {
            assert_eq!(Event::parse(&e.payload("a"), "b"), Some(e.clone()));
            assert_eq!(Event::parse(&e.payload("a"), "a"), None);
        }
        for junk in [
            "",
            "a",
            "a created",
            "a created x y z",
            "a unknown x",
            "a audit x",
        ] {
            assert_eq!(Event::parse(junk, "b"), None, "{junk:?}");
        }
    }
}
