//! `GET /api/v1/instances`: search the inventory.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, get, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::AuthUser;
use crate::config::Settings;
use crate::context::Context;
use crate::db::models::InstanceRow;
use crate::service::ServiceError;
use crate::service::inventory::{self, SearchQuery};

/// Search filters. All are optional and combine with AND.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Free text over id, Name tag, private/public IP, private DNS name and tag values (case-insensitive).
    pub q: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// `linux` or `windows`.
    pub platform: Option<String>,
    /// EC2 state, e.g. `running`.
    pub state: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Page size, 1-200 (default 50).
    pub limit: Option<i64>,
}

/// An instance from the server's inventory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstanceResponse {
    #[schema(example = "i-0123456789abcdef0")]
    pub id: String,
    /// The `Name` tag (empty when absent).
    pub name: String,
    /// The configured environment the instance belongs to, if any.
    pub environment: Option<String>,
    /// `linux` or `windows`.
    pub platform: String,
    /// EC2 state, e.g. `running`.
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub private_dns: Option<String>,
    pub region: String,
    pub account_id: String,
    pub tags: BTreeMap<String, String>,
    /// SSM agent ping status (`Online`, `ConnectionLost`, `Inactive`, `NotRegistered`); absent when unknown.
    pub agent_status: Option<String>,
    /// Whether access to this instance can be requested now.
    pub grantable: bool,
    /// Why not, when it cannot.
    pub not_grantable_reason: Option<String>,
}

impl InstanceResponse {
    pub fn from_row(settings: &Settings, row: InstanceRow) -> Self {
        let reason = inventory::not_grantable_reason(settings, &row);
        Self {
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            id: row.id,
            name: row.name,
            environment: row.environment,
            platform: row.platform,
            state: row.state,
            private_ip: row.private_ip,
            public_ip: row.public_ip,
            private_dns: row.private_dns,
            region: row.region,
            account_id: row.account_id,
            agent_status: row.agent_status,
            grantable: reason.is_none(),
            not_grantable_reason: reason,
        }
    }
}

/// One page of instances, ordered by id.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct InstancePage {
    pub items: Vec<InstanceResponse>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// Search the inventory.
#[utoipa::path(
    tag = "instances",
    params(SearchParams),
    responses(
        (status = 200, description = "One page of instances", body = InstancePage),
        (status = 400, description = "`invalid_query`: an unknown parameter or a value of the wrong type", body = ErrorBody),
        (status = 401, description = "No valid bearer token", body = ErrorBody),
        (status = 422, description = "A filter is invalid", body = ErrorBody),
    ),
    security(("bearer" = []))
)]
#[get("/api/v1/instances")]
pub async fn search_instances(
    ctx: web::Data<Context>,
    _user: AuthUser,
    params: web::Query<SearchParams>,
) -> Result<HttpResponse, ApiError> {
    let p = params.into_inner();
    let query = SearchQuery {
        text: p.q,
        environment: p.environment,
        platform: p.platform,
        state: p.state,
        cursor: p.cursor,
        limit: p.limit,
    };
    let page = ctx
        .db(move |conn| inventory::search(conn, query))
        .await
        .map_err(|e: ServiceError| ApiError::from(e))?;
    Ok(HttpResponse::Ok().json(InstancePage {
        items: page
            .items
            .into_iter()
            .map(|row| InstanceResponse::from_row(&ctx.settings, row))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
