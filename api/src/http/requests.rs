//! Access requests: create, list, read, decide, cancel, revoke, and collect credentials.

use actix_web::{HttpResponse, get, post, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{AuthUser, JsonObject, OptionalJson};
use crate::clock::to_utc;
use crate::context::Context;
use crate::db::models::RequestRow;
use crate::domain::{GrantStatus, Platform, RequestStatus};
use crate::service::ServiceError;
use crate::service::requests::{self as svc, ListQuery, NewRequest, RequestDetail};

/// Ask for access.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequestBody {
    /// The environment all instances belong to.
    #[schema(example = "dev")]
    pub environment: String,
    /// Instance ids from the inventory (1-100).
    #[schema(example = json!(["i-0123456789abcdef0"]))]
    pub instance_ids: Vec<String>,
    /// User ids who get access (1-20); default: the caller.
    pub subjects: Option<Vec<String>>,
    /// How long access lasts once granted, within the environment's maximum.
    #[schema(example = 60)]
    pub duration_minutes: i64,
    /// Why access is needed (3-1000 characters).
    #[schema(example = "investigate the 502s on checkout")]
    pub reason: String,
    /// Change or incident ticket.
    #[schema(example = "OPS-1234")]
    pub ticket: Option<String>,
}

/// A request as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestSummary {
    pub id: String,
    pub requester: String,
    pub requester_name: Option<String>,
    pub environment: String,
    pub status: RequestStatus,
    pub duration_minutes: i32,
    pub reason: String,
    pub ticket: Option<String>,
    /// Whether subjects get passwordless sudo (from the environment's policy).
    pub sudo: bool,
    pub created_at: DateTime<Utc>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The approver's comment (the reason, for a rejection).
    pub decision_comment: Option<String>,
    /// When access ends; set once granting starts.
    pub expires_at: Option<DateTime<Utc>>,
    pub activated_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Who ended it early (revoke) or canceled it.
    pub ended_by: Option<String>,
    /// The user ids the request gives access to.
    pub subject_ids: Vec<String>,
    /// The instances the request names.
    pub instance_ids: Vec<String>,
    /// The status of every subject's access to every instance.
    pub grant_statuses: Vec<GrantStatusBrief>,
}

/// One subject's access to one instance, as listed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantStatusBrief {
    pub subject: String,
    pub instance_id: String,
    pub status: GrantStatus,
}

impl RequestSummary {
    /// `grants` holds (subject, instance id, grant status) of every grant of the request.
    fn new(r: RequestRow, subject_ids: Vec<String>, grants: Vec<(String, String, String)>) -> Self {
        let mut instance_ids: Vec<String> = grants.iter().map(|(_, i, _)| i.clone()).collect();
        instance_ids.sort();
        instance_ids.dedup();
        let grant_statuses = grants
            .into_iter()
            .map(|(subject, instance_id, status)| GrantStatusBrief {
                status: GrantStatus::parse(&status).unwrap_or(GrantStatus::Failed),
                subject,
                instance_id,
            })
            .collect();
        Self {
            subject_ids,
            instance_ids,
            grant_statuses,
            status: RequestStatus::parse(&r.status).unwrap_or(RequestStatus::Failed),
            id: r.id,
            requester: r.requester,
            requester_name: r.requester_name,
            environment: r.environment,
            duration_minutes: r.duration_minutes,
            reason: r.reason,
            ticket: r.ticket,
            sudo: r.sudo,
            created_at: to_utc(r.created_at),
            decided_by: r.decided_by,
            decided_at: r.decided_at.map(to_utc),
            decision_comment: r.decision_comment,
            expires_at: r.expires_at.map(to_utc),
            activated_at: r.activated_at.map(to_utc),
            ended_at: r.ended_at.map(to_utc),
            ended_by: r.ended_by,
        }
    }
}

/// A person who gets access, and their key.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SubjectResponse {
    pub subject: String,
    /// The OS account on the instances, derived by the server.
    pub os_user: String,
    /// The public half of the subject's key for this request, once generated.
    pub public_key: Option<String>,
    pub key_collected_at: Option<DateTime<Utc>>,
}

/// One subject's access to one instance.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct GrantResponse {
    pub subject: String,
    pub instance_id: String,
    pub instance_name: Option<String>,
    pub os_user: String,
    pub status: GrantStatus,
    /// The last SSM command that acted on this grant.
    pub command_id: Option<String>,
    pub last_error: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventResponse {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// A user id, or `system` for the worker.
    pub actor: String,
    /// e.g. `requested`, `approved`, `grant_command_sent`, `activated`, `expired`.
    pub action: String,
    pub instance_id: Option<String>,
    pub command_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// What the caller may do with the request now.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PermissionsResponse {
    pub approve: bool,
    pub cancel: bool,
    pub revoke: bool,
    pub collect_credentials: bool,
}

/// A request with its subjects, per-instance grants and audit trail.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestDetailResponse {
    #[serde(flatten)]
    pub request: RequestSummary,
    pub subjects: Vec<SubjectResponse>,
    pub grants: Vec<GrantResponse>,
    pub events: Vec<EventResponse>,
    pub permissions: PermissionsResponse,
}

impl From<RequestDetail> for RequestDetailResponse {
    fn from(d: RequestDetail) -> Self {
        let subject_ids = d.subjects.iter().map(|s| s.subject.clone()).collect();
        let brief = d
            .grants
            .iter()
            .map(|g| (g.subject.clone(), g.instance_id.clone(), g.status.clone()))
            .collect();
        Self {
            subjects: d
                .subjects
                .into_iter()
                .map(|s| SubjectResponse {
                    subject: s.subject,
                    os_user: s.os_user,
                    public_key: s.public_key,
                    key_collected_at: s.key_collected_at.map(to_utc),
                })
                .collect(),
            grants: d
                .grants
                .into_iter()
                .map(|g| GrantResponse {
                    instance_name: d.instances.get(&g.instance_id).map(|i| i.name.clone()),
                    status: GrantStatus::parse(&g.status).unwrap_or(GrantStatus::Failed),
                    subject: g.subject,
                    instance_id: g.instance_id,
                    os_user: g.os_user,
                    command_id: g.command_id,
                    last_error: g.last_error,
                    updated_at: to_utc(g.updated_at),
                })
                .collect(),
            events: d
                .events
                .into_iter()
                .map(|e| EventResponse {
                    id: e.id,
                    at: to_utc(e.created_at),
                    actor: e.actor,
                    action: e.action,
                    instance_id: e.instance_id,
                    command_id: e.command_id,
                    detail: serde_json::from_str(&e.detail).unwrap_or(serde_json::Value::Null),
                })
                .collect(),
            permissions: PermissionsResponse {
                approve: d.permissions.approve,
                cancel: d.permissions.cancel,
                revoke: d.permissions.revoke,
                collect_credentials: d.permissions.collect_credentials,
            },
            request: RequestSummary::new(d.request, subject_ids, brief),
        }
    }
}

/// List filters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Only this status.
    pub status: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// Only requests made by or granting access to this user id.
    pub person: Option<String>,
    /// Only requests the caller can approve or reject now.
    pub awaiting_my_decision: Option<bool>,
    /// Only requests that ended (expired, revoked, rejected, canceled, failed).
    pub finished: Option<bool>,
    /// Only requests made at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Only requests made at or before this time (RFC 3339).
    pub to: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<i64>,
}

/// Requests the caller may see, newest first.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestPage {
    pub items: Vec<RequestSummary>,
    pub next_cursor: Option<String>,
}

/// An approver's decision, or a note on ending access.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CommentBody {
    /// Up to 1000 characters; required to reject.
    pub comment: Option<String>,
}

/// Where and how to log in.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialTarget {
    pub instance_id: String,
    pub name: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// A ready command, assuming the key was saved as `key_file`.
    #[schema(example = "ssh -i ~/.ssh/gatekeeper-1a2b3c4d gk-alice@10.0.1.15")]
    pub ssh_command: Option<String>,
}

/// A Windows instance and the password its Remote Desktop account got.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WindowsLogin {
    pub instance_id: String,
    pub name: Option<String>,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    /// The local user name.
    pub username: String,
    /// Generated on the instance; not stored anymore once this response is sent.
    pub password: String,
}

/// The subject's private key, Windows passwords and login details. Handed out once.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CredentialsResponse {
    pub request_id: String,
    pub subject: String,
    /// The OS user on Linux instances.
    pub os_user: String,
    /// `ed25519`.
    pub key_type: String,
    /// OpenSSH private key for the Linux instances (absent when the request has none). It is not stored
    /// anymore once this response is sent.
    pub private_key: Option<String>,
    /// Suggested file name for the key.
    pub key_file: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// Linux instances, with a ready `ssh` command each.
    pub instances: Vec<CredentialTarget>,
    /// Windows instances, with the Remote Desktop user and password each.
    pub windows: Vec<WindowsLogin>,
}

fn invalid_id() -> ApiError {
    ApiError::from(ServiceError::not_found(
        "request_not_found",
        "no such request",
    ))
}

/// Ask for access to instances of one environment.
#[utoipa::path(
    tag = "requests",
    request_body = CreateRequestBody,
    responses(
        (status = 201, description = "Created: `approved` at once or `pending_approval`", body = RequestDetailResponse),
        (status = 400, description = "The body is not valid JSON of this shape", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "The caller may not request access to this environment", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (code names which)", body = ErrorBody),
        (status = 429, description = "`too_many_open_requests`: the caller has too many requests that have not ended", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/requests")]
pub async fn create_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    body: JsonObject<CreateRequestBody>,
) -> Result<HttpResponse, ApiError> {
    let b = body.0;
    let input = NewRequest {
        environment: b.environment,
        instance_ids: b.instance_ids,
        subjects: b.subjects,
        duration_minutes: b.duration_minutes,
        reason: b.reason,
        ticket: b.ticket,
    };
    let now = ctx.clock.now_naive();
    let settings = ctx.settings.clone();
    let caller = user.0;
    let detail = ctx
        .db(move |conn| {
            let (row, _) = svc::create(conn, &settings, now, &caller, input)?;
            svc::detail(conn, &settings, now, &caller, &row.id)
        })
        .await?;
    ctx.worker_wake.notify_one();
    Ok(HttpResponse::Created()
        .insert_header((
            actix_web::http::header::LOCATION,
            format!("/api/v1/requests/{}", detail.request.id),
        ))
        .json(RequestDetailResponse::from(detail)))
}

/// Requests the caller made, those that grant them access, and those of environments they approve.
#[utoipa::path(
    tag = "requests",
    params(ListParams),
    responses(
        (status = 200, description = "One page of requests", body = RequestPage),
        (status = 400, description = "`invalid_query`: an unknown parameter or a value of the wrong type", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 422, description = "A filter is invalid", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/requests")]
pub async fn list_requests(
    ctx: web::Data<Context>,
    user: AuthUser,
    params: web::Query<ListParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let query = ListQuery {
        status: p.status,
        environment: p.environment,
        person: p.person,
        awaiting_my_decision: p.awaiting_my_decision.unwrap_or(false),
        finished: p.finished.unwrap_or(false),
        from: p.from,
        to: p.to,
        cursor: p.cursor,
        limit: p.limit,
    };
    let settings = ctx.settings.clone();
    let page = ctx
        .db(move |conn| svc::list(conn, &settings, &user.0, query))
        .await?;
    let mut subjects = page.subjects;
    let mut grants = page.grants;
    Ok(HttpResponse::Ok().json(RequestPage {
        items: page
            .items
            .into_iter()
            .map(|r| {
                let s = subjects.remove(&r.id).unwrap_or_default();
                let g = grants.remove(&r.id).unwrap_or_default();
                RequestSummary::new(r, s, g)
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One request with its grants and audit trail.
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "The request", body = RequestDetailResponse),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/requests/{id}")]
pub async fn get_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let settings = ctx.settings.clone();
    let now = ctx.clock.now_naive();
    let detail = ctx
        .db(move |conn| svc::detail(conn, &settings, now, &user.0, &id))
        .await?;
    Ok(HttpResponse::Ok().json(RequestDetailResponse::from(detail)))
}

async fn decide(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: String,
    body: OptionalJson<CommentBody>,
    approve: bool,
) -> Result<HttpResponse, ApiError> {
    let comment = body.0.comment;
    let now = ctx.clock.now_naive();
    let settings = ctx.settings.clone();
    let caller = user.0;
    let detail = ctx
        .db(move |conn| {
            svc::decide(conn, &settings, now, &caller, &id, approve, comment)?;
            svc::detail(conn, &settings, now, &caller, &id)
        })
        .await?;
    if approve {
        ctx.worker_wake.notify_one();
    }
    Ok(HttpResponse::Ok().json(RequestDetailResponse::from(detail)))
}

/// Approve a pending request (approvers of its environment; never one's own or one that grants oneself).
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = CommentBody, description = "Optional comment"),
    responses(
        (status = 200, description = "Approved; granting starts", body = RequestDetailResponse),
        (status = 400, description = "`invalid_body`: the body is not a JSON object of this shape", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "`not_an_approver` or `self_approval`", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the request is not pending approval; `instances_changed`: an instance left the environment, stopped or left the inventory since it was requested", body = ErrorBody),
        (status = 422, description = "The comment is invalid", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/requests/{id}/approve")]
pub async fn approve_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
    body: OptionalJson<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    decide(ctx, user, id.into_inner(), body, true).await
}

/// Reject a pending request, saying why.
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = CommentBody, description = "The reason (required)"),
    responses(
        (status = 200, description = "Rejected", body = RequestDetailResponse),
        (status = 400, description = "`invalid_body`: the body is not a JSON object of this shape", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "`not_an_approver` or `self_approval`", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "The request is not pending approval", body = ErrorBody),
        (status = 422, description = "`comment_required` or an invalid comment", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/requests/{id}/reject")]
pub async fn reject_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
    body: OptionalJson<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    decide(ctx, user, id.into_inner(), body, false).await
}

/// Withdraw a request before access is granted (requester only).
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "Canceled", body = RequestDetailResponse),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not the requester", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "Granting has started; use revoke once active", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/requests/{id}/cancel")]
pub async fn cancel_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let now = ctx.clock.now_naive();
    let settings = ctx.settings.clone();
    let caller = user.0;
    let detail = ctx
        .db(move |conn| {
            svc::cancel(conn, &settings, now, &caller, &id)?;
            svc::detail(conn, &settings, now, &caller, &id)
        })
        .await?;
    Ok(HttpResponse::Ok().json(RequestDetailResponse::from(detail)))
}

/// End access now (requester, a subject, or an approver of the environment): active access at once,
/// access still being granted as soon as its accounts exist.
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    request_body(content = CommentBody, description = "Optional note"),
    responses(
        (status = 200, description = "`revoking`: the accounts are being removed; or, asked while `granting`, still granting with `ended_by` set: the worker removes the accounts as soon as the create commands are done", body = RequestDetailResponse),
        (status = 400, description = "`invalid_body`: the body is not a JSON object of this shape", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "Not allowed to end this access", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "`invalid_state`: the request is neither active nor granting, or ending it was asked for already", body = ErrorBody),
        (status = 422, description = "`invalid_comment`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[post("/api/v1/requests/{id}/revoke")]
pub async fn revoke_request(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
    body: OptionalJson<CommentBody>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let comment = body.0.comment;
    let now = ctx.clock.now_naive();
    let settings = ctx.settings.clone();
    let caller = user.0;
    let detail = ctx
        .db(move |conn| {
            svc::revoke(conn, &settings, now, &caller, &id, comment)?;
            svc::detail(conn, &settings, now, &caller, &id)
        })
        .await?;
    ctx.worker_wake.notify_one();
    Ok(HttpResponse::Ok().json(RequestDetailResponse::from(detail)))
}

/// Collect the caller's private key, Windows passwords and login details. Only subjects of an active
/// request, and only once: the secrets are wiped from the server as they are handed out.
#[utoipa::path(
    tag = "requests",
    params(("id" = String, Path, description = "Request id")),
    responses(
        (status = 200, description = "The private key and where to use it", body = CredentialsResponse),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 403, description = "`not_a_subject`: the caller gets no access from this request", body = ErrorBody),
        (status = 404, description = "No such request, or not visible to the caller", body = ErrorBody),
        (status = 409, description = "`not_active`: the request is not active", body = ErrorBody),
        (status = 410, description = "`credentials_already_collected`", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/requests/{id}/credentials")]
pub async fn get_credentials(
    ctx: web::Data<Context>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    if uuid::Uuid::parse_str(&id).is_err() {
        return Err(invalid_id());
    }
    let now = ctx.clock.now_naive();
    let settings = ctx.settings.clone();
    let sealer = ctx.sealer.clone();
    let caller = user.0;
    let creds = ctx
        .db(move |conn| svc::collect_credentials(conn, &settings, &sealer, now, &caller, &id))
        .await?;
    let key_file = format!("~/.ssh/gatekeeper-{}", &creds.request.id[..8]);
    let address = |id: &str| {
        let row = creds.instances.get(id);
        (
            row.map(|r| r.name.clone()),
            row.and_then(|r| r.private_ip.clone()),
            row.and_then(|r| r.public_ip.clone()),
        )
    };
    let mut instances = Vec::new();
    let mut windows = Vec::new();
    for g in &creds.grants {
        let (name, private_ip, public_ip) = address(&g.instance_id);
        if g.platform == Platform::Windows.as_str() {
            if let Some(password) = creds.passwords.get(&g.instance_id) {
                windows.push(WindowsLogin {
                    instance_id: g.instance_id.clone(),
                    name,
                    private_ip,
                    public_ip,
                    username: g.os_user.clone(),
                    password: password.to_string(),
                });
            }
        } else {
            let host = private_ip.clone().or_else(|| public_ip.clone());
            instances.push(CredentialTarget {
                instance_id: g.instance_id.clone(),
                name,
                ssh_command: host.map(|a| format!("ssh -i {key_file} {}@{a}", creds.os_user)),
                private_ip,
                public_ip,
            });
        }
    }
    Ok(HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(CredentialsResponse {
            request_id: creds.request.id.clone(),
            subject: creds.subject.clone(),
            os_user: creds.os_user.clone(),
            key_type: "ed25519".into(),
            private_key: creds.private_key.as_ref().map(|k| k.to_string()),
            key_file,
            expires_at: creds.request.expires_at.map(to_utc),
            instances,
            windows,
        }))
}
