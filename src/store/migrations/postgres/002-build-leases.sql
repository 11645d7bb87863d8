-- A running build is supervised under a lease (issue #14): who holds it, the
-- fencing token every write of its supervisor carries, and when it expires
-- (milliseconds since the epoch, by the database's clock). Builds running
-- before this migration have no lease: the first reconcile takes them over.
ALTER TABLE builds ADD COLUMN lease_owner TEXT;
ALTER TABLE builds ADD COLUMN lease_token BIGINT;
ALTER TABLE builds ADD COLUMN lease_expires_at BIGINT;
CREATE INDEX builds_lease_expiry ON builds (lease_expires_at) WHERE state = 'running';
-- Fencing tokens only grow, across every replica.
CREATE SEQUENCE lease_tokens;
-- Singleton duties (the reconcile sweep) run under a lease row, never an
-- advisory lock (those outlive partitions and break behind PgBouncer).
CREATE TABLE leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  token BIGINT NOT NULL,
  expires_at BIGINT NOT NULL
);
