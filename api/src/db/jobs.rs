//! The job table. A job is claimed with a lease (a conditional UPDATE that only one replica can win),
//! so several replicas may share one database; a crashed replica's lease runs out and another resumes.

use chrono::{Duration, NaiveDateTime};
use diesel::prelude::*;

use super::models::JobRow;
use super::schema::jobs;
use super::{DbConnection, DbResult};

/// What a job does; its id is `<kind>:<request id>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Create the accounts of an approved request and follow the commands to the end.
    Grant,
    /// Remove the accounts of a request that ended (or failed) and follow the commands to the end.
    Revoke,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Grant => "grant",
            JobKind::Revoke => "revoke",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "grant" => Some(JobKind::Grant),
            "revoke" => Some(JobKind::Revoke),
            _ => None,
        }
    }
}

pub fn job_id(kind: JobKind, request_id: &str) -> String {
    format!("{}:{request_id}", kind.as_str())
}

/// Queues a job, or moves an existing one earlier if `run_at` is sooner.
pub fn enqueue(
    conn: &mut DbConnection,
    kind: JobKind,
    request_id: &str,
    run_at: NaiveDateTime,
    now: NaiveDateTime,
) -> DbResult<()> {
    let id = job_id(kind, request_id);
    let existing: Option<NaiveDateTime> = jobs::table
        .find(&id)
        .select(jobs::run_at)
        .first(conn)
        .optional()?;
    match existing {
        Some(current) if current <= run_at => {}
        Some(_) => {
            diesel::update(jobs::table.find(&id))
                .set(jobs::run_at.eq(run_at))
                .execute(conn)?;
        }
        None => {
            let row = JobRow {
                id,
                kind: kind.as_str().to_owned(),
                request_id: request_id.to_owned(),
                run_at,
                attempts: 0,
                locked_until: None,
                locked_by: None,
                last_error: None,
                created_at: now,
            };
            diesel::insert_into(jobs::table)
                .values(&row)
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Claims a due job that nobody holds a live lease on: revokes first (ending access must never wait
/// behind a queue of grants), then the earliest.
pub fn claim_due(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease: Duration,
    worker_id: &str,
) -> DbResult<Option<JobRow>> {
    let free = jobs::locked_until.is_null().or(jobs::locked_until.lt(now));
    let candidates: Vec<String> = jobs::table
        .filter(jobs::run_at.le(now))
        .filter(free)
        // "revoke" sorts after "grant": descending kind puts revokes first.
        .order((jobs::kind.desc(), jobs::run_at.asc(), jobs::id.asc()))
        .select(jobs::id)
        .limit(8)
        .load(conn)?;
    for id in candidates {
        let free = jobs::locked_until.is_null().or(jobs::locked_until.lt(now));
        let won = diesel::update(jobs::table.find(&id).filter(free))
            .set((
                jobs::locked_until.eq(Some(now + lease)),
                jobs::locked_by.eq(Some(worker_id)),
            ))
            .execute(conn)?;
        if won == 1 {
            let job = jobs::table
                .find(&id)
                .select(JobRow::as_select())
                .first(conn)?;
            return Ok(Some(job));
        }
    }
    Ok(None)
}

/// Extends this worker's lease on a job. Returns false when another worker holds it now (this one's
/// lease ran out): the step must stop before it sends anything more.
pub fn renew(
    conn: &mut DbConnection,
    id: &str,
    worker_id: &str,
    until: NaiveDateTime,
) -> DbResult<bool> {
    let renewed = diesel::update(jobs::table.find(id).filter(jobs::locked_by.eq(worker_id)))
        .set(jobs::locked_until.eq(Some(until)))
        .execute(conn)?;
    Ok(renewed == 1)
}

/// The job is done: remove it (only if this worker still holds it).
pub fn complete(conn: &mut DbConnection, id: &str, worker_id: &str) -> DbResult<()> {
    diesel::delete(jobs::table.find(id).filter(jobs::locked_by.eq(worker_id))).execute(conn)?;
    Ok(())
}

/// Releases the job to run again at `run_at`; `error` counts as a failed attempt.
pub fn release(
    conn: &mut DbConnection,
    id: &str,
    worker_id: &str,
    run_at: NaiveDateTime,
    error: Option<&str>,
) -> DbResult<()> {
    let target = jobs::table.find(id).filter(jobs::locked_by.eq(worker_id));
    match error {
        Some(error) => diesel::update(target)
            .set((
                jobs::run_at.eq(run_at),
                jobs::locked_until.eq(None::<NaiveDateTime>),
                jobs::locked_by.eq(None::<String>),
                jobs::attempts.eq(jobs::attempts + 1),
                jobs::last_error.eq(Some(error)),
            ))
            .execute(conn)?,
        None => diesel::update(target)
            .set((
                jobs::run_at.eq(run_at),
                jobs::locked_until.eq(None::<NaiveDateTime>),
                jobs::locked_by.eq(None::<String>),
            ))
            .execute(conn)?,
    };
    Ok(())
}

/// When the next job is due (ignoring leases), to know how long the worker may sleep.
pub fn next_run_at(conn: &mut DbConnection) -> DbResult<Option<NaiveDateTime>> {
    Ok(jobs::table
        .select(diesel::dsl::min(jobs::run_at))
        .first::<Option<NaiveDateTime>>(conn)?)
}

pub fn all(conn: &mut DbConnection) -> DbResult<Vec<JobRow>> {
    Ok(jobs::table
        .order(jobs::run_at.asc())
        .select(JobRow::as_select())
        .load(conn)?)
}
