//! Access requests: create, decide, cancel, end early, read, and hand out credentials.
//!
//! Every transition is one transaction that moves the status (only from the states it may leave),
//! writes the audit event and queues the follow-up job. The server trusts only its own inventory: the
//! client names instance ids, never names, platforms or environments.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, Duration, NaiveDateTime, Utc};
use diesel::Connection;
use serde_json::json;
use zeroize::Zeroizing;

use crate::auth::Identity;
use crate::config::{EnvironmentPolicy, Settings};
use crate::crypto::Sealer;
use crate::db::events::{self, Event};
use crate::db::jobs::{self, JobKind};
use crate::db::models::{EventRow, GrantRow, InstanceRow, RequestRow, SubjectRow};
use crate::db::{self, DbConnection};
use crate::domain::{
    Comment, DurationMinutes, EnvironmentName, GrantStatus, InstanceId, Platform, Reason,
    RequestStatus, SubjectId, Ticket,
};

use super::ServiceError;
use super::inventory::not_grantable_reason;

/// Most instances one request may name.
pub const MAX_INSTANCES: usize = 100;
/// Most subjects one request may name.
pub const MAX_SUBJECTS: usize = 20;

/// A request as the client sends it, before any check.
#[derive(Debug, Clone)]
pub struct NewRequest {
    pub environment: String,
    pub instance_ids: Vec<String>,
    pub subjects: Option<Vec<String>>,
    pub duration_minutes: i64,
    pub reason: String,
    pub ticket: Option<String>,
}

/// Everything about one request that its viewers may see.
#[derive(Debug, Clone)]
pub struct RequestDetail {
    pub request: RequestRow,
    pub subjects: Vec<SubjectRow>,
    pub grants: Vec<GrantRow>,
    pub instances: BTreeMap<String, InstanceRow>,
    pub events: Vec<EventRow>,
    /// What the caller may do now.
    pub permissions: Permissions,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Permissions {
    pub approve: bool,
    pub cancel: bool,
    pub revoke: bool,
    pub collect_credentials: bool,
}

fn parse_status(row: &RequestRow) -> Result<RequestStatus, ServiceError> {
    RequestStatus::parse(&row.status).ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!(
            "request {} has unknown status {:?}",
            row.id,
            row.status
        ))
    })
}

/// The end of access for a grant that starts at `start`: rounded up to the whole minute, so that the
/// `expiry-time` on the instance (minute precision) and the revoke job fall at the same instant.
pub fn end_of_access(start: DateTime<Utc>, minutes: i32) -> DateTime<Utc> {
    let end = start + Duration::minutes(i64::from(minutes));
    let secs = end.timestamp();
    let rounded = if secs % 60 == 0 && end.timestamp_subsec_nanos() == 0 {
        secs
    } else {
        (secs.div_euclid(60) + 1) * 60
    };
    DateTime::from_timestamp(rounded, 0).unwrap_or(end)
}

/// Creates a request. Checks, in order: the environment is configured and the caller may request
/// there; every field parses; every instance is in the inventory, in that environment, running and
/// manageable. The policy then approves it at once or leaves it for an approver.
pub fn create(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
    caller: &Identity,
    input: NewRequest,
) -> Result<(RequestRow, bool), ServiceError> {
    let environment = EnvironmentName::parse(input.environment.trim())?;
    let policy = settings.policy(&environment).ok_or_else(|| {
        ServiceError::invalid(
            "unknown_environment",
            format!("environment {environment} is not configured"),
        )
    })?;
    if let Some(group) = &policy.requester_group
        && !caller.in_group(group)
    {
        return Err(ServiceError::forbidden(
            "not_a_requester",
            format!("only members of {group} may request access to {environment}"),
        ));
    }
    let duration = DurationMinutes::parse(input.duration_minutes, policy.max_minutes)?;
    let reason = Reason::parse(&input.reason)?;
    let ticket = match input.ticket.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(t) => Some(Ticket::parse(t)?),
    };

    if input.instance_ids.is_empty() {
        return Err(ServiceError::invalid(
            "no_instances",
            "name at least one instance",
        ));
    }
    if input.instance_ids.len() > MAX_INSTANCES {
        return Err(ServiceError::invalid(
            "too_many_instances",
            format!("a request may name at most {MAX_INSTANCES} instances"),
        ));
    }
    let mut instance_ids = BTreeSet::new();
    for id in &input.instance_ids {
        let id = InstanceId::parse(id)?;
        if !instance_ids.insert(id.clone()) {
            return Err(ServiceError::invalid(
                "duplicate_instance",
                format!("instance {id} is named twice"),
            ));
        }
    }

    let subjects: Vec<SubjectId> = match input.subjects {
        None => vec![caller.id.clone()],
        Some(list) if list.is_empty() => {
            return Err(ServiceError::invalid(
                "invalid_subject",
                "subjects must name 1-20 user ids; leave it out to ask for yourself",
            ));
        }
        Some(list) => {
            if list.len() > MAX_SUBJECTS {
                return Err(ServiceError::invalid(
                    "too_many_subjects",
                    format!("a request may name at most {MAX_SUBJECTS} subjects"),
                ));
            }
            let mut seen = BTreeSet::new();
            let mut out = Vec::new();
            for s in &list {
                let s = SubjectId::parse(s.trim())?;
                if !seen.insert(s.clone()) {
                    return Err(ServiceError::invalid(
                        "duplicate_subject",
                        format!("subject {s} is named twice"),
                    ));
                }
                out.push(s);
            }
            out
        }
    };
    let mut os_users = BTreeMap::new();
    for s in &subjects {
        for name in [s.os_user(), s.windows_user()] {
            if let Some(other) = os_users.insert(name, s.clone())
                && other != *s
            {
                return Err(ServiceError::invalid(
                    "duplicate_subject",
                    format!("subjects {other} and {s} would share an OS account"),
                ));
            }
        }
    }

    let ids: Vec<String> = instance_ids.iter().map(|i| i.to_string()).collect();
    let found = grantable_instances(conn, settings, &environment, &ids)?;
    // Access for other people than the requester needs an approver unless the policy says otherwise.
    let only_self = subjects.len() == 1 && subjects[0] == caller.id;
    let auto = duration.get() <= policy.auto_approve_max_minutes
        && (only_self || policy.auto_approve_others);
    let id = uuid::Uuid::new_v4().to_string();
    let status = if auto {
        RequestStatus::Approved
    } else {
        RequestStatus::PendingApproval
    };
    let request = RequestRow {
        id: id.clone(),
        requester: caller.id.to_string(),
        requester_name: caller.name.clone(),
        environment: environment.to_string(),
        duration_minutes: duration.get() as i32,
        reason: reason.to_string(),
        ticket: ticket.map(|t| t.into_inner()),
        sudo: policy.sudo,
        status: status.as_str().to_owned(),
        created_at: now,
        updated_at: now,
        decided_by: None,
        decided_at: None,
        decision_comment: None,
        expires_at: None,
        activated_at: None,
        ended_at: None,
        ended_by: None,
    };
    let subject_rows: Vec<SubjectRow> = subjects
        .iter()
        .map(|s| SubjectRow {
            request_id: id.clone(),
            subject: s.to_string(),
            os_user: s.os_user().into_inner(),
            public_key: None,
            private_key_sealed: None,
            key_collected_at: None,
            windows_user: Some(s.windows_user().into_inner()),
            password_key_public: None,
            password_key_sealed: None,
        })
        .collect();
    let grant_rows: Vec<GrantRow> = subject_rows
        .iter()
        .flat_map(|s| {
            found.values().map(|i| {
                let windows = i.platform == Platform::Windows.as_str();
                GrantRow {
                    request_id: id.clone(),
                    subject: s.subject.clone(),
                    instance_id: i.id.clone(),
                    region: i.region.clone(),
                    os_user: if windows {
                        s.windows_user.clone().unwrap_or_else(|| s.os_user.clone())
                    } else {
                        s.os_user.clone()
                    },
                    status: GrantStatus::Pending.as_str().to_owned(),
                    command_id: None,
                    sent_at: None,
                    last_error: None,
                    updated_at: now,
                    platform: i.platform.clone(),
                    secret_sealed: None,
                }
            })
        })
        .collect();

    conn.transaction::<_, ServiceError, _>(|conn| {
        // Counting open requests and adding one is atomic per requester.
        db::requests::lock_requester(conn, caller.id.as_str())?;
        let open = db::requests::count_open_by_requester(conn, caller.id.as_str())?;
        if open >= i64::from(settings.max_open_requests_per_user) {
            return Err(ServiceError::TooMany {
                code: "too_many_open_requests",
                message: format!(
                    "you have {open} requests that have not ended; end or cancel some first (limit {})",
                    settings.max_open_requests_per_user
                ),
            });
        }
        // One OS account per person: an id that would land on somebody else's account is refused.
        // Names are claimed in one global order, so that two requests claiming the same names
        // cannot wait on each other (a deadlock on PostgreSQL).
        let mut claims: Vec<(String, &SubjectId)> = subjects
            .iter()
            .flat_map(|s| [(s.os_user().into_inner(), s), (s.windows_user().into_inner(), s)])
            .collect();
        claims.sort();
        claims.dedup();
        for (name, s) in &claims {
            if let Some(other) =
                db::requests::claim_os_accounts(conn, s.as_str(), &[name.as_str()], now)?
            {
                tracing::error!(subject = %s, other = %other, "two user ids map to one OS account");
                return Err(ServiceError::invalid(
                    "os_user_collision",
                    format!(
                        "user id {s} maps to the same OS account as another user id; ask an administrator"
                    ),
                ));
            }
        }
        db::requests::insert(conn, &request, &subject_rows, &grant_rows)?;
        events::append(
            conn,
            Event::new(&id, caller.id.as_str(), "requested").detail(json!({
                "environment": environment.as_str(),
                "instance_ids": ids,
                "subjects": subjects.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
                "duration_minutes": duration.get(),
                "reason": reason.as_str(),
                "ticket": request.ticket,
            })),
            now,
        )?;
        if auto {
            events::append(
                conn,
                Event::system(&id, "auto_approved").detail(json!({
                    "policy": format!(
                        "{environment} approves requests of up to {} minutes at once",
                        policy.auto_approve_max_minutes
                    ),
                })),
                now,
            )?;
            jobs::enqueue(conn, JobKind::Grant, &id, now, now)?;
        }
        Ok(())
    })?;
    tracing::info!(request = %id, requester = %caller.id, environment = %environment, status = %status, "access requested");
    Ok((request, auto))
}

/// Looks every instance up in the server's own inventory and checks that access to it can be granted
/// in `environment` now: known, in that environment, of a managed platform, running, agent online.
/// Used when a request is made and again when it is approved (instances move, stop and get retagged
/// while a request waits).
pub fn grantable_instances(
    conn: &mut DbConnection,
    settings: &Settings,
    environment: &EnvironmentName,
    ids: &[String],
) -> Result<BTreeMap<String, InstanceRow>, ServiceError> {
    let found: BTreeMap<String, InstanceRow> = db::instances::by_ids(conn, ids)?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !found.contains_key(*id))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(ServiceError::invalid(
            "unknown_instance",
            format!("not in the inventory: {}", missing.join(", ")),
        ));
    }
    for row in found.values() {
        if row.environment.as_deref() != Some(environment.as_str()) {
            return Err(ServiceError::invalid(
                "instance_not_in_environment",
                format!(
                    "instance {} belongs to {}, not {environment}",
                    row.id,
                    row.environment
                        .as_deref()
                        .unwrap_or("no configured environment")
                ),
            ));
        }
        if Platform::parse(&row.platform).is_none() {
            return Err(ServiceError::invalid(
                "unsupported_platform",
                format!(
                    "instance {} runs {}, which Gatekeeper does not manage",
                    row.id, row.platform
                ),
            ));
        }
        if let Some(reason) = not_grantable_reason(settings, row) {
            let code = if row.state != "running" {
                "instance_not_running"
            } else {
                "instance_not_manageable"
            };
            return Err(ServiceError::invalid(
                code,
                format!("instance {} cannot be granted: {reason}", row.id),
            ));
        }
    }

    Ok(found)
}

fn load(conn: &mut DbConnection, id: &str) -> Result<RequestRow, ServiceError> {
    let not_found = || ServiceError::not_found("request_not_found", format!("no request {id}"));
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(not_found());
    }
    db::requests::get(conn, id)?.ok_or_else(not_found)
}

fn approver_of(settings: &Settings, caller: &Identity, environment: &str) -> bool {
    settings
        .environments
        .get(environment)
        .is_some_and(|p| caller.in_group(&p.approver_group))
}

/// Loads a request the caller may see; anybody else gets the same 404 as for a request that does not
/// exist, so ids cannot be probed.
fn load_visible(
    conn: &mut DbConnection,
    settings: &Settings,
    caller: &Identity,
    id: &str,
) -> Result<(RequestRow, bool), ServiceError> {
    let request = load(conn, id)?;
    let is_subject = db::requests::is_subject(conn, id, caller.id.as_str())?;
    let visible = request.requester == caller.id.as_str()
        || is_subject
        || approver_of(settings, caller, &request.environment);
    if !visible {
        return Err(ServiceError::not_found(
            "request_not_found",
            format!("no request {id}"),
        ));
    }
    Ok((request, is_subject))
}

fn permissions(
    settings: &Settings,
    caller: &Identity,
    request: &RequestRow,
    is_subject: bool,
    subject_row: Option<&SubjectRow>,
    now: NaiveDateTime,
) -> Permissions {
    let status = RequestStatus::parse(&request.status);
    let is_requester = request.requester == caller.id.as_str();
    let approver = approver_of(settings, caller, &request.environment);
    Permissions {
        approve: status == Some(RequestStatus::PendingApproval)
            && approver
            && !is_requester
            && !is_subject,
        cancel: is_requester
            && matches!(
                status,
                Some(RequestStatus::PendingApproval | RequestStatus::Approved)
            ),
        revoke: (is_requester || is_subject || approver)
            && (status == Some(RequestStatus::Active)
                || (status == Some(RequestStatus::Granting) && request.ended_by.is_none())),
        collect_credentials: is_subject
            && status == Some(RequestStatus::Active)
            && request.expires_at.is_some_and(|end| end > now)
            && subject_row.is_some_and(|s| s.key_collected_at.is_none()),
    }
}

pub fn detail(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
    caller: &Identity,
    id: &str,
) -> Result<RequestDetail, ServiceError> {
    let (request, is_subject) = load_visible(conn, settings, caller, id)?;
    let subjects = db::requests::subjects(conn, id)?;
    let grants = db::requests::grants(conn, id)?;
    let ids: Vec<String> = grants
        .iter()
        .map(|g| g.instance_id.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let instances = db::instances::by_ids(conn, &ids)?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    let events = events::for_request(conn, id)?;
    let own = subjects.iter().find(|s| s.subject == caller.id.as_str());
    let permissions = permissions(settings, caller, &request, is_subject, own, now);
    Ok(RequestDetail {
        request,
        subjects,
        grants,
        instances,
        events,
        permissions,
    })
}

/// Approves or rejects. Only the environment's approvers decide, never on a request they made or one
/// that would give them access.
pub fn decide(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
    caller: &Identity,
    id: &str,
    approve: bool,
    comment: Option<String>,
) -> Result<RequestRow, ServiceError> {
    let comment = comment
        .as_deref()
        .map(Comment::parse)
        .transpose()?
        .filter(|c| !c.is_empty());
    if !approve && comment.is_none() {
        return Err(ServiceError::invalid(
            "comment_required",
            "say why the request is rejected (comment)",
        ));
    }
    let (request, is_subject) = load_visible(conn, settings, caller, id)?;
    let policy: &EnvironmentPolicy =
        settings
            .environments
            .get(&request.environment)
            .ok_or_else(|| {
                ServiceError::forbidden(
                    "not_an_approver",
                    format!(
                        "environment {} is no longer configured",
                        request.environment
                    ),
                )
            })?;
    if !caller.in_group(&policy.approver_group) {
        return Err(ServiceError::forbidden(
            "not_an_approver",
            format!(
                "only members of {} decide requests for {}",
                policy.approver_group, request.environment
            ),
        ));
    }
    if request.requester == caller.id.as_str() {
        return Err(ServiceError::forbidden(
            "self_approval",
            "nobody decides a request they made",
        ));
    }
    if is_subject {
        return Err(ServiceError::forbidden(
            "self_approval",
            "nobody decides a request that grants themselves access",
        ));
    }
    if approve {
        // What was true when the request was made may not be now: an instance retagged into another
        // environment (with other approvers), stopped, or gone from the inventory is refused here.
        let environment = EnvironmentName::parse(&request.environment)?;
        let ids: BTreeSet<String> = db::requests::grants(conn, id)?
            .into_iter()
            .map(|g| g.instance_id)
            .collect();
        let ids: Vec<String> = ids.into_iter().collect();
        match grantable_instances(conn, settings, &environment, &ids) {
            Ok(_) => {}
            Err(ServiceError::Invalid(e)) => {
                return Err(ServiceError::conflict(
                    "instances_changed",
                    format!(
                        "this request can no longer be approved: {} ({}); reject it, and the requester can ask again",
                        e.message, e.code
                    ),
                ));
            }
            Err(e) => return Err(e),
        }
    }
    let (to, action) = if approve {
        (RequestStatus::Approved, "approved")
    } else {
        (RequestStatus::Rejected, "rejected")
    };
    conn.transaction::<_, ServiceError, _>(|conn| {
        if !db::requests::set_status(conn, id, &[RequestStatus::PendingApproval], to, now)? {
            let current = load(conn, id)?;
            return Err(ServiceError::conflict(
                "invalid_state",
                format!("the request is {}, not pending_approval", current.status),
            ));
        }
        db::requests::set_decision(
            conn,
            id,
            caller.id.as_str(),
            now,
            comment.as_ref().map(|c| c.as_str()),
        )?;
        events::append(
            conn,
            Event::new(id, caller.id.as_str(), action)
                .detail(json!({ "comment": comment.as_ref().map(|c| c.as_str()) })),
            now,
        )?;
        if approve {
            jobs::enqueue(conn, JobKind::Grant, id, now, now)?;
        }
        Ok(())
    })?;
    tracing::info!(request = %id, approver = %caller.id, decision = action, "request decided");
    load(conn, id)
}

/// The requester withdraws a request before any account was created.
pub fn cancel(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
    caller: &Identity,
    id: &str,
) -> Result<RequestRow, ServiceError> {
    let (request, _) = load_visible(conn, settings, caller, id)?;
    if request.requester != caller.id.as_str() {
        return Err(ServiceError::forbidden(
            "not_the_requester",
            "only the requester cancels a request",
        ));
    }
    conn.transaction::<_, ServiceError, _>(|conn| {
        let from = [RequestStatus::PendingApproval, RequestStatus::Approved];
        if !db::requests::set_status(conn, id, &from, RequestStatus::Canceled, now)? {
            let current = load(conn, id)?;
            return Err(ServiceError::conflict(
                "invalid_state",
                format!(
                    "the request is {}; only pending or approved requests can be canceled (end active access with revoke)",
                    current.status
                ),
            ));
        }
        db::requests::set_ended(conn, id, now, Some(caller.id.as_str()))?;
        events::append(conn, Event::new(id, caller.id.as_str(), "canceled"), now)?;
        Ok(())
    })?;
    load(conn, id)
}

/// Ends active access now. The requester, any subject and the environment's approvers may do so.
pub fn revoke(
    conn: &mut DbConnection,
    settings: &Settings,
    now: NaiveDateTime,
    caller: &Identity,
    id: &str,
    comment: Option<String>,
) -> Result<RequestRow, ServiceError> {
    let comment = comment
        .as_deref()
        .map(Comment::parse)
        .transpose()?
        .filter(|c| !c.is_empty());
    let (request, is_subject) = load_visible(conn, settings, caller, id)?;
    let allowed = request.requester == caller.id.as_str()
        || is_subject
        || approver_of(settings, caller, &request.environment);
    if !allowed {
        return Err(ServiceError::forbidden(
            "not_allowed",
            "only the requester, a subject or an approver ends access early",
        ));
    }
    let while_granting = conn.transaction::<_, ServiceError, _>(|conn| {
        let event = |conn: &mut DbConnection, detail: serde_json::Value| {
            events::append(
                conn,
                Event::new(id, caller.id.as_str(), "revoke_requested").detail(detail),
                now,
            )
        };
        let comment = comment.as_ref().map(|c| c.as_str());
        // The worker may move the request from granting to active at the same moment: look twice.
        for _ in 0..2 {
            if db::requests::set_status(
                conn,
                id,
                &[RequestStatus::Active],
                RequestStatus::Revoking,
                now,
            )? {
                db::requests::set_ended(conn, id, now, Some(caller.id.as_str()))?;
                db::requests::wipe_private_keys(conn, id)?;
                event(conn, json!({ "comment": comment }))?;
                jobs::enqueue(conn, JobKind::Revoke, id, now, now)?;
                return Ok(false);
            }
            // Still granting: the accounts are being created. Removing them now could overtake the
            // create on an instance, so the worker revokes the moment the create commands are done.
            if db::requests::end_while_granting(conn, id, caller.id.as_str(), now)? {
                // Keys are wiped when the worker moves it to revoking (it still needs the one-time
                // password keys to read what the instances answer).
                event(conn, json!({ "comment": comment, "while": "granting" }))?;
                return Ok(true);
            }
        }
        let current = load(conn, id)?;
        let hint = if current.status == RequestStatus::Granting.as_str() {
            "; ending it was asked for already"
        } else {
            ""
        };
        Err(ServiceError::conflict(
            "invalid_state",
            format!("the request is {}, not active{hint}", current.status),
        ))
    })?;
    if while_granting {
        tracing::info!(request = %id, by = %caller.id, "access to end as soon as granting is done");
    } else {
        tracing::info!(request = %id, by = %caller.id, "access revoked early");
    }
    load(conn, id)
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub status: Option<String>,
    pub finished: bool,
    /// RFC 3339.
    pub from: Option<String>,
    /// RFC 3339.
    pub to: Option<String>,
    pub environment: Option<String>,
    pub person: Option<String>,
    /// Only requests the caller can approve now.
    pub awaiting_my_decision: bool,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

pub struct ListPage {
    pub items: Vec<RequestRow>,
    pub next_cursor: Option<String>,
    /// Subject ids by request id.
    pub subjects: BTreeMap<String, Vec<String>>,
    /// (subject, instance id, grant status) by request id.
    pub grants: BTreeMap<String, Vec<(String, String, String)>>,
}

pub fn list(
    conn: &mut DbConnection,
    settings: &Settings,
    caller: &Identity,
    query: ListQuery,
) -> Result<ListPage, ServiceError> {
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ServiceError::invalid(
            "invalid_limit",
            "limit must be between 1 and 200",
        ));
    }
    let mut status = query.status.filter(|s| !s.is_empty());
    if let Some(s) = &status
        && RequestStatus::parse(s).is_none()
    {
        return Err(ServiceError::invalid(
            "invalid_status",
            format!(
                "status must be one of {}",
                RequestStatus::ALL
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let environment = query.environment.filter(|e| !e.is_empty());
    if let Some(e) = &environment {
        EnvironmentName::parse(e)?;
    }
    let person = query.person.filter(|p| !p.is_empty());
    if let Some(p) = &person {
        SubjectId::parse(p)?;
    }
    let approver_envs: Vec<String> = settings
        .environments
        .iter()
        .filter(|(_, p)| caller.in_group(&p.approver_group))
        .map(|(name, _)| name.clone())
        .collect();
    let before = match query.cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(decode_cursor(&c).ok_or_else(|| {
            ServiceError::invalid("invalid_cursor", "cursor is not one this server issued")
        })?),
    };
    if query.awaiting_my_decision {
        let pending = RequestStatus::PendingApproval.as_str();
        if status.as_deref().is_some_and(|s| s != pending) || query.finished {
            return Err(ServiceError::invalid(
                "invalid_status",
                "awaiting_my_decision lists pending_approval requests only: leave out status and finished",
            ));
        }
        status = Some(pending.to_owned());
    }
    let time = |name: &'static str,
                value: Option<String>|
     -> Result<Option<NaiveDateTime>, ServiceError> {
        match value.filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => DateTime::parse_from_rfc3339(&v)
                .ok()
                .map(|t| t.naive_utc())
                .filter(in_storable_range)
                .map(Some)
                .ok_or_else(|| {
                    ServiceError::invalid(
                        "invalid_time",
                        format!(
                            "{name} must be an RFC 3339 time between the years 1970 and 9999, such as 2026-12-03T00:00:00Z"
                        ),
                    )
                }),
        }
    };
    let from = time("from", query.from)?;
    let to = time("to", query.to)?;
    let filter = db::requests::ListFilter {
        status,
        finished: query.finished,
        from,
        to,
        environment,
        person,
        before,
        decidable_only: query.awaiting_my_decision,
        limit,
    };
    let mut items = db::requests::list_visible(conn, caller.id.as_str(), &approver_envs, &filter)?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|r| encode_cursor(r.created_at, &r.id))
    } else {
        None
    };
    let ids: Vec<String> = items.iter().map(|r| r.id.clone()).collect();
    let mut subjects: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (request, subject) in db::requests::subjects_of(conn, &ids)? {
        subjects.entry(request).or_default().push(subject);
    }
    let mut grants: BTreeMap<String, Vec<(String, String, String)>> = BTreeMap::new();
    for (request, subject, instance, status) in db::requests::grants_of(conn, &ids)? {
        grants
            .entry(request)
            .or_default()
            .push((subject, instance, status));
    }
    Ok(ListPage {
        items,
        next_cursor,
        subjects,
        grants,
    })
}

fn encode_cursor(at: NaiveDateTime, id: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{id}", at.and_utc().timestamp_micros()))
}

fn decode_cursor(cursor: &str) -> Option<(NaiveDateTime, String)> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (micros, id) = raw.split_once('|')?;
    uuid::Uuid::parse_str(id).ok()?;
    let at = DateTime::from_timestamp_micros(micros.parse().ok()?)?.naive_utc();
    in_storable_range(&at).then(|| (at, id.to_owned()))
}

/// Times both backends store and compare alike (SQLite compares them as text: four-digit years only).
fn in_storable_range(at: &NaiveDateTime) -> bool {
    (1970..=9999).contains(&at.year())
}

/// What a subject needs to log in.
pub struct Credentials {
    pub request: RequestRow,
    pub subject: String,
    pub os_user: String,
    pub windows_user: Option<String>,
    /// The OpenSSH private key, when the request has Linux instances.
    pub private_key: Option<Zeroizing<String>>,
    /// Windows passwords by instance id.
    pub passwords: BTreeMap<String, Zeroizing<String>>,
    pub grants: Vec<GrantRow>,
    pub instances: BTreeMap<String, InstanceRow>,
}

/// Hands the calling subject their private key and Windows passwords, once: they are wiped from
/// storage in the same transaction.
pub fn collect_credentials(
    conn: &mut DbConnection,
    settings: &Settings,
    sealer: &Sealer,
    now: NaiveDateTime,
    caller: &Identity,
    id: &str,
) -> Result<Credentials, ServiceError> {
    let (request, is_subject) = load_visible(conn, settings, caller, id)?;
    if !is_subject {
        return Err(ServiceError::forbidden(
            "not_a_subject",
            "credentials go only to the people the request grants access to",
        ));
    }
    let status = parse_status(&request)?;
    if status != RequestStatus::Active {
        return Err(ServiceError::conflict(
            "not_active",
            format!("the request is {status}; credentials are available while it is active"),
        ));
    }
    let subject = caller.id.as_str();
    let sealed = match db::requests::take_credentials(conn, id, subject, now)? {
        db::requests::Taken::Credentials(sealed) => sealed,
        db::requests::Taken::AlreadyCollected => {
            return Err(ServiceError::gone(
                "credentials_already_collected",
                "the credentials were handed out once and are no longer stored; end this access and request again if they were lost",
            ));
        }
        db::requests::Taken::NotActive(status) => {
            return Err(ServiceError::conflict(
                "not_active",
                format!("the request is {status}; credentials are available while it is active"),
            ));
        }
    };
    let open = |sealed: &str, context: &str| -> Result<Zeroizing<String>, ServiceError> {
        let plain = sealer.open(sealed, context).map_err(|e| {
            ServiceError::Internal(anyhow::anyhow!(
                "cannot open a sealed secret of {id}/{subject}: {e}"
            ))
        })?;
        String::from_utf8(plain.to_vec())
            .map(Zeroizing::new)
            .map_err(|_| {
                ServiceError::Internal(anyhow::anyhow!("a sealed secret of {id} is not text"))
            })
    };
    let private_key = sealed
        .private_key
        .as_deref()
        .map(|s| open(s, &key_context(id, subject)))
        .transpose()?;
    let mut passwords = BTreeMap::new();
    for (instance, secret) in &sealed.passwords {
        passwords.insert(
            instance.clone(),
            open(secret, &grant_secret_context(id, subject, instance))?,
        );
    }
    tracing::info!(request = %id, subject = %subject, "credentials collected");
    events::append(
        conn,
        Event::new(id, subject, "credentials_collected").detail(json!({
            "private_key": private_key.is_some(),
            "windows_passwords": passwords.keys().collect::<Vec<_>>(),
        })),
        now,
    )?;
    let own = db::requests::subjects(conn, id)?
        .into_iter()
        .find(|s| s.subject == subject);
    let grants: Vec<GrantRow> = db::requests::grants(conn, id)?
        .into_iter()
        .filter(|g| g.subject == subject)
        .collect();
    let ids: Vec<String> = grants.iter().map(|g| g.instance_id.clone()).collect();
    let instances = db::instances::by_ids(conn, &ids)?
        .into_iter()
        .map(|row| (row.id.clone(), row))
        .collect();
    Ok(Credentials {
        request,
        subject: subject.to_owned(),
        os_user: own.as_ref().map(|s| s.os_user.clone()).unwrap_or_default(),
        windows_user: own.and_then(|s| s.windows_user),
        private_key,
        passwords,
        grants,
        instances,
    })
}

/// Binds a sealed SSH key to its request and subject.
pub fn key_context(request_id: &str, subject: &str) -> String {
    format!("gatekeeper-key/{request_id}/{subject}")
}

/// Binds a sealed password key to its request and subject.
pub fn password_key_context(request_id: &str, subject: &str) -> String {
    format!("gatekeeper-password-key/{request_id}/{subject}")
}

/// Binds a sealed Windows password to its grant.
pub fn grant_secret_context(request_id: &str, subject: &str, instance_id: &str) -> String {
    format!("gatekeeper-password/{request_id}/{subject}/{instance_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_access_rounds_up_to_the_minute() {
        let start = DateTime::parse_from_rfc3339("2026-12-03T10:00:30Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            end_of_access(start, 60).to_rfc3339(),
            "2026-12-03T11:01:00+00:00"
        );
        let start = DateTime::parse_from_rfc3339("2026-12-03T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            end_of_access(start, 60).to_rfc3339(),
            "2026-12-03T11:00:00+00:00"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_forgeries() {
        let at = DateTime::from_timestamp_micros(1_700_000_000_123_456)
            .unwrap()
            .naive_utc();
        let id = "0b9f1c9e-8f5e-4a47-9a43-4c1a3c1f0a11";
        let c = encode_cursor(at, id);
        assert_eq!(decode_cursor(&c), Some((at, id.to_owned())));
        assert_eq!(decode_cursor("bm9wZQ"), None);
        assert_eq!(decode_cursor("!!"), None);
    }
}
