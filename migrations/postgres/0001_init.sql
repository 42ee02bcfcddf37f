-- Tenants own apps; apps own API keys. Ids use the "C" collation so that ORDER BY id is byte
-- order, the order of AppId's Ord and of SQLite's BINARY collation: both stores list alike.

CREATE TABLE tenants (
    id         text COLLATE "C" PRIMARY KEY,
    name       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One counter for every app: a version drawn from it is higher than any version handed out
-- before, even to an app of the same id that was deleted and created again, so gateways never
-- take a new app's updates for stale ones.
CREATE SEQUENCE app_versions AS bigint;

CREATE TABLE apps (
    id                 text COLLATE "C" PRIMARY KEY,
    tenant_id          text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name               text NOT NULL,
    jwt_secret         text,
    jwt_rsa_public_key text,
    jwt_ec_public_key  text,
    -- AppLimits as JSON: new limits need no migration, and absent keys mean "gateway default".
    limits             jsonb NOT NULL DEFAULT '{}',
    version            bigint NOT NULL DEFAULT nextval('app_versions'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX apps_tenant_id ON apps (tenant_id, id);

CREATE TABLE api_keys (
    app_id     text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    id         text COLLATE "C" NOT NULL,
    prefix     text NOT NULL,
    -- SHA-256 hex of the key; the key itself is never stored.
    hash       text NOT NULL,
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (app_id, id),
    UNIQUE (app_id, hash)
);
