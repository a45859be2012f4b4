//! Inventory: read every configured region from EC2 (and SSM for agent status) into the `instances`
//! table, and search that table. Search never calls AWS.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::aws::DiscoveredInstance;
use crate::config::Settings;
use crate::context::Context;
use crate::db::models::InstanceRow;
use crate::db::{self, DbConnection, DbError};
use crate::domain::{EnvironmentName, Platform};

use super::ServiceError;

#[derive(Debug, Default, Clone)]
pub struct SyncReport {
    pub regions: usize,
    pub instances: usize,
    pub removed: usize,
    /// Regions that could not be read, with the reason (the previous inventory of those is kept).
    pub errors: Vec<(String, String)>,
}

/// The environment of an instance: the account mapping wins, then the configured tag, and only names
/// of configured environments count.
pub fn environment_of(settings: &Settings, instance: &DiscoveredInstance) -> Option<String> {
    let name = settings
        .inventory
        .account_environments
        .get(&instance.account_id)
        .cloned()
        .or_else(|| {
            instance
                .tags
                .get(&settings.inventory.environment_tag)
                .cloned()
        })?;
    let name = EnvironmentName::parse(&name.trim().to_lowercase()).ok()?;
    settings
        .environments
        .contains_key(name.as_str())
        .then(|| name.into_inner())
}

fn to_row(
    settings: &Settings,
    instance: &DiscoveredInstance,
    agents: Option<&HashMap<String, String>>,
    synced_at: chrono::NaiveDateTime,
) -> InstanceRow {
    let mut search = vec![instance.id.clone(), instance.name.clone()];
    search.extend(instance.private_ip.clone());
    search.extend(instance.public_ip.clone());
    search.extend(instance.private_dns.clone());
    search.extend(instance.tags.values().cloned());
    InstanceRow {
        id: instance.id.clone(),
        account_id: instance.account_id.clone(),
        region: instance.region.clone(),
        name: instance.name.clone(),
        environment: environment_of(settings, instance),
        platform: instance.platform.as_str().to_owned(),
        state: instance.state.clone(),
        private_ip: instance.private_ip.clone(),
        public_ip: instance.public_ip.clone(),
        private_dns: instance.private_dns.clone(),
        tags: serde_json::to_string(&instance.tags).unwrap_or_else(|_| "{}".into()),
        agent_status: agents.map(|a| {
            a.get(&instance.id)
                .cloned()
                .unwrap_or_else(|| "NotRegistered".into())
        }),
        search_text: search.join("\n").to_lowercase(),
        synced_at,
    }
}

/// Reads every configured region. A region that fails keeps its previous inventory.
pub async fn sync(ctx: &Context) -> SyncReport {
    let mut report = SyncReport::default();
    for region in ctx.settings.aws.regions.clone() {
        let instances = match ctx.fleet.describe_instances(&region).await {
            Ok(instances) => instances,
            Err(e) => {
                tracing::warn!(%region, error = %e, "inventory: DescribeInstances failed");
                report.errors.push((region.clone(), e.to_string()));
                continue;
            }
        };
        let agents = match ctx.fleet.agent_statuses(&region).await {
            Ok(agents) => Some(agents),
            Err(e) => {
                tracing::warn!(%region, error = %e, "inventory: DescribeInstanceInformation failed; agent status unknown");
                None
            }
        };
        let synced_at = ctx.clock.now_naive();
        let rows: Vec<InstanceRow> = instances
            .iter()
            .map(|i| to_row(&ctx.settings, i, agents.as_ref(), synced_at))
            .collect();
        let count = rows.len();
        let region_name = region.clone();
        match ctx
            .db(move |conn| db::instances::replace_region(conn, &region_name, &rows, synced_at))
            .await
        {
            Ok(removed) => {
                report.regions += 1;
                report.instances += count;
                report.removed += removed;
            }
            Err(e) => {
                let e: DbError = e;
                tracing::error!(%region, error = %e, "inventory: storing the inventory failed");
                report.errors.push((region, e.to_string()));
            }
        }
    }
    tracing::info!(
        regions = report.regions,
        instances = report.instances,
        removed = report.removed,
        "inventory synced"
    );
    report
}

/// Why an instance cannot be granted right now, if it cannot.
pub fn not_grantable_reason(settings: &Settings, row: &InstanceRow) -> Option<String> {
    let Some(env) = &row.environment else {
        return Some(format!(
            "it has no {} tag naming a configured environment",
            settings.inventory.environment_tag
        ));
    };
    if !settings.environments.contains_key(env) {
        return Some(format!("environment {env} is not configured"));
    }
    if row.state != "running" {
        return Some(format!("it is {}, not running", row.state));
    }
    if Platform::parse(&row.platform).is_none() {
        return Some(format!("platform {} is not supported", row.platform));
    }
    if let Some(agent) = &row.agent_status
        && agent != "Online"
    {
        return Some(format!("its SSM agent is {agent}"));
    }
    None
}

#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    pub text: Option<String>,
    pub environment: Option<String>,
    pub platform: Option<String>,
    pub state: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

pub struct SearchPage {
    pub items: Vec<InstanceRow>,
    pub next_cursor: Option<String>,
}

pub const MAX_PAGE: i64 = 200;
pub const DEFAULT_PAGE: i64 = 50;

pub fn search(conn: &mut DbConnection, query: SearchQuery) -> Result<SearchPage, ServiceError> {
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ServiceError::invalid(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ));
    }
    let text = query
        .text
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty());
    if let Some(t) = &text
        && (t.chars().count() > 200 || t.chars().any(|c| c.is_control()))
    {
        return Err(ServiceError::invalid(
            "invalid_search_text",
            "q must be at most 200 characters without control characters",
        ));
    }
    if let Some(env) = &query.environment {
        EnvironmentName::parse(env)?;
    }
    if let Some(p) = &query.platform
        && Platform::parse(p).is_none()
    {
        return Err(ServiceError::invalid(
            "invalid_platform",
            "platform must be linux or windows",
        ));
    }
    if let Some(s) = &query.state
        && ![
            "pending",
            "running",
            "stopping",
            "stopped",
            "shutting-down",
            "terminated",
        ]
        .contains(&s.as_str())
    {
        return Err(ServiceError::invalid(
            "invalid_instance_state",
            "state must be an EC2 instance state (pending, running, stopping, stopped, shutting-down, terminated)",
        ));
    }
    let after = match query.cursor.filter(|c| !c.is_empty()) {
        None => None,
        Some(c) => Some(
            URL_SAFE_NO_PAD
                .decode(c.as_bytes())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .filter(|id| crate::domain::InstanceId::parse(id).is_ok())
                .ok_or_else(|| {
                    ServiceError::invalid("invalid_cursor", "cursor is not one this server issued")
                })?,
        ),
    };
    let mut items = db::instances::search(
        conn,
        &db::instances::SearchFilter {
            text,
            environment: query.environment,
            platform: query.platform,
            state: query.state,
            after,
            limit,
        },
    )?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items
            .last()
            .map(|last| URL_SAFE_NO_PAD.encode(last.id.as_bytes()))
    } else {
        None
    };
    Ok(SearchPage { items, next_cursor })
}
