DROP TABLE os_accounts;
