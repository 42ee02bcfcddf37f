-- The browser dashboard (docs/dashboard.md): its accounts and their sessions. Times are whole
-- seconds since the Unix epoch, decided by the control-plane that signs the user in.

CREATE TABLE dashboard_users (
    id            text PRIMARY KEY,
    -- Lower-case; one account per address.
    email         text NOT NULL UNIQUE,
    -- Argon2id PHC string; the password itself is never stored.
    password_hash text NOT NULL,
    -- 'operator' (every tenant) or 'tenant' (tenant_id only).
    role          text NOT NULL CHECK (role IN ('operator', 'tenant')),
    tenant_id     text REFERENCES tenants (id) ON DELETE CASCADE,
    created_at    bigint NOT NULL,
    CHECK ((role = 'operator') = (tenant_id IS NULL))
);

CREATE TABLE dashboard_sessions (
    -- SHA-256 hex of the cookie's token: a read of the table does not give sessions away.
    token_hash text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES dashboard_users (id) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE INDEX dashboard_sessions_expires_at ON dashboard_sessions (expires_at);
