-- The Origin allow-list of an app's WebSocket handshakes (docs/admin.md#allowed-origins), as a
-- JSON array of lower-case origins; empty allows every origin.
ALTER TABLE apps ADD COLUMN allowed_origins TEXT NOT NULL DEFAULT '[]';
