-- Per-app usage (docs/dashboard.md#usage), added up from the reports of every gateway. Times are
-- whole seconds since the Unix epoch. Rows go with their app, so an id taken again by another
-- tenant starts with no usage.

CREATE TABLE usage_buckets (
    app_id         text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    -- 60 (a minute) or 3600 (an hour): the length of the bucket.
    step           bigint NOT NULL CHECK (step IN (60, 3600)),
    -- Start of the bucket, a multiple of step.
    start          bigint NOT NULL,
    -- Most connections open at once, summed over gateways.
    connections    bigint NOT NULL DEFAULT 0,
    published      bigint NOT NULL DEFAULT 0,
    delivered      bigint NOT NULL DEFAULT 0,
    webhooks       bigint NOT NULL DEFAULT 0,
    webhook_errors bigint NOT NULL DEFAULT 0,
    requests       bigint NOT NULL DEFAULT 0,
    request_errors bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (app_id, step, start)
);

CREATE INDEX usage_buckets_start ON usage_buckets (step, start);

-- Each reporting process's latest connection count per app: connections now are the sum of
-- the counts reported recently enough.
CREATE TABLE usage_nodes (
    node        text COLLATE "C" NOT NULL,
    app_id      text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    connections bigint NOT NULL,
    seen_at     bigint NOT NULL,
    PRIMARY KEY (app_id, node)
);

CREATE INDEX usage_nodes_seen_at ON usage_nodes (seen_at);
