-- The key directory of end-to-end encryption (docs/e2ee.md): devices' RSA public keys by user,
-- and room keys wrapped (RSA-OAEP encrypted) for devices. Nothing here decrypts a message.
CREATE TABLE device_keys (
    app_id     TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    sub        TEXT NOT NULL,
    device     TEXT NOT NULL,
    public_key TEXT NOT NULL,
    ts         INTEGER NOT NULL,
    PRIMARY KEY (app_id, sub, device)
) WITHOUT ROWID;

CREATE TABLE room_keys (
    app_id  TEXT NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    key_id  TEXT NOT NULL,
    version INTEGER NOT NULL,
    sub     TEXT NOT NULL,
    device  TEXT NOT NULL,
    wrapped TEXT NOT NULL,
    ts      INTEGER NOT NULL,
    PRIMARY KEY (app_id, channel, sub, key_id, version, device)
) WITHOUT ROWID;
CREATE INDEX room_keys_by_version ON room_keys (app_id, channel, key_id, version);
