-- Request routes of an app (docs/rpc.md): path prefix to service or HTTP upstream, as a JSON
-- array, so new route options need no migration.
ALTER TABLE apps ADD COLUMN routes jsonb NOT NULL DEFAULT '[]';
