-- The first bytes of the receiver's answer to each webhook attempt (at most the control-plane's
-- [webhooks] response_log_bytes; the rest of a body is never read).
ALTER TABLE webhook_attempts ADD COLUMN response_body text;
