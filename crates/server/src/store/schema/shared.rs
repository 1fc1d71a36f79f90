//! The tables of what several PostgreSQL instances share.

/// Serving instances and the devices streaming from each (PostgreSQL).
pub(super) const INSTANCE_STREAMS: &str = r#"
CREATE TABLE instances (
    id TEXT PRIMARY KEY,
    seen_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE instance_streams (
    device_id TEXT NOT NULL,
    instance TEXT NOT NULL REFERENCES instances(id) ON DELETE CASCADE,
    PRIMARY KEY (device_id, instance)
);
CREATE INDEX instance_streams_instance ON instance_streams(instance);
"#;

/// Limits several instances share (used on PostgreSQL; one SQLite
/// instance keeps them in memory).
pub(super) const SHARED_LIMITS: &str = r#"
CREATE TABLE address_events (
    kind TEXT NOT NULL,
    network TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX address_events_network ON address_events(kind, network, at);
CREATE TABLE used_once (
    key TEXT PRIMARY KEY,
    until BIGINT NOT NULL
);
"#;
