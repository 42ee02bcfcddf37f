-- The body and headers an endpoint's requests have: 'waas' (docs/webhooks.md) or 'pusher'
-- (Pusher's webhook format, docs/pusher.md).
ALTER TABLE webhook_endpoints ADD COLUMN format text NOT NULL DEFAULT 'waas';
