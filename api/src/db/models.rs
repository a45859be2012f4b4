//! Rows as stored. Timestamps are UTC without a zone (`NaiveDateTime`) in both backends.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = instances)]
#[diesel(treat_none_as_null = true)]
pub struct InstanceRow {
    pub id: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub environment: Option<String>,
    pub platform: String,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub private_dns: Option<String>,
    /// JSON object of the instance's tags.
    pub tags: String,
    pub agent_status: Option<String>,
    /// Lowercased id, name, addresses and tag values, for free-text search on both backends.
    pub search_text: String,
    pub synced_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = requests)]
pub struct RequestRow {
    pub id: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub environment: String,
    pub duration_minutes: i32,
    pub reason: String,
    pub ticket: Option<String>,
    pub sudo: bool,
    pub status: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_comment: Option<String>,
    pub expires_at: Option<NaiveDateTime>,
    pub activated_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
    pub ended_by: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = request_subjects)]
pub struct SubjectRow {
    pub request_id: String,
    pub subject: String,
    pub os_user: String,
    pub public_key: Option<String>,
    /// The private key, sealed with the server's encryption key, until collected or ended.
    pub private_key_sealed: Option<String>,
    pub key_collected_at: Option<NaiveDateTime>,
    /// The local user name on Windows instances (20 characters at most).
    pub windows_user: Option<String>,
    /// The one-time RSA public key (base64 modulus) Windows instances encrypt passwords to.
    pub password_key_public: Option<String>,
    /// Its private half, sealed, until access ends.
    pub password_key_sealed: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = grants)]
pub struct GrantRow {
    pub request_id: String,
    pub subject: String,
    pub instance_id: String,
    pub region: String,
    pub os_user: String,
    pub status: String,
    pub command_id: Option<String>,
    pub sent_at: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub updated_at: NaiveDateTime,
    /// `linux` or `windows`.
    pub platform: String,
    /// Windows: the password this grant's instance generated, sealed, until collected.
    pub secret_sealed: Option<String>,
}

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = events)]
pub struct EventRow {
    pub id: i64,
    pub request_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub instance_id: Option<String>,
    pub command_id: Option<String>,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = events)]
pub struct NewEvent {
    pub request_id: Option<String>,
    pub actor: String,
    pub action: String,
    pub instance_id: Option<String>,
    pub command_id: Option<String>,
    pub detail: String,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = jobs)]
pub struct JobRow {
    pub id: String,
    pub kind: String,
    pub request_id: String,
    pub run_at: NaiveDateTime,
    pub attempts: i32,
    pub locked_until: Option<NaiveDateTime>,
    pub locked_by: Option<String>,
    pub last_error: Option<String>,
    pub created_at: NaiveDateTime,
}
