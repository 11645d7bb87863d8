-- Build logs in the database (used with PostgreSQL, where replicas share
-- them; with SQLite the data directory's files are the default). A log is
-- contiguous chunks keyed by their byte offset: two writers of one log
-- collide on the key instead of interleaving.
CREATE TABLE build_log_chunks (
  build_id TEXT NOT NULL,
  byte_offset INTEGER NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (build_id, byte_offset)
);
-- How far the container's log was copied: the log's length then, and the
-- last frame kept of each stream (JSON).
CREATE TABLE build_log_checkpoints (
  build_id TEXT PRIMARY KEY,
  bytes INTEGER NOT NULL,
  marks TEXT NOT NULL
);
CREATE TABLE build_log_attachments (
  build_id TEXT NOT NULL,
  name TEXT NOT NULL,
  data BLOB NOT NULL,
  PRIMARY KEY (build_id, name)
);
