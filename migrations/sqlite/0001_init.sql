-- Tenants own apps; apps own API keys. STRICT tables so a wrong type is an error, not a
-- silent conversion. Times are seconds since the Unix epoch.

CREATE TABLE tenants (
    id         TEXT NOT NULL PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL
) STRICT;

-- One counter for every app: a version drawn from it is higher than any version handed out
-- before, even to an app of the same id that was deleted and created again, so gateways never
-- take a new app's updates for stale ones.
CREATE TABLE app_versions (
    only_row INTEGER NOT NULL PRIMARY KEY CHECK (only_row = 1),
    last     INTEGER NOT NULL
) STRICT;
INSERT INTO app_versions (only_row, last) VALUES (1, 0);

CREATE TABLE apps (
    id                 TEXT NOT NULL PRIMARY KEY,
    tenant_id          TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    jwt_secret         TEXT,
    jwt_rsa_public_key TEXT,
    jwt_ec_public_key  TEXT,
    -- AppLimits as JSON: new limits need no migration, and absent keys mean "gateway default".
    limits             TEXT NOT NULL DEFAULT '{}',
    version            INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL
) STRICT;

CREATE INDEX apps_tenant_id ON apps (tenant_id, id);

CREATE TABLE api_keys (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id         TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    -- SHA-256 hex of the key; the key itself is never stored.
    hash       TEXT NOT NULL,
    label      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, hash)
) STRICT;
