-- The fleet's tables, in SQL that SQLite (3.24+) and PostgreSQL (12+) both take as written.
-- A device's current state is one JSON document (the reducer's DeviceState); the rest are append-only
-- records keyed by stable ids, so a message delivered twice is stored once.

CREATE TABLE devices (
  device_id TEXT PRIMARY KEY,
  state TEXT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  -- The at-risk episode an alert was sent for (window and reasons); NULL while not at risk.
  alert_key TEXT
);
CREATE INDEX devices_updated_at ON devices (updated_at_ms);

-- Every device event, exactly once (de-duplicated by its id).
CREATE TABLE events (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  type TEXT NOT NULL,
  payload TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL
);
CREATE INDEX events_device_at ON events (device_id, at_ms);

-- Every audit record, exactly once (de-duplicated by its id).
CREATE TABLE audit (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  payload TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL
);
CREATE INDEX audit_device_at ON audit (device_id, at_ms);

-- What the timeline shows: online/offline, faults, privacy, looks, refusals, missed windows.
CREATE TABLE history (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  at_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  detail TEXT
);
CREATE INDEX history_device_at ON history (device_id, at_ms);

-- Alerts sent: one per at-risk episode, by whichever instance claimed it first.
CREATE TABLE alerts (
  id TEXT PRIMARY KEY,
  device_id TEXT NOT NULL,
  raised_at_ms BIGINT NOT NULL,
  window_at TEXT,
  time_left_ms BIGINT,
  reasons TEXT NOT NULL,
  text TEXT NOT NULL
);
CREATE INDEX alerts_raised_at ON alerts (raised_at_ms);
