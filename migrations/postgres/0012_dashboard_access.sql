-- Dashboard accounts made by invitation, and tenants' own tokens for the admin API
-- (docs/dashboard.md, docs/admin.md). Times are whole seconds since the Unix epoch.

CREATE TABLE dashboard_invitations (
    -- SHA-256 hex of the link's token: a read of the table does not give invitations away.
    token_hash text COLLATE "C" PRIMARY KEY,
    -- Lower-case; the account the invitee will have.
    email      text COLLATE "C" NOT NULL,
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE INDEX dashboard_invitations_expires_at ON dashboard_invitations (expires_at);

CREATE TABLE admin_tokens (
    id         text COLLATE "C" PRIMARY KEY,
    -- SHA-256 hex of the token; the token itself is shown once, when made.
    token_hash text COLLATE "C" NOT NULL UNIQUE,
    -- The token's first characters, to tell tokens apart in lists.
    prefix     text NOT NULL,
    label      text,
    -- The account that made it; deleting the account deletes its tokens.
    user_id    text COLLATE "C" NOT NULL REFERENCES dashboard_users (id) ON DELETE CASCADE,
    -- The only tenant whose apps the token reaches.
    tenant_id  text COLLATE "C" NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    created_at bigint NOT NULL
);

CREATE INDEX admin_tokens_user_id ON admin_tokens (user_id);
