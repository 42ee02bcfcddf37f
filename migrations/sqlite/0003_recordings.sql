-- Recordings of channel traffic (docs/recordings.md): what was asked for, and the events, each
-- the message frame subscribers received, byte for byte, with its original timestamp.
CREATE TABLE recordings (
    id              TEXT NOT NULL PRIMARY KEY,
    app_id          TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    channels        TEXT NOT NULL,
    status          TEXT NOT NULL,
    max_events      INTEGER,
    max_duration_ms INTEGER,
    event_count     INTEGER NOT NULL DEFAULT 0,
    started_at      INTEGER NOT NULL,
    stopped_at      INTEGER,
    stop_reason     TEXT
);
CREATE INDEX recordings_by_app ON recordings (app_id, started_at);

CREATE TABLE recording_events (
    recording_id TEXT NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    channel      TEXT NOT NULL,
    ts           INTEGER NOT NULL,
    "offset"     INTEGER NOT NULL,
    frame        TEXT NOT NULL,
    PRIMARY KEY (recording_id, position)
) WITHOUT ROWID;
