-- Which user id holds which OS account name (Linux and Windows alike). The primary key makes a
-- second id that derives the same name fail even when two requests race: one OS account, one person.
CREATE TABLE os_accounts (
    name TEXT PRIMARY KEY NOT NULL,
    subject TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT OR IGNORE INTO os_accounts (name, subject, created_at)
    SELECT os_user, MIN(subject), CURRENT_TIMESTAMP FROM request_subjects GROUP BY os_user;
INSERT OR IGNORE INTO os_accounts (name, subject, created_at)
    SELECT windows_user, MIN(subject), CURRENT_TIMESTAMP FROM request_subjects
    WHERE windows_user IS NOT NULL GROUP BY windows_user;
