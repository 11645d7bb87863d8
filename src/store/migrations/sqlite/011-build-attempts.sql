-- Each run of a build on an engine that ended (JSON: engine, arch, started,
-- ended, state, failure reason): more than one when an infrastructure
-- failure was retried. NULL for builds from before.
ALTER TABLE builds ADD COLUMN attempts TEXT;
