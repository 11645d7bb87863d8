-- The engines builds run on: those of the config file (source 'config',
-- written again at every start) and those admins added (source 'api'), with
-- the drain flag of each. TLS holds certificate paths, never their content.
CREATE TABLE engines (
  name TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  tls TEXT,
  arch TEXT,
  capacity INTEGER NOT NULL,
  labels TEXT NOT NULL,
  source TEXT NOT NULL,
  draining INTEGER NOT NULL DEFAULT 0,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);
