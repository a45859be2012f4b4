//! The audit trail: append-only, one row per state change.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{EventRow, NewEvent};
use super::schema::events;
use super::{DbConnection, DbResult};

/// Who did it: a user id, or `system` for the worker and the inventory sync.
pub const SYSTEM_ACTOR: &str = "system";

/// What one audit event says.
#[derive(Debug, Clone)]
pub struct Event {
    pub request_id: Option<String>,
    pub actor: String,
    pub action: &'static str,
    pub instance_id: Option<String>,
    pub command_id: Option<String>,
    pub detail: serde_json::Value,
}

impl Event {
    pub fn new(request_id: &str, actor: &str, action: &'static str) -> Self {
        Self {
            request_id: Some(request_id.to_owned()),
            actor: actor.to_owned(),
            action,
            instance_id: None,
            command_id: None,
            detail: serde_json::Value::Object(Default::default()),
        }
    }

    pub fn system(request_id: &str, action: &'static str) -> Self {
        Self::new(request_id, SYSTEM_ACTOR, action)
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn instance(mut self, instance_id: &str) -> Self {
        self.instance_id = Some(instance_id.to_owned());
        self
    }

    pub fn command(mut self, command_id: &str) -> Self {
        self.command_id = Some(command_id.to_owned());
        self
    }
}

pub fn append(conn: &mut DbConnection, event: Event, at: NaiveDateTime) -> DbResult<()> {
    let row = NewEvent {
        request_id: event.request_id,
        actor: event.actor,
        action: event.action.to_owned(),
        instance_id: event.instance_id,
        command_id: event.command_id,
        detail: event.detail.to_string(),
        created_at: at,
    };
    diesel::insert_into(events::table)
        .values(&row)
        .execute(conn)?;
    Ok(())
}

pub fn for_request(conn: &mut DbConnection, request_id: &str) -> DbResult<Vec<EventRow>> {
    Ok(events::table
        .filter(events::request_id.eq(request_id))
        .order(events::id.asc())
        .select(EventRow::as_select())
        .load(conn)?)
}
