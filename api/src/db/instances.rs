//! The inventory table.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::InstanceRow;
use super::schema::instances;
use super::{DbConnection, DbResult, like_escape};

/// Replaces the inventory of one region with what was just read from AWS: upserts every row and removes
/// the instances of that region that are no longer reported.
pub fn replace_region(
    conn: &mut DbConnection,
    region: &str,
    rows: &[InstanceRow],
    synced_at: NaiveDateTime,
) -> DbResult<usize> {
    conn.transaction(|conn| {
        for row in rows {
            let updated = diesel::update(instances::table.find(&row.id))
                .set(row)
                .execute(conn)?;
            if updated == 0 {
                diesel::insert_into(instances::table)
                    .values(row)
                    .execute(conn)?;
            }
        }
        let removed = diesel::delete(
            instances::table
                .filter(instances::region.eq(region))
                .filter(instances::synced_at.lt(synced_at)),
        )
        .execute(conn)?;
        Ok(removed)
    })
}

#[derive(Debug, Default, Clone)]
pub struct SearchFilter {
    pub text: Option<String>,
    pub environment: Option<String>,
    pub platform: Option<String>,
    pub state: Option<String>,
    /// Only instances whose id sorts after this one (keyset paging).
    pub after: Option<String>,
    pub limit: i64,
}

/// One page of instances ordered by id; asks for one extra row to know whether another page follows.
pub fn search(conn: &mut DbConnection, filter: &SearchFilter) -> DbResult<Vec<InstanceRow>> {
    let mut query = instances::table.into_boxed();
    if let Some(text) = &filter.text {
        let pattern = format!("%{}%", like_escape(&text.to_lowercase()));
        query = query.filter(instances::search_text.like(pattern).escape('\\'));
    }
    if let Some(env) = &filter.environment {
        query = query.filter(instances::environment.eq(env));
    }
    if let Some(platform) = &filter.platform {
        query = query.filter(instances::platform.eq(platform));
    }
    if let Some(state) = &filter.state {
        query = query.filter(instances::state.eq(state));
    }
    if let Some(after) = &filter.after {
        query = query.filter(instances::id.gt(after));
    }
    Ok(query
        .order(instances::id.asc())
        .limit(filter.limit + 1)
        .select(InstanceRow::as_select())
        .load(conn)?)
}

pub fn by_ids(conn: &mut DbConnection, ids: &[String]) -> DbResult<Vec<InstanceRow>> {
    Ok(instances::table
        .filter(instances::id.eq_any(ids))
        .select(InstanceRow::as_select())
        .load(conn)?)
}

pub fn count(conn: &mut DbConnection) -> DbResult<i64> {
    Ok(instances::table.count().get_result(conn)?)
}
