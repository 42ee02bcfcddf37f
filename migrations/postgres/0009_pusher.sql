-- Pusher-protocol credentials of an app (docs/pusher.md): its secret, kept in clear like
-- jwt_secret because Pusher's HMAC signatures are checked by recomputing them (NULL: the Pusher
-- front refuses the app), and whether clients may send `client-` events. The key is the app id.
ALTER TABLE apps ADD COLUMN pusher_secret text;
ALTER TABLE apps ADD COLUMN pusher_client_events boolean NOT NULL DEFAULT false;
