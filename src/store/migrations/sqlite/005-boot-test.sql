ALTER TABLE builds ADD COLUMN boot_test TEXT;
