CREATE TABLE pins (
  stream TEXT NOT NULL,
  cosa_build_id TEXT NOT NULL,
  pinned_at TEXT NOT NULL,
  PRIMARY KEY (stream, cosa_build_id)
);
