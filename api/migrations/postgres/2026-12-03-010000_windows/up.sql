-- Windows access: a one-time RSA key per subject and request (the instance encrypts the password it
-- generates to it), the OS user name on Windows (20 characters at most), and the sealed password
-- each Windows grant produced, kept until its subject collects it.
ALTER TABLE request_subjects ADD COLUMN windows_user TEXT;
ALTER TABLE request_subjects ADD COLUMN password_key_public TEXT;
ALTER TABLE request_subjects ADD COLUMN password_key_sealed TEXT;
ALTER TABLE grants ADD COLUMN platform TEXT NOT NULL DEFAULT 'linux';
ALTER TABLE grants ADD COLUMN secret_sealed TEXT;
