-- Webhooks: endpoints of apps, the durable outbox of deliveries with the log of their attempts,
-- and the cluster-wide presence state that turns gateways' reports into channel_occupied,
-- channel_vacated, member_added and member_removed events. Times are milliseconds since the
-- Unix epoch.

CREATE TABLE webhook_endpoints (
    id         TEXT NOT NULL PRIMARY KEY,
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url        TEXT NOT NULL,
    -- HMAC-SHA256 key of the signatures; kept in clear because signing needs it.
    secret     TEXT NOT NULL,
    -- Event types as a JSON array, e.g. ["channel_occupied", "member_added"].
    events     TEXT NOT NULL,
    -- Channel patterns as a JSON array; [] means every channel.
    channels   TEXT NOT NULL,
    enabled    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) STRICT;

CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, id);

-- The outbox: one row per event and endpoint, written before a report is acknowledged.
CREATE TABLE webhook_deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    app_id          TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    body            TEXT NOT NULL,
    -- pending, delivered or dead (given up after the last attempt).
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    delivered_at    INTEGER
) STRICT;

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status_code INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) STRICT;

-- Which gateway nodes hold each channel (member '') and each presence member (member = its id).
CREATE TABLE webhook_presence (
    app_id  TEXT NOT NULL,
    channel TEXT NOT NULL,
    member  TEXT NOT NULL,
    node    TEXT NOT NULL,
    PRIMARY KEY (app_id, channel, member, node)
) STRICT;

CREATE INDEX webhook_presence_node ON webhook_presence (node);

-- Channels announced as occupied and members announced as added; vacate_at is set while the
-- last node is gone, for the debounce window.
CREATE TABLE webhook_announced (
    app_id    TEXT NOT NULL,
    channel   TEXT NOT NULL,
    member    TEXT NOT NULL,
    info      TEXT,
    vacate_at INTEGER,
    PRIMARY KEY (app_id, channel, member)
) STRICT;

CREATE INDEX webhook_announced_due ON webhook_announced (vacate_at)
    WHERE vacate_at IS NOT NULL;

CREATE TABLE webhook_nodes (
    node    TEXT NOT NULL PRIMARY KEY,
    seen_at INTEGER NOT NULL
) STRICT;
