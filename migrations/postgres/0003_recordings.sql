-- Recordings of channel traffic (docs/recordings.md): what was asked for, and the events, each
-- the message frame subscribers received, byte for byte, with its original timestamp.
CREATE TABLE recordings (
    id              text COLLATE "C" PRIMARY KEY,
    app_id          text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    name            text NOT NULL,
    -- JSON array of channel patterns.
    channels        text NOT NULL,
    -- 'recording' or 'stopped'.
    status          text NOT NULL,
    max_events      bigint,
    max_duration_ms bigint,
    event_count     bigint NOT NULL DEFAULT 0,
    -- Milliseconds since the epoch.
    started_at      bigint NOT NULL,
    stopped_at      bigint,
    stop_reason     text
);
CREATE INDEX recordings_by_app ON recordings (app_id, started_at);

CREATE TABLE recording_events (
    recording_id text COLLATE "C" NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    -- Order of the event in the recording (the history stream's sequence in a cluster); an event
    -- delivered again after a restart has the same position and is stored once.
    position     bigint NOT NULL,
    channel      text NOT NULL,
    ts           bigint NOT NULL,
    "offset"     bigint NOT NULL,
    frame        text NOT NULL,
    PRIMARY KEY (recording_id, position)
);
