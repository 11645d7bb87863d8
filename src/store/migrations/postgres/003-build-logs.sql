-- Build logs in the database: every replica reads and follows them. A log is
-- contiguous chunks keyed by their byte offset: two writers of one log
-- collide on the key instead of interleaving.
CREATE TABLE build_log_chunks (
  build_id TEXT NOT NULL,
  byte_offset BIGINT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (build_id, byte_offset)
);
-- How far the container's log was copied: the log's length then, and the
-- last frame kept of each stream (JSON).
CREATE TABLE build_log_checkpoints (
  build_id TEXT PRIMARY KEY,
  bytes BIGINT NOT NULL,
  marks TEXT NOT NULL
);
CREATE TABLE build_log_attachments (
  build_id TEXT NOT NULL,
  name TEXT NOT NULL,
  data BYTEA NOT NULL,
  PRIMARY KEY (build_id, name)
);
