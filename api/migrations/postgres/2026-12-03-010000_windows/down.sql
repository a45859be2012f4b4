ALTER TABLE grants DROP COLUMN secret_sealed;
ALTER TABLE grants DROP COLUMN platform;
ALTER TABLE request_subjects DROP COLUMN password_key_sealed;
ALTER TABLE request_subjects DROP COLUMN password_key_public;
ALTER TABLE request_subjects DROP COLUMN windows_user;
