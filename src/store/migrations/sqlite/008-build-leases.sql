-- A running build is supervised under a lease (issue #14): who holds it, the
-- fencing token every write of its supervisor carries, and when it expires
-- (milliseconds since the epoch, by the database's clock). Builds running
-- before this migration have no lease: the first reconcile takes them over.
ALTER TABLE builds ADD COLUMN lease_owner TEXT;
ALTER TABLE builds ADD COLUMN lease_token INTEGER;
ALTER TABLE builds ADD COLUMN lease_expires_at INTEGER;
CREATE INDEX builds_lease_expiry ON builds (lease_expires_at) WHERE state = 'running';
-- Fencing tokens only grow: SQLite has no sequences, so a one-row counter.
CREATE TABLE lease_tokens (value INTEGER NOT NULL);
INSERT INTO lease_tokens (value) VALUES (0);
-- Singleton duties (the reconcile sweep) run under a lease row, never a lock.
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  token INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
