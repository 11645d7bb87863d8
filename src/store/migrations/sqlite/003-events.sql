-- The outbox. AUTOINCREMENT: a sequence number is never reused, even after
-- pruning, so a reader resuming after seq N never misses or repeats an event.
ALTER TABLE builds ADD COLUMN phase TEXT;
ALTER TABLE builds ADD COLUMN failed_step TEXT;
CREATE TABLE events (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  build_id TEXT NOT NULL,
  stream TEXT NOT NULL,
  time TEXT NOT NULL,
  build TEXT NOT NULL
);
CREATE INDEX events_build ON events (build_id, seq);
CREATE INDEX events_stream ON events (stream, seq);
