-- Attempts get a column of their own for their order (rowid is SQLite's
-- alone), so that one query lists them on both databases.
CREATE TABLE webhook_attempts_new (
  seq INTEGER PRIMARY KEY,
  delivery_seq INTEGER NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
  at TEXT NOT NULL,
  status_code INTEGER,
  duration_ms INTEGER NOT NULL,
  error TEXT
);
INSERT INTO webhook_attempts_new (seq, delivery_seq, at, status_code, duration_ms, error)
  SELECT rowid, delivery_seq, at, status_code, duration_ms, error FROM webhook_attempts;
DROP TABLE webhook_attempts;
ALTER TABLE webhook_attempts_new RENAME TO webhook_attempts;
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq);
