//! Requests, their subjects (with keys) and their grants (subject × instance).

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{GrantRow, RequestRow, SubjectRow};
use super::schema::{grants, os_accounts, request_subjects, requests};
use super::{DbConnection, DbResult};
use crate::domain::{GrantStatus, RequestStatus};

pub fn insert(
    conn: &mut DbConnection,
    request: &RequestRow,
    subjects: &[SubjectRow],
    grant_rows: &[GrantRow],
) -> DbResult<()> {
    diesel::insert_into(requests::table)
        .values(request)
        .execute(conn)?;
    for subject in subjects {
        diesel::insert_into(request_subjects::table)
            .values(subject)
            .execute(conn)?;
    }
    // Batch inserts do not compile on the multi-backend connection; dispatch per backend.
    for chunk in grant_rows.chunks(200) {
        match conn {
            DbConnection::Postgres(c) => {
                diesel::insert_into(grants::table)
                    .values(chunk)
                    .execute(c)?;
            }
            DbConnection::Sqlite(c) => {
                diesel::insert_into(grants::table)
                    .values(chunk)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}

pub fn get(conn: &mut DbConnection, id: &str) -> DbResult<Option<RequestRow>> {
    Ok(requests::table
        .find(id)
        .select(RequestRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn subjects(conn: &mut DbConnection, request_id: &str) -> DbResult<Vec<SubjectRow>> {
    Ok(request_subjects::table
        .filter(request_subjects::request_id.eq(request_id))
        .order(request_subjects::subject.asc())
        .select(SubjectRow::as_select())
        .load(conn)?)
}

pub fn grants(conn: &mut DbConnection, request_id: &str) -> DbResult<Vec<GrantRow>> {
    Ok(grants::table
        .filter(grants::request_id.eq(request_id))
        .order((grants::subject.asc(), grants::instance_id.asc()))
        .select(GrantRow::as_select())
        .load(conn)?)
}

/// Moves a request from one of `from` to `to`. Returns false when it was not in one of `from` (somebody
/// else moved it first), so that callers can answer 409 and transitions stay idempotent.
pub fn set_status(
    conn: &mut DbConnection,
    id: &str,
    from: &[RequestStatus],
    to: RequestStatus,
    now: NaiveDateTime,
) -> DbResult<bool> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let changed = diesel::update(
        requests::table
            .find(id)
            .filter(requests::status.eq_any(from)),
    )
    .set((
        requests::status.eq(to.as_str()),
        requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Records that access is to end while it is still being granted (the worker revokes as soon as the
/// create commands are done). Returns false unless the request is granting and not ended already.
pub fn end_while_granting(
    conn: &mut DbConnection,
    id: &str,
    by: &str,
    now: NaiveDateTime,
) -> DbResult<bool> {
    let changed = diesel::update(
        requests::table
            .find(id)
            .filter(requests::status.eq(RequestStatus::Granting.as_str()))
            .filter(requests::ended_by.is_null()),
    )
    .set((
        requests::ended_at.eq(Some(now)),
        requests::ended_by.eq(Some(by)),
        requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

/// Granting → active, unless somebody asked meanwhile to end the access. Returns whether it moved.
pub fn activate(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> DbResult<bool> {
    let changed = diesel::update(
        requests::table
            .find(id)
            .filter(requests::status.eq(RequestStatus::Granting.as_str()))
            .filter(requests::ended_by.is_null()),
    )
    .set((
        requests::status.eq(RequestStatus::Active.as_str()),
        requests::activated_at.eq(Some(now)),
        requests::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(changed == 1)
}

pub fn set_decision(
    conn: &mut DbConnection,
    id: &str,
    by: &str,
    at: NaiveDateTime,
    comment: Option<&str>,
) -> DbResult<()> {
    diesel::update(requests::table.find(id))
        .set((
            requests::decided_by.eq(Some(by)),
            requests::decided_at.eq(Some(at)),
            requests::decision_comment.eq(comment),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn set_expires_at(conn: &mut DbConnection, id: &str, at: NaiveDateTime) -> DbResult<()> {
    diesel::update(requests::table.find(id))
        .set(requests::expires_at.eq(Some(at)))
        .execute(conn)?;
    Ok(())
}

pub fn set_ended(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
    by: Option<&str>,
) -> DbResult<()> {
    diesel::update(requests::table.find(id))
        .set((requests::ended_at.eq(Some(at)), requests::ended_by.eq(by)))
        .execute(conn)?;
    Ok(())
}

/// Stores a subject's freshly generated key pair unless one is already there (a resumed grant keeps
/// the key it generated first). Returns whether this call stored it.
pub fn store_key(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    public_key: &str,
    private_key_sealed: &str,
) -> DbResult<bool> {
    let stored = diesel::update(
        request_subjects::table
            .find((request_id, subject))
            .filter(request_subjects::public_key.is_null()),
    )
    .set((
        request_subjects::public_key.eq(Some(public_key)),
        request_subjects::private_key_sealed.eq(Some(private_key_sealed)),
    ))
    .execute(conn)?;
    Ok(stored == 1)
}

/// What a subject collects, still sealed.
#[derive(Debug, Default)]
pub struct SealedCredentials {
    pub private_key: Option<String>,
    /// (instance id, sealed password) of the subject's Windows grants.
    pub passwords: Vec<(String, String)>,
}

/// What [`take_credentials`] found.
#[derive(Debug)]
pub enum Taken {
    Credentials(SealedCredentials),
    /// Collected before.
    AlreadyCollected,
    /// The request is not active (any more): its status.
    NotActive(String),
}

/// Takes a subject's credentials out of storage: marks them collected and wipes them in one
/// transaction, so that they are handed out at most once even when two calls race. The request row
/// is locked first (PostgreSQL; SQLite has one writer), so a revoke that commits meanwhile wins: no
/// key leaves once ending the access has begun.
pub fn take_credentials(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    now: NaiveDateTime,
) -> DbResult<Taken> {
    conn.transaction(|conn| {
        let (status, expires_at): (String, Option<NaiveDateTime>) = match conn {
            DbConnection::Postgres(c) => requests::table
                .find(request_id)
                .select((requests::status, requests::expires_at))
                .for_update()
                .first(c)?,
            DbConnection::Sqlite(c) => requests::table
                .find(request_id)
                .select((requests::status, requests::expires_at))
                .first(c)?,
        };
        if status != RequestStatus::Active.as_str() {
            return Ok(Taken::NotActive(status));
        }
        // The end of access has come even if the revoke has not run yet (worker busy or down).
        if expires_at.is_none_or(|end| end <= now) {
            return Ok(Taken::NotActive("past its end of access".into()));
        }
        let private_key: Option<Option<String>> = request_subjects::table
            .find((request_id, subject))
            .filter(request_subjects::key_collected_at.is_null())
            .select(request_subjects::private_key_sealed)
            .first(conn)
            .optional()?;
        let Some(private_key) = private_key else {
            return Ok(Taken::AlreadyCollected);
        };
        let taken = diesel::update(
            request_subjects::table
                .find((request_id, subject))
                .filter(request_subjects::key_collected_at.is_null()),
        )
        .set((
            request_subjects::private_key_sealed.eq(None::<String>),
            request_subjects::key_collected_at.eq(Some(now)),
        ))
        .execute(conn)?;
        if taken != 1 {
            return Ok(Taken::AlreadyCollected);
        }
        let passwords: Vec<(String, Option<String>)> = grants::table
            .filter(grants::request_id.eq(request_id))
            .filter(grants::subject.eq(subject))
            .filter(grants::secret_sealed.is_not_null())
            .select((grants::instance_id, grants::secret_sealed))
            .load(conn)?;
        diesel::update(
            grants::table
                .filter(grants::request_id.eq(request_id))
                .filter(grants::subject.eq(subject)),
        )
        .set(grants::secret_sealed.eq(None::<String>))
        .execute(conn)?;
        Ok(Taken::Credentials(SealedCredentials {
            private_key,
            passwords: passwords
                .into_iter()
                .filter_map(|(instance, secret)| Some((instance, secret?)))
                .collect(),
        }))
    })
}

/// Stores a subject's one-time password key unless one is already there.
pub fn store_password_key(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    public: &str,
    sealed: &str,
) -> DbResult<bool> {
    let stored = diesel::update(
        request_subjects::table
            .find((request_id, subject))
            .filter(request_subjects::password_key_public.is_null()),
    )
    .set((
        request_subjects::password_key_public.eq(Some(public)),
        request_subjects::password_key_sealed.eq(Some(sealed)),
    ))
    .execute(conn)?;
    Ok(stored == 1)
}

/// Stores the sealed password a Windows grant produced.
pub fn set_grant_secret(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    instance_id: &str,
    sealed: &str,
) -> DbResult<()> {
    diesel::update(grants::table.find((request_id, subject, instance_id)))
        .set(grants::secret_sealed.eq(Some(sealed)))
        .execute(conn)?;
    Ok(())
}

/// Wipes every secret of a request that is still stored: private keys, password keys, passwords.
pub fn wipe_private_keys(conn: &mut DbConnection, request_id: &str) -> DbResult<usize> {
    let keys = diesel::update(
        request_subjects::table
            .filter(request_subjects::request_id.eq(request_id))
            .filter(
                request_subjects::private_key_sealed
                    .is_not_null()
                    .or(request_subjects::password_key_sealed.is_not_null()),
            ),
    )
    .set((
        request_subjects::private_key_sealed.eq(None::<String>),
        request_subjects::password_key_sealed.eq(None::<String>),
    ))
    .execute(conn)?;
    let passwords = diesel::update(
        grants::table
            .filter(grants::request_id.eq(request_id))
            .filter(grants::secret_sealed.is_not_null()),
    )
    .set(grants::secret_sealed.eq(None::<String>))
    .execute(conn)?;
    Ok(keys + passwords)
}

/// Sets the status of grants (all of one subject's grants in `instance_ids`) and the command that
/// acts on them.
pub fn set_grants(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    instance_ids: &[String],
    status: GrantStatus,
    command_id: Option<&str>,
    sent_at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> DbResult<()> {
    diesel::update(
        grants::table
            .filter(grants::request_id.eq(request_id))
            .filter(grants::subject.eq(subject))
            .filter(grants::instance_id.eq_any(instance_ids)),
    )
    .set((
        grants::status.eq(status.as_str()),
        grants::command_id.eq(command_id),
        grants::sent_at.eq(sent_at),
        grants::last_error.eq(None::<String>),
        grants::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records the final outcome of one grant's command.
pub fn finish_grant(
    conn: &mut DbConnection,
    request_id: &str,
    subject: &str,
    instance_id: &str,
    status: GrantStatus,
    error: Option<&str>,
    now: NaiveDateTime,
) -> DbResult<()> {
    diesel::update(grants::table.find((request_id, subject, instance_id)))
        .set((
            grants::status.eq(status.as_str()),
            grants::last_error.eq(error),
            grants::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

#[derive(Debug, Default, Clone)]
pub struct ListFilter {
    pub status: Option<String>,
    /// Only requests that ended (expired, revoked, rejected, canceled, failed).
    pub finished: bool,
    /// Only requests made at or after this time.
    pub from: Option<NaiveDateTime>,
    /// Only requests made at or before this time.
    pub to: Option<NaiveDateTime>,
    pub environment: Option<String>,
    /// Only requests that ask access for this subject or were made by them.
    pub person: Option<String>,
    /// Keyset cursor: only requests older than (created_at, id).
    pub before: Option<(NaiveDateTime, String)>,
    /// Only requests the user may decide: of an environment they approve, neither made by them nor
    /// granting them access. Filtered in the query, so pages and cursors stay exact.
    pub decidable_only: bool,
    pub limit: i64,
}

/// Requests the caller may see: those they made, those that grant them access, and those of the
/// environments they approve. Newest first; one extra row tells whether another page follows.
pub fn list_visible(
    conn: &mut DbConnection,
    user: &str,
    approver_of: &[String],
    filter: &ListFilter,
) -> DbResult<Vec<RequestRow>> {
    let as_subject = request_subjects::table
        .filter(request_subjects::subject.eq(user.to_owned()))
        .select(request_subjects::request_id);
    let mut query = if filter.decidable_only {
        requests::table
            .filter(requests::environment.eq_any(approver_of.to_vec()))
            .filter(requests::requester.ne(user.to_owned()))
            .filter(diesel::dsl::not(requests::id.eq_any(as_subject)))
            .into_boxed()
    } else {
        requests::table
            .filter(
                requests::requester
                    .eq(user.to_owned())
                    .or(requests::id.eq_any(as_subject))
                    .or(requests::environment.eq_any(approver_of.to_vec())),
            )
            .into_boxed()
    };
    if let Some(status) = &filter.status {
        query = query.filter(requests::status.eq(status.clone()));
    }
    if let Some(env) = &filter.environment {
        query = query.filter(requests::environment.eq(env.clone()));
    }
    if filter.finished {
        let finished: Vec<&str> = RequestStatus::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        query = query.filter(requests::status.eq_any(finished));
    }
    if let Some(from) = filter.from {
        query = query.filter(requests::created_at.ge(from));
    }
    if let Some(to) = filter.to {
        query = query.filter(requests::created_at.le(to));
    }
    if let Some(person) = &filter.person {
        let for_person = request_subjects::table
            .filter(request_subjects::subject.eq(person.clone()))
            .select(request_subjects::request_id);
        query = query.filter(
            requests::requester
                .eq(person.clone())
                .or(requests::id.eq_any(for_person)),
        );
    }
    if let Some((at, id)) = &filter.before {
        query = query.filter(
            requests::created_at.lt(*at).or(requests::created_at
                .eq(*at)
                .and(requests::id.lt(id.clone()))),
        );
    }
    Ok(query
        .order((requests::created_at.desc(), requests::id.desc()))
        .limit(filter.limit + 1)
        .select(RequestRow::as_select())
        .load(conn)?)
}

/// Whether `subject` is one of the request's subjects.
pub fn is_subject(conn: &mut DbConnection, request_id: &str, subject: &str) -> DbResult<bool> {
    let n: i64 = request_subjects::table
        .filter(request_subjects::request_id.eq(request_id))
        .filter(request_subjects::subject.eq(subject))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// Requests a person made that have not ended yet.
pub fn count_open_by_requester(conn: &mut DbConnection, requester: &str) -> DbResult<i64> {
    let open: Vec<&str> = RequestStatus::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| s.as_str())
        .collect();
    Ok(requests::table
        .filter(requests::requester.eq(requester))
        .filter(requests::status.eq_any(open))
        .count()
        .get_result(conn)?)
}

/// Claims OS account names for `subject`: each name is recorded for the first id that derives it.
/// Returns another id that holds one of them, if any (the caller refuses the request then). Run it in
/// the transaction that stores the request: the primary key settles races between two requests.
pub fn claim_os_accounts(
    conn: &mut DbConnection,
    subject: &str,
    names: &[&str],
    now: NaiveDateTime,
) -> DbResult<Option<String>> {
    for name in names {
        let row = (
            os_accounts::name.eq(*name),
            os_accounts::subject.eq(subject),
            os_accounts::created_at.eq(now),
        );
        match conn {
            DbConnection::Postgres(c) => {
                diesel::insert_into(os_accounts::table)
                    .values(row)
                    .on_conflict_do_nothing()
                    .execute(c)?;
            }
            DbConnection::Sqlite(c) => {
                diesel::insert_or_ignore_into(os_accounts::table)
                    .values(row)
                    .execute(c)?;
            }
        }
        let holder: String = os_accounts::table
            .find(*name)
            .select(os_accounts::subject)
            .first(conn)?;
        if holder != subject {
            return Ok(Some(holder));
        }
    }
    Ok(None)
}

/// Serialises request creation per requester until the transaction ends, so that the open-request
/// limit holds under concurrent calls. SQLite has one writer connection, which serialises already.
pub fn lock_requester(conn: &mut DbConnection, requester: &str) -> DbResult<()> {
    if let DbConnection::Postgres(c) = conn {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind::<diesel::sql_types::Text, _>(requester)
            .execute(c)?;
    }
    Ok(())
}

/// (request id, subject) of every subject of these requests.
pub fn subjects_of(conn: &mut DbConnection, ids: &[String]) -> DbResult<Vec<(String, String)>> {
    Ok(request_subjects::table
        .filter(request_subjects::request_id.eq_any(ids))
        .order((
            request_subjects::request_id.asc(),
            request_subjects::subject.asc(),
        ))
        .select((request_subjects::request_id, request_subjects::subject))
        .load(conn)?)
}

/// (request id, subject, instance id, status) of every grant of these requests.
pub fn grants_of(
    conn: &mut DbConnection,
    ids: &[String],
) -> DbResult<Vec<(String, String, String, String)>> {
    Ok(grants::table
        .filter(grants::request_id.eq_any(ids))
        .select((
            grants::request_id,
            grants::subject,
            grants::instance_id,
            grants::status,
        ))
        .order((
            grants::request_id.asc(),
            grants::instance_id.asc(),
            grants::subject.asc(),
        ))
        .load(conn)?)
}
