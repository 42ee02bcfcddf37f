-- Webhooks: endpoints of apps, the durable outbox of deliveries with the log of their attempts,
-- and the cluster-wide presence state that turns gateways' reports into channel_occupied,
-- channel_vacated, member_added and member_removed events. Times are milliseconds since the
-- Unix epoch from the control-plane's clock.

CREATE TABLE webhook_endpoints (
    id         text COLLATE "C" PRIMARY KEY,
    app_id     text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    url        text NOT NULL,
    -- HMAC-SHA256 key of the signatures; kept in clear because signing needs it.
    secret     text NOT NULL,
    -- Event types, e.g. ["channel_occupied", "member_added"].
    events     jsonb NOT NULL,
    -- Channel patterns the endpoint is for; [] means every channel.
    channels   jsonb NOT NULL,
    enabled    boolean NOT NULL,
    created_at bigint NOT NULL,
    updated_at bigint NOT NULL
);

CREATE INDEX webhook_endpoints_app ON webhook_endpoints (app_id, id);

-- The outbox: one row per event and endpoint, written before a gateway's report is
-- acknowledged, deleted with its endpoint. A worker leases due rows (lease_until), so a
-- control-plane that dies mid-delivery leaves them to be delivered again once the lease ends.
CREATE TABLE webhook_deliveries (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              text COLLATE "C" NOT NULL UNIQUE,
    endpoint_id     text COLLATE "C" NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    app_id          text COLLATE "C" NOT NULL,
    event_type      text NOT NULL,
    body            text NOT NULL,
    -- pending, delivered or dead (given up after the last attempt).
    status          text NOT NULL,
    attempts        int NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    lease_until     bigint,
    last_status     int,
    last_error      text,
    created_at      bigint NOT NULL,
    updated_at      bigint NOT NULL,
    delivered_at    bigint
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, seq);

CREATE TABLE webhook_attempts (
    delivery_id text COLLATE "C" NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    attempt     int NOT NULL,
    at          bigint NOT NULL,
    -- The receiver's HTTP status, when it answered.
    status_code int,
    error       text,
    duration_ms bigint NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);

-- Which gateway nodes hold each channel (member '') and each presence member (member = its id).
CREATE TABLE webhook_presence (
    app_id  text COLLATE "C" NOT NULL,
    channel text COLLATE "C" NOT NULL,
    member  text COLLATE "C" NOT NULL,
    node    text COLLATE "C" NOT NULL,
    PRIMARY KEY (app_id, channel, member, node)
);

CREATE INDEX webhook_presence_node ON webhook_presence (node);

-- Channels announced as occupied and members announced as added, cluster-wide. vacate_at is set
-- when the last node let go, and the vacated/removed event fires once it passes with no node
-- back: the debounce that keeps several gateways from making a channel flap.
CREATE TABLE webhook_announced (
    app_id    text COLLATE "C" NOT NULL,
    channel   text COLLATE "C" NOT NULL,
    member    text COLLATE "C" NOT NULL,
    -- The member's info as JSON, for its member_removed.
    info      text,
    vacate_at bigint,
    PRIMARY KEY (app_id, channel, member)
);

CREATE INDEX webhook_announced_due ON webhook_announced (vacate_at)
    WHERE vacate_at IS NOT NULL;

-- Gateway nodes and when they last reported; one silent for the node TTL is forgotten.
CREATE TABLE webhook_nodes (
    node    text COLLATE "C" PRIMARY KEY,
    seen_at bigint NOT NULL
);
