-- Which engine ran a build, and on which arch; NULL for builds from before.
ALTER TABLE builds ADD COLUMN engine TEXT;
ALTER TABLE builds ADD COLUMN arch TEXT;
