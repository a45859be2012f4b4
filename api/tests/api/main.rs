//! The integration suite: one binary, every test with its own app, database and emulator account.
//! `GATEKEEPER_TEST_DB=postgres` runs it on PostgreSQL instead of SQLite.

mod contract;
mod helpers;
mod journey;
mod lifecycle;
mod platform;
mod validation;
