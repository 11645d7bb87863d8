-- A multi-arch build's run of each arch (JSON, primary first: arch, state,
-- engine, started, ended, cosa build id, artifacts, failure). NULL for a
-- build of one arch, and for builds from before.
ALTER TABLE builds ADD COLUMN arches TEXT;
