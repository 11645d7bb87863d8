-- Streams, builds (the queue), and idempotency keys.
CREATE TABLE streams (
  name TEXT PRIMARY KEY,
  doc TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE builds (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  stream TEXT NOT NULL,
  state TEXT NOT NULL,
  reason TEXT,
  message TEXT,
  exit_code INTEGER,
  request TEXT NOT NULL,
  config_commit TEXT,
  container_id TEXT,
  result TEXT,
  outcome TEXT,
  meta_json TEXT,
  result_token_hash TEXT,
  created_at TEXT NOT NULL,
  started_at TEXT,
  finished_at TEXT,
  cancel_requested_at TEXT
);
CREATE INDEX builds_state_seq ON builds (state, seq);
CREATE INDEX builds_stream_seq ON builds (stream, seq);
CREATE TABLE idempotency_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  build_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
