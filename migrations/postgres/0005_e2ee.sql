-- The key directory of end-to-end encryption (docs/e2ee.md): devices' RSA public keys by user,
-- and room keys wrapped (RSA-OAEP encrypted) for devices. Nothing here decrypts a message.
CREATE TABLE device_keys (
    app_id     text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    sub        text COLLATE "C" NOT NULL,
    -- 32 lowercase hex digits: the first 16 bytes of SHA-256 over the SPKI DER.
    device     text COLLATE "C" NOT NULL,
    -- base64 of the RSA SubjectPublicKeyInfo DER.
    public_key text NOT NULL,
    -- Last published, milliseconds since the epoch.
    ts         bigint NOT NULL,
    PRIMARY KEY (app_id, sub, device)
);

CREATE TABLE room_keys (
    app_id  text COLLATE "C" NOT NULL REFERENCES apps (id) ON DELETE CASCADE,
    channel text COLLATE "C" NOT NULL,
    key_id  text COLLATE "C" NOT NULL,
    version bigint NOT NULL,
    sub     text COLLATE "C" NOT NULL,
    device  text COLLATE "C" NOT NULL,
    -- base64 of RSA-OAEP(device key, room key).
    wrapped text NOT NULL,
    ts      bigint NOT NULL,
    PRIMARY KEY (app_id, channel, sub, key_id, version, device)
);
CREATE INDEX room_keys_by_version ON room_keys (app_id, channel, key_id, version);
