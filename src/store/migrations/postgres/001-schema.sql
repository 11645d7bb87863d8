-- The schema SQLite reached in its migrations 001-006, in one step. Times
-- stay ISO 8601 text, compared as strings, as on SQLite.
CREATE TABLE streams (
  name TEXT PRIMARY KEY,
  doc TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE builds (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
  cancel_requested_at TEXT,
  phase TEXT,
  failed_step TEXT,
  boot_test TEXT,
  engine TEXT NULL,
  arch TEXT NULL
);
CREATE INDEX builds_state_seq ON builds (state, seq);
CREATE INDEX builds_stream_seq ON builds (stream, seq);
-- What really keeps one running build per stream against concurrent
-- claimers: under READ COMMITTED the claim's NOT EXISTS lets a second one
-- through, the index makes it wait for the first and fail (23505).
CREATE UNIQUE INDEX builds_one_running_per_stream ON builds (stream) WHERE state = 'running';
CREATE INDEX builds_result_token ON builds (result_token_hash) WHERE result_token_hash IS NOT NULL;
CREATE TABLE idempotency_keys (
  scope TEXT NOT NULL,
  key TEXT NOT NULL,
  fingerprint TEXT NOT NULL,
  build_id TEXT NOT NULL,
  created_at TEXT NOT NULL,
  PRIMARY KEY (scope, key)
);
CREATE TABLE pins (
  stream TEXT NOT NULL,
  cosa_build_id TEXT NOT NULL,
  pinned_at TEXT NOT NULL,
  PRIMARY KEY (stream, cosa_build_id)
);
-- Identity: a sequence number is never reused, even after pruning.
CREATE TABLE events (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type TEXT NOT NULL,
  build_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  time TEXT NOT NULL,
  build TEXT NOT NULL
);
CREATE INDEX events_build ON events (build_id, seq);
CREATE INDEX events_stream ON events (stream, seq);
CREATE TABLE webhooks (
  name TEXT PRIMARY KEY,
  url TEXT NOT NULL,
  events TEXT NOT NULL,
  streams TEXT NOT NULL,
  secret TEXT NOT NULL,
  cursor BIGINT NOT NULL,
  enabled INTEGER NOT NULL DEFAULT 1,
  disabled_reason TEXT,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
CREATE TABLE webhook_deliveries (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  webhook TEXT NOT NULL REFERENCES webhooks (name) ON DELETE CASCADE,
  event_seq BIGINT NOT NULL,
  type TEXT NOT NULL,
  build_id TEXT NOT NULL,
  body TEXT NOT NULL,
  state TEXT NOT NULL,
  tries INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT,
  created_at TEXT NOT NULL,
  UNIQUE (webhook, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook, seq);
CREATE TABLE webhook_attempts (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  delivery_seq BIGINT NOT NULL REFERENCES webhook_deliveries (seq) ON DELETE CASCADE,
  at TEXT NOT NULL,
  status_code INTEGER,
  duration_ms INTEGER NOT NULL,
  error TEXT
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_seq);
