//! Health and the caller's identity with what they may do per environment.

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::extract::AuthUser;
use crate::context::Context;
use crate::db::DbError;

/// Liveness and storage reachability.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct HealthResponse {
    /// `ok`.
    pub status: String,
    /// Instances in the inventory.
    pub instances: i64,
}

/// Is the server up and its database reachable? No authentication.
#[utoipa::path(
    tag = "meta",
    responses(
        (status = 200, description = "Healthy", body = HealthResponse),
        (status = 500, description = "The database is unreachable", body = ErrorBody),
    )
)]
#[get("/api/v1/health")]
pub async fn health(ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let instances = ctx
        .db(|conn| crate::db::instances::count(conn))
        .await
        .map_err(|e: DbError| ApiError::internal(e))?;
    Ok(HttpResponse::Ok().json(HealthResponse {
        status: "ok".into(),
        instances,
    }))
}

/// An environment and what the caller may do there.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnvironmentResponse {
    pub name: String,
    /// Longest access a request may ask for.
    pub max_minutes: u32,
    /// Requests up to this long are approved at once (0: every request needs approval).
    pub auto_approve_max_minutes: u32,
    /// Whether that also holds for requests that give access to other people than the requester.
    pub auto_approve_others: bool,
    pub approver_group: String,
    /// Whether subjects get passwordless sudo.
    pub sudo: bool,
    pub may_request: bool,
    pub may_approve: bool,
}

/// The caller as the server sees them.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MeResponse {
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub groups: Vec<String>,
    /// OS user name the caller gets on instances.
    pub os_user: String,
    pub environments: Vec<EnvironmentResponse>,
}

/// Who am I, and what may I do in each environment?
#[utoipa::path(
    tag = "meta",
    responses(
        (status = 200, description = "The caller", body = MeResponse),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/me")]
pub async fn get_me(ctx: web::Data<Context>, user: AuthUser) -> HttpResponse {
    let me = user.0;
    let environments = ctx
        .settings
        .environments
        .iter()
        .map(|(name, p)| EnvironmentResponse {
            name: name.clone(),
            max_minutes: p.max_minutes,
            auto_approve_max_minutes: p.auto_approve_max_minutes,
            auto_approve_others: p.auto_approve_others,
            approver_group: p.approver_group.clone(),
            sudo: p.sudo,
            may_request: p.requester_group.as_ref().is_none_or(|g| me.in_group(g)),
            may_approve: me.in_group(&p.approver_group),
        })
        .collect();
    HttpResponse::Ok().json(MeResponse {
        os_user: me.id.os_user().into_inner(),
        id: me.id.into_inner(),
        name: me.name,
        email: me.email,
        groups: me.groups.into_iter().collect(),
        environments,
    })
}

/// A demo identity with a ready token.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DemoIdentityResponse {
    pub sub: String,
    pub name: String,
    pub groups: Vec<String>,
    /// A bearer token for this identity, valid for 8 hours.
    pub token: String,
}

/// Demo only: the identities the sign-in page offers. `404` unless the server was started with
/// `auth.demo_identities` (never in production). No authentication.
#[utoipa::path(
    tag = "meta",
    responses(
        (status = 200, description = "Identities with tokens", body = [DemoIdentityResponse]),
        (status = 404, description = "Demo identities are off", body = ErrorBody),
    )
)]
#[get("/api/v1/demo/identities")]
pub async fn demo_identities(ctx: web::Data<Context>) -> Result<HttpResponse, ApiError> {
    let identities = ctx.tokens.demo_identities();
    if identities.is_empty() {
        return Err(ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            "demo identities are off",
        ));
    }
    let now = ctx.clock.now();
    let mut out = Vec::new();
    for d in identities {
        let sub =
            crate::domain::SubjectId::parse(&d.sub).map_err(|e| ApiError::internal(e.message))?;
        let token = ctx
            .tokens
            .issue(
                &sub,
                Some(d.name.clone()),
                None,
                d.groups.clone(),
                now,
                chrono::Duration::hours(8),
            )
            .map_err(ApiError::internal)?;
        out.push(DemoIdentityResponse {
            sub: d.sub.clone(),
            name: d.name.clone(),
            groups: d.groups.clone(),
            token,
        });
    }
    Ok(HttpResponse::Ok().json(out))
}
