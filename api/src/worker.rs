//! The grant/revoke worker. [`Worker::run_once`] claims one due job, runs one step of it and returns
//! what happened; [`Worker::run`] loops over it. Jobs are idempotent: every step starts from what the
//! database says, the SSM documents tolerate re-runs, so a job resumed by another replica after a crash
//! does the right thing.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Duration, NaiveDateTime};
use rand::Rng;
use serde_json::json;

use crate::aws::{AwsError, CommandSpec, InvocationState};
use crate::clock::to_utc;
use crate::context::Context;
use crate::crypto;
use crate::db::events::{self, Event};
use crate::db::jobs::{self, JobKind};
use crate::db::models::{GrantRow, JobRow, RequestRow, SubjectRow};
use crate::db::{self, DbConnection, DbError};
use crate::documents::DocumentKind;
use crate::domain::{GrantStatus, Platform, RequestStatus, expiry_parameter};
use crate::service::requests::{
    end_of_access, grant_secret_context, key_context, password_key_context,
};

/// Seconds SSM may take to deliver a command to an instance (`SendCommand` `TimeoutSeconds`).
pub const DELIVERY_TIMEOUT_SECONDS: i32 = 60;
/// SSM accepts at most 50 instance ids per `SendCommand`.
pub const MAX_TARGETS_PER_COMMAND: usize = 50;
/// After this many failed attempts of a revoke, operators are alerted (and retries go on).
pub const REVOKE_ALERT_AFTER: i32 = 3;
/// Failed sends of a create command before the grants are given up as failed.
pub const GRANT_SEND_ATTEMPTS: i32 = 5;

/// What one call of [`Worker::run_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunOutcome {
    /// No job was due.
    Idle,
    /// The job finished.
    Done { job: String },
    /// The job is waiting for commands to finish and runs again at `until`.
    Waiting { job: String, until: NaiveDateTime },
    /// The step failed; the job is retried at `until`.
    Retry {
        job: String,
        until: NaiveDateTime,
        error: String,
    },
}

enum Step {
    Done,
    WaitUntil(NaiveDateTime),
}

#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("{0}")]
    Other(String),
}

impl From<diesel::result::Error> for JobError {
    fn from(e: diesel::result::Error) -> Self {
        JobError::Db(e.into())
    }
}

pub struct Worker {
    ctx: Context,
    id: String,
}

impl Worker {
    pub fn new(ctx: Context) -> Self {
        let id = format!("worker-{}", uuid::Uuid::new_v4());
        Self { ctx, id }
    }

    /// Claims the earliest due job and runs one step of it.
    pub async fn run_once(&self) -> anyhow::Result<RunOutcome> {
        let now = self.ctx.clock.now_naive();
        let lease = Duration::seconds(self.ctx.settings.worker.lease_seconds as i64);
        let worker_id = self.id.clone();
        let job = self
            .ctx
            .db(move |conn| jobs::claim_due(conn, now, lease, &worker_id))
            .await?;
        let Some(job) = job else {
            return Ok(RunOutcome::Idle);
        };
        let result = match JobKind::parse(&job.kind) {
            Some(JobKind::Grant) => self.grant(&job).await,
            Some(JobKind::Revoke) => self.revoke(&job).await,
            None => Err(JobError::Other(format!("unknown job kind {:?}", job.kind))),
        };
        let worker_id = self.id.clone();
        let id = job.id.clone();
        match result {
            Ok(Step::Done) => {
                self.ctx
                    .db(move |conn| jobs::complete(conn, &id, &worker_id))
                    .await?;
                Ok(RunOutcome::Done { job: job.id })
            }
            Ok(Step::WaitUntil(until)) => {
                self.ctx
                    .db(move |conn| jobs::release(conn, &id, &worker_id, until, None))
                    .await?;
                Ok(RunOutcome::Waiting { job: job.id, until })
            }
            Err(error) => {
                let error = error.to_string();
                let until = self.ctx.clock.now_naive() + backoff(job.attempts);
                tracing::warn!(job = %job.id, attempts = job.attempts + 1, %error, "job step failed; retrying");
                let message = error.clone();
                self.ctx
                    .db(move |conn| jobs::release(conn, &id, &worker_id, until, Some(&message)))
                    .await?;
                Ok(RunOutcome::Retry {
                    job: job.id,
                    until,
                    error,
                })
            }
        }
    }

    /// Runs due jobs until none is due. For tests and one-shot tools.
    pub async fn drain(&self) -> anyhow::Result<Vec<RunOutcome>> {
        let mut outcomes = Vec::new();
        loop {
            match self.run_once().await? {
                RunOutcome::Idle => return Ok(outcomes),
                other => outcomes.push(other),
            }
            if outcomes.len() > 10_000 {
                anyhow::bail!("the worker did not become idle");
            }
        }
    }

    /// The loop: run due jobs; otherwise sleep until the next one is due, a local wake-up, or the poll
    /// interval (another replica may have queued work).
    pub async fn run(self: Arc<Self>) {
        let poll =
            std::time::Duration::from_secs(self.ctx.settings.worker.poll_interval_seconds.max(1));
        loop {
            match self.run_once().await {
                Ok(RunOutcome::Idle) => {
                    let next = self.ctx.db(jobs::next_run_at).await.ok().flatten();
                    let sleep = next
                        .map(|at| {
                            (at - self.ctx.clock.now_naive())
                                .to_std()
                                .unwrap_or(std::time::Duration::ZERO)
                        })
                        .unwrap_or(poll)
                        .min(poll);
                    tokio::select! {
                        _ = tokio::time::sleep(sleep) => {}
                        _ = self.ctx.worker_wake.notified() => {}
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %e, "worker: cannot reach the job table");
                    tokio::time::sleep(poll).await;
                }
            }
        }
    }

    /// How long SSM lets a document's script run on the instance.
    fn execution_timeout(&self) -> String {
        self.ctx
            .settings
            .worker
            .command_timeout_seconds
            .clamp(10, 9999)
            .to_string()
    }

    /// Renews the lease on `job` before work that must not run twice (sending commands). Fails the
    /// step when another worker has taken the job over.
    async fn keep_lease(&self, job: &JobRow) -> Result<(), JobError> {
        let until = self.ctx.clock.now_naive()
            + Duration::seconds(self.ctx.settings.worker.lease_seconds as i64);
        let (id, me) = (job.id.clone(), self.id.clone());
        if self
            .ctx
            .db(move |conn| jobs::renew(conn, &id, &me, until))
            .await?
        {
            Ok(())
        } else {
            Err(JobError::Other(format!(
                "the lease on {} passed to another worker; this step stops",
                job.id
            )))
        }
    }

    async fn request(&self, id: &str) -> Result<RequestRow, JobError> {
        let id = id.to_owned();
        self.ctx
            .db(move |conn| db::requests::get(conn, &id))
            .await?
            .ok_or_else(|| JobError::Other("the request no longer exists".into()))
    }

    async fn grants(&self, id: &str) -> Result<Vec<GrantRow>, JobError> {
        let id = id.to_owned();
        Ok(self
            .ctx
            .db(move |conn| db::requests::grants(conn, &id))
            .await?)
    }

    async fn event(&self, event: Event) -> Result<(), JobError> {
        let now = self.ctx.clock.now_naive();
        Ok(self
            .ctx
            .db(move |conn| events::append(conn, event, now))
            .await?)
    }

    // ---------------------------------------------------------------- grant

    async fn grant(&self, job: &JobRow) -> Result<Step, JobError> {
        let rid = job.request_id.clone();
        let mut request = self.request(&rid).await?;
        match RequestStatus::parse(&request.status) {
            Some(RequestStatus::Approved) => {
                let now = self.ctx.clock.now();
                let expires = end_of_access(now, request.duration_minutes);
                let at = self.ctx.clock.now_naive();
                let id = rid.clone();
                let started = self
                    .ctx
                    .db(move |conn| {
                        diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                            if !db::requests::set_status(
                                conn,
                                &id,
                                &[RequestStatus::Approved],
                                RequestStatus::Granting,
                                at,
                            )? {
                                return Ok(false);
                            }
                            db::requests::set_expires_at(conn, &id, expires.naive_utc())?;
                            events::append(
                                conn,
                                Event::system(&id, "grant_started")
                                    .detail(json!({ "expires_at": expires.to_rfc3339() })),
                                at,
                            )?;
                            Ok(true)
                        })
                    })
                    .await?;
                if !started {
                    // Canceled (or moved on) meanwhile: nothing to do.
                    return Ok(Step::Done);
                }
                request = self.request(&rid).await?;
            }
            Some(RequestStatus::Granting) => {}
            _ => return Ok(Step::Done),
        }
        let expires_at = request
            .expires_at
            .ok_or_else(|| JobError::Other("a granting request has no end of access".into()))?;
        let expires_param =
            expiry_parameter(to_utc(expires_at)).map_err(|e| JobError::Other(e.message))?;

        let mut grants = self.grants(&rid).await?;
        if self.refuse_moved_instances(&request, &grants).await? {
            grants = self.grants(&rid).await?;
        }
        self.ensure_keys(&request, &grants).await?;
        let id = rid.clone();
        let subjects = self
            .ctx
            .db(move |conn| db::requests::subjects(conn, &id))
            .await?;
        let subjects: BTreeMap<String, SubjectRow> = subjects
            .into_iter()
            .map(|s| (s.subject.clone(), s))
            .collect();

        // Access ended while it was being granted: nothing more is sent (grants that may have been
        // sent are followed, then everything is removed).
        let ended = self.request(&rid).await?.ended_by.is_some();
        if ended {
            let pending: Vec<GrantRow> = grants
                .iter()
                .filter(|g| {
                    g.status == GrantStatus::Pending.as_str()
                        || g.status == GrantStatus::Sending.as_str()
                })
                .cloned()
                .collect();
            if !pending.is_empty() {
                let now = self.ctx.clock.now_naive();
                self.ctx
                    .db(move |conn| {
                        for g in &pending {
                            // Never sent: nothing to remove; maybe sent (an answer was lost):
                            // failed, and removed later like any account that may exist.
                            let status = if g.status == GrantStatus::Pending.as_str() {
                                GrantStatus::Refused
                            } else {
                                GrantStatus::Failed
                            };
                            db::requests::finish_grant(
                                conn,
                                &g.request_id,
                                &g.subject,
                                &g.instance_id,
                                status,
                                Some("access ended before this grant was sent"),
                                now,
                            )?;
                        }
                        Ok::<_, DbError>(())
                    })
                    .await?;
            }
        }
        let grants = if ended {
            self.grants(&rid).await?
        } else {
            grants
        };

        // Send the create document to every grant not sent yet.
        let prefix = &self.ctx.settings.documents.name_prefix;
        let unsent: Vec<&GrantRow> = grants
            .iter()
            .filter(|g| {
                matches!(
                    GrantStatus::parse(&g.status),
                    Some(GrantStatus::Pending | GrantStatus::Sending)
                )
            })
            .collect();
        for batch in batches(&unsent) {
            self.keep_lease(job).await?;
            let first = batch[0];
            let subject = subjects
                .get(&first.subject)
                .ok_or_else(|| JobError::Other(format!("no subject row for {}", first.subject)))?;
            let missing = || JobError::Other(format!("no key for subject {}", first.subject));
            let (document, parameters) = if first.platform == Platform::Windows.as_str() {
                (
                    DocumentKind::WindowsCreateUser.name(prefix),
                    BTreeMap::from([
                        ("username".to_owned(), first.os_user.clone()),
                        ("grantId".to_owned(), rid.clone()),
                        ("expiresAt".to_owned(), expires_param.clone()),
                        ("administrator".to_owned(), request.sudo.to_string()),
                        (
                            "passwordKey".to_owned(),
                            subject.password_key_public.clone().ok_or_else(missing)?,
                        ),
                        ("executionTimeout".to_owned(), self.execution_timeout()),
                    ]),
                )
            } else {
                (
                    DocumentKind::LinuxCreateUser.name(prefix),
                    BTreeMap::from([
                        ("username".to_owned(), first.os_user.clone()),
                        (
                            "publicKey".to_owned(),
                            subject.public_key.clone().ok_or_else(missing)?,
                        ),
                        ("grantId".to_owned(), rid.clone()),
                        ("expiresAt".to_owned(), expires_param.clone()),
                        ("sudo".to_owned(), request.sudo.to_string()),
                        ("executionTimeout".to_owned(), self.execution_timeout()),
                    ]),
                )
            };
            let ids: Vec<String> = batch.iter().map(|g| g.instance_id.clone()).collect();
            let spec = CommandSpec {
                region: first.region.clone(),
                document,
                instance_ids: ids.clone(),
                parameters,
                comment: format!("Gatekeeper grant {rid}"),
                timeout_seconds: DELIVERY_TIMEOUT_SECONDS,
            };
            match self
                .send_split(
                    &rid,
                    &first.subject,
                    GrantStatus::Sending,
                    &spec,
                    "grant_command_sent",
                )
                .await
            {
                Ok(refused) => {
                    // Instances that cannot take commands get no account: those grants fail now. One
                    // that an earlier attempt may have reached ("sending" when this step began) is
                    // failed, and so removed later; only a first refusal means nothing arrived.
                    if !refused.is_empty() {
                        let now = self.ctx.clock.now_naive();
                        let (id, subject) = (rid.clone(), first.subject.clone());
                        let first_try: Vec<String> = batch
                            .iter()
                            .filter(|g| g.status == GrantStatus::Pending.as_str())
                            .map(|g| g.instance_id.clone())
                            .collect();
                        self.ctx
                            .db(move |conn| {
                                for (instance, msg) in &refused {
                                    let status = if first_try.contains(instance) {
                                        GrantStatus::Refused
                                    } else {
                                        GrantStatus::Failed
                                    };
                                    db::requests::finish_grant(
                                        conn,
                                        &id,
                                        &subject,
                                        instance,
                                        status,
                                        Some(msg),
                                        now,
                                    )?;
                                    events::append(
                                        conn,
                                        Event::system(&id, "grant_send_failed")
                                            .instance(instance)
                                            .detail(json!({ "subject": subject, "error": msg })),
                                        now,
                                    )?;
                                }
                                Ok::<_, DbError>(())
                            })
                            .await?;
                    }
                    continue;
                }
                Err(e) => {
                    if !e_is_retryable(&e) || job.attempts + 1 >= GRANT_SEND_ATTEMPTS {
                        let now = self.ctx.clock.now_naive();
                        let (id, subject, msg) =
                            (rid.clone(), first.subject.clone(), e.to_string());
                        self.ctx
                        .db(move |conn| {
                            // Instances this step did reach are followed as usual; the others fail
                            // (and, as a send may have arrived, their removal is sent later).
                            let current = db::requests::grants(conn, &id)?;
                            for instance in &ids {
                                let unsent = current.iter().any(|g| {
                                    g.subject == subject
                                        && &g.instance_id == instance
                                        && (g.status == GrantStatus::Pending.as_str()
                                            || g.status == GrantStatus::Sending.as_str())
                                });
                                if unsent {
                                    db::requests::finish_grant(conn, &id, &subject, instance, GrantStatus::Failed, Some(&msg), now)?;
                                }
                            }
                            events::append(
                                conn,
                                Event::system(&id, "grant_send_failed").detail(json!({ "subject": subject, "instance_ids": ids, "error": msg })),
                                now,
                            )
                        })
                        .await?;
                        continue;
                    }
                    return Err(e);
                }
            }
        }

        // Follow every sent command to its end.
        let grants = self.grants(&rid).await?;
        let still_running = self
            .follow(
                &grants,
                GrantStatus::Sent,
                GrantStatus::Active,
                GrantStatus::Failed,
                "grant_created",
                "grant_failed",
            )
            .await?;
        if let Some(until) = still_running {
            return Ok(Step::WaitUntil(until));
        }

        let grants = self.grants(&rid).await?;
        let all_active = grants
            .iter()
            .all(|g| g.status == GrantStatus::Active.as_str());
        // A create whose send failed may still arrive (SSM may have taken it): its removal waits
        // until such a command would have run, so that it cannot overtake it.
        let uncertain = grants
            .iter()
            .any(|g| g.status == GrantStatus::Failed.as_str() && g.command_id.is_none());
        let cleanup_at = if uncertain {
            self.ctx.clock.now_naive()
                + Duration::seconds(
                    i64::from(DELIVERY_TIMEOUT_SECONDS)
                        + self.ctx.settings.worker.command_timeout_seconds as i64
                        + 30,
                )
        } else {
            self.ctx.clock.now_naive()
        };
        let now = self.ctx.clock.now_naive();
        let id = rid.clone();
        let failed: Vec<String> = grants
            .iter()
            .filter(|g| g.status != GrantStatus::Active.as_str())
            .map(|g| format!("{}@{}", g.subject, g.instance_id))
            .collect();
        self.ctx
            .db(move |conn| {
                diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                    let ended = |conn: &mut DbConnection| -> Result<(), DbError> {
                        // Ending it was asked for while the accounts were being made: remove them now.
                        if db::requests::set_status(conn, &id, &[RequestStatus::Granting], RequestStatus::Revoking, now)? {
                            db::requests::wipe_private_keys(conn, &id)?;
                            events::append(conn, Event::system(&id, "granted_then_revoked"), now)?;
                            jobs::enqueue(conn, JobKind::Revoke, &id, cleanup_at, now)?;
                            tracing::info!(request = %id, "access ended while it was being granted; removing");
                        }
                        Ok(())
                    };
                    let ended_by = db::requests::get(conn, &id)?.and_then(|r| r.ended_by);
                    if ended_by.is_some() {
                        ended(conn)?;
                    } else if all_active {
                        if !db::requests::activate(conn, &id, now)? {
                            ended(conn)?;
                        } else {
                            events::append(
                                conn,
                                Event::system(&id, "activated")
                                    .detail(json!({ "expires_at": to_utc(expires_at).to_rfc3339() })),
                                now,
                            )?;
                            jobs::enqueue(conn, JobKind::Revoke, &id, expires_at, now)?;
                            tracing::info!(request = %id, expires_at = %to_utc(expires_at), "access granted");
                        }
                    } else if db::requests::set_status(conn, &id, &[RequestStatus::Granting], RequestStatus::Failed, now)? {
                        db::requests::wipe_private_keys(conn, &id)?;
                        events::append(
                            conn,
                            Event::system(&id, "failed").detail(json!({
                                "failed": failed,
                                "cleanup": "every account that may have been created is being removed",
                            })),
                            now,
                        )?;
                        // Remove whatever was created on the instances where the grant did work.
                        jobs::enqueue(conn, JobKind::Revoke, &id, cleanup_at, now)?;
                        tracing::warn!(request = %id, failed = ?failed, "granting failed; cleaning up");
                    }
                    Ok(())
                })
            })
            .await?;
        self.ctx.worker_wake.notify_one();
        Ok(Step::Done)
    }

    /// Grants not sent yet whose instance left the request's environment (retagged, moved to another
    /// account) or the inventory since the request was checked fail here: access is only ever created
    /// under the policy of the environment the instance is in. Returns whether any failed.
    async fn refuse_moved_instances(
        &self,
        request: &RequestRow,
        grants: &[GrantRow],
    ) -> Result<bool, JobError> {
        let ids: Vec<String> = grants.iter().map(|g| g.instance_id.clone()).collect();
        let inventory = self
            .ctx
            .db(move |conn| db::instances::by_ids(conn, &ids))
            .await?;
        let moved: Vec<(GrantRow, String)> = grants
            .iter()
            .filter(|g| {
                g.status == GrantStatus::Pending.as_str()
                    || g.status == GrantStatus::Sending.as_str()
            })
            .filter_map(|g| {
                let row = inventory.iter().find(|i| i.id == g.instance_id);
                let why = match row {
                    None => "the instance is no longer in the inventory".to_owned(),
                    Some(i) if i.environment.as_deref() != Some(request.environment.as_str()) => {
                        format!(
                            "the instance now belongs to {}, not {}",
                            i.environment
                                .as_deref()
                                .unwrap_or("no configured environment"),
                            request.environment
                        )
                    }
                    Some(_) => return None,
                };
                Some((g.clone(), why))
            })
            .collect();
        if moved.is_empty() {
            return Ok(false);
        }
        let now = self.ctx.clock.now_naive();
        self.ctx
            .db(move |conn| {
                diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                    for (g, why) in &moved {
                        tracing::warn!(request = %g.request_id, instance = %g.instance_id, reason = %why, "not granting");
                        // Never sent: nothing to remove. Maybe sent by an attempt whose answer was lost:
                        // failed, and removed later like any account that may exist.
                        let status = if g.status == GrantStatus::Pending.as_str() {
                            GrantStatus::Refused
                        } else {
                            GrantStatus::Failed
                        };
                        db::requests::finish_grant(conn, &g.request_id, &g.subject, &g.instance_id, status, Some(why), now)?;
                        events::append(
                            conn,
                            Event::system(&g.request_id, "grant_refused")
                                .instance(&g.instance_id)
                                .detail(json!({ "subject": g.subject, "error": why })),
                            now,
                        )?;
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(true)
    }

    /// Generates the keys each subject needs (an SSH key pair for Linux grants, a one-time password key
    /// for Windows grants) unless they exist; a resumed job keeps the first ones.
    async fn ensure_keys(&self, request: &RequestRow, grants: &[GrantRow]) -> Result<(), JobError> {
        let id = request.id.clone();
        let subjects = self
            .ctx
            .db(move |conn| db::requests::subjects(conn, &id))
            .await?;
        let needs = |subject: &str, platform: Platform| {
            grants
                .iter()
                .any(|g| g.subject == subject && g.platform == platform.as_str())
        };
        for subject in subjects {
            let now = self.ctx.clock.now_naive();
            if subject.public_key.is_none() && needs(&subject.subject, Platform::Linux) {
                let comment = format!("{}@gatekeeper-{}", subject.os_user, &request.id[..8]);
                let pair = crypto::generate_ed25519(&comment)
                    .map_err(|e| JobError::Other(e.to_string()))?;
                let sealed = self.ctx.sealer.seal(
                    pair.private_openssh.as_bytes(),
                    &key_context(&request.id, &subject.subject),
                );
                let public = pair.public.to_string();
                let (id, name) = (request.id.clone(), subject.subject.clone());
                self.ctx
                    .db(move |conn| {
                        if db::requests::store_key(conn, &id, &name, &public, &sealed)? {
                            events::append(
                                conn,
                                Event::system(&id, "key_generated")
                                    .detail(json!({ "subject": name, "public_key": public })),
                                now,
                            )?;
                        }
                        Ok::<_, DbError>(())
                    })
                    .await?;
            }
            if subject.password_key_public.is_none() && needs(&subject.subject, Platform::Windows) {
                let key = tokio::task::spawn_blocking(crypto::generate_password_key)
                    .await
                    .map_err(|e| JobError::Other(e.to_string()))?
                    .map_err(|e| JobError::Other(e.to_string()))?;
                let sealed = self.ctx.sealer.seal(
                    &key.private_der,
                    &password_key_context(&request.id, &subject.subject),
                );
                let (id, name, public) = (
                    request.id.clone(),
                    subject.subject.clone(),
                    key.public_modulus,
                );
                self.ctx
                    .db(move |conn| {
                        if db::requests::store_password_key(conn, &id, &name, &public, &sealed)? {
                            events::append(
                                conn,
                                Event::system(&id, "password_key_generated")
                                    .detail(json!({ "subject": name })),
                                now,
                            )?;
                        }
                        Ok::<_, DbError>(())
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// The password a Windows create command printed, decrypted with the subject's one-time key and
    /// sealed for storage.
    async fn seal_windows_password(
        &self,
        grant: &GrantRow,
        stdout: &str,
    ) -> Result<String, String> {
        let line = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("GATEKEEPER-PASSWORD:"))
            .ok_or("the instance printed no encrypted password")?
            .to_owned();
        let (id, subject) = (grant.request_id.clone(), grant.subject.clone());
        let subjects = self
            .ctx
            .db(move |conn| db::requests::subjects(conn, &id))
            .await
            .map_err(|e: DbError| e.to_string())?;
        let sealed_key = subjects
            .into_iter()
            .find(|s| s.subject == subject)
            .and_then(|s| s.password_key_sealed)
            .ok_or("the password key is gone")?;
        let der = self
            .ctx
            .sealer
            .open(
                &sealed_key,
                &password_key_context(&grant.request_id, &grant.subject),
            )
            .map_err(|e| e.to_string())?;
        let password = crypto::decrypt_password(&der, &line)
            .map_err(|_| "the encrypted password does not decrypt".to_owned())?;
        Ok(self.ctx.sealer.seal(
            password.as_bytes(),
            &grant_secret_context(&grant.request_id, &grant.subject, &grant.instance_id),
        ))
    }

    /// Marks grants as being sent, sends, then records the command id. A crash between the two writes
    /// leaves them "sending", and the resumed job sends again (the documents tolerate that).
    async fn send(
        &self,
        rid: &str,
        subject: &str,
        instance_ids: &[String],
        before: GrantStatus,
        spec: &CommandSpec,
        action: &'static str,
    ) -> Result<(), JobError> {
        let now = self.ctx.clock.now_naive();
        let (id, who, ids) = (rid.to_owned(), subject.to_owned(), instance_ids.to_vec());
        if before == GrantStatus::Sending {
            self.ctx
                .db(move |conn| {
                    db::requests::set_grants(
                        conn,
                        &id,
                        &who,
                        &ids,
                        GrantStatus::Sending,
                        None,
                        None,
                        now,
                    )
                })
                .await?;
        }
        let command_id = self.ctx.commands.send_command(spec).await?;
        let sent_status = if before == GrantStatus::Sending {
            GrantStatus::Sent
        } else {
            GrantStatus::Removing
        };
        let now = self.ctx.clock.now_naive();
        let (id, who, ids) = (rid.to_owned(), subject.to_owned(), instance_ids.to_vec());
        let document = spec.document.clone();
        self.ctx
            .db(move |conn| {
                diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                    db::requests::set_grants(
                        conn,
                        &id,
                        &who,
                        &ids,
                        sent_status,
                        Some(&command_id),
                        Some(now),
                        now,
                    )?;
                    events::append(
                        conn,
                        Event::system(&id, action).command(&command_id).detail(
                            json!({ "document": document, "subject": who, "instance_ids": ids }),
                        ),
                        now,
                    )
                })
            })
            .await?;
        Ok(())
    }

    /// Sends `spec`. SSM refuses a whole call when one of its instances cannot take commands; then each
    /// instance is sent to alone, so that one stopped or terminated instance never holds up the
    /// others — above all, never another instance's removal. Returns the instances refused, with why.
    async fn send_split(
        &self,
        rid: &str,
        subject: &str,
        before: GrantStatus,
        spec: &CommandSpec,
        action: &'static str,
    ) -> Result<Vec<(String, String)>, JobError> {
        match self
            .send(rid, subject, &spec.instance_ids, before, spec, action)
            .await
        {
            Ok(()) => Ok(Vec::new()),
            Err(JobError::Aws(AwsError::InvalidInstance(why))) if spec.instance_ids.len() == 1 => {
                Ok(vec![(spec.instance_ids[0].clone(), why)])
            }
            Err(JobError::Aws(AwsError::InvalidInstance(_))) => {
                let mut refused = Vec::new();
                for instance in &spec.instance_ids {
                    let mut one = spec.clone();
                    one.instance_ids = vec![instance.clone()];
                    match self
                        .send(rid, subject, &one.instance_ids, before, &one, action)
                        .await
                    {
                        Ok(()) => {}
                        Err(JobError::Aws(AwsError::InvalidInstance(why))) => {
                            refused.push((instance.clone(), why));
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(refused)
            }
            Err(e) => Err(e),
        }
    }

    /// Removals SSM refused to send. EC2 is asked afresh (not the inventory, which may lag or not see
    /// everything): an instance it reports terminated, or no longer reports at all, took the account
    /// with it, and that grant is removed. Any other (stopped, agent unregistered, or EC2 cannot be
    /// asked) keeps the account until it runs again: the grant is `remove_failed`, and the revoke
    /// retries and alerts until it works.
    async fn refused_removals(
        &self,
        rid: &str,
        region: &str,
        subject: &str,
        os_user: &str,
        refused: Vec<(String, String)>,
    ) -> Result<(), JobError> {
        let fleet = match self.ctx.fleet.describe_instances(region).await {
            Ok(fleet) => Some(fleet),
            Err(e) => {
                tracing::warn!(region, error = %e, "cannot ask EC2 whether refused instances still exist");
                None
            }
        };
        let now = self.ctx.clock.now_naive();
        let (id, subject, os_user) = (rid.to_owned(), subject.to_owned(), os_user.to_owned());
        self.ctx
            .db(move |conn| {
                diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                    for (instance, why) in &refused {
                        let gone = fleet.as_ref().is_some_and(|fleet| {
                            fleet
                                .iter()
                                .find(|i| &i.id == instance)
                                .is_none_or(|i| i.state == "terminated")
                        });
                        if gone {
                            let note = "the instance is terminated: the account went with it";
                            db::requests::finish_grant(conn, &id, &subject, instance, GrantStatus::Removed, Some(note), now)?;
                            events::append(
                                conn,
                                Event::system(&id, "grant_removed")
                                    .instance(instance)
                                    .detail(json!({ "subject": subject, "os_user": os_user, "note": note })),
                                now,
                            )?;
                        } else {
                            tracing::error!(
                                target: "gatekeeper::alert",
                                request = %id, instance = %instance, user = %os_user, error = %why,
                                "ALERT: the instance cannot take the removal now; retrying"
                            );
                            db::requests::finish_grant(conn, &id, &subject, instance, GrantStatus::RemoveFailed, Some(why), now)?;
                            events::append(
                                conn,
                                Event::system(&id, "revoke_failed")
                                    .instance(instance)
                                    .detail(json!({ "subject": subject, "os_user": os_user, "error": why })),
                                now,
                            )?;
                        }
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(())
    }

    /// Polls every grant in `waiting` state. Returns when to look again if any is still running.
    async fn follow(
        &self,
        grants: &[GrantRow],
        waiting: GrantStatus,
        ok: GrantStatus,
        failed: GrantStatus,
        ok_action: &'static str,
        failed_action: &'static str,
    ) -> Result<Option<NaiveDateTime>, JobError> {
        // The script's own limit, plus the time SSM may take to deliver the command and report.
        let timeout = Duration::seconds(self.ctx.settings.worker.command_timeout_seconds as i64)
            + Duration::seconds(i64::from(DELIVERY_TIMEOUT_SECONDS) + 30);
        let mut running_since: Option<NaiveDateTime> = None;
        for grant in grants.iter().filter(|g| g.status == waiting.as_str()) {
            let (Some(command_id), Some(sent_at)) = (grant.command_id.clone(), grant.sent_at)
            else {
                continue;
            };
            let now = self.ctx.clock.now_naive();
            let outcome = match self
                .ctx
                .commands
                .invocation(&grant.region, &command_id, &grant.instance_id)
                .await
            {
                Ok(inv) => match inv.state {
                    InvocationState::Running => None,
                    InvocationState::Success
                        if ok == GrantStatus::Active
                            && grant.platform == Platform::Windows.as_str() =>
                    {
                        match self.seal_windows_password(grant, &inv.stdout).await {
                            Ok(sealed) => {
                                let g = grant.clone();
                                self.ctx
                                    .db(move |conn| {
                                        db::requests::set_grant_secret(
                                            conn,
                                            &g.request_id,
                                            &g.subject,
                                            &g.instance_id,
                                            &sealed,
                                        )
                                    })
                                    .await?;
                                Some((ok, None))
                            }
                            Err(e) => Some((failed, Some(e))),
                        }
                    }
                    InvocationState::Success => Some((ok, None)),
                    InvocationState::Failed { status, detail } => {
                        let stderr: String = inv
                            .stderr
                            .chars()
                            .rev()
                            .take(600)
                            .collect::<Vec<_>>()
                            .into_iter()
                            .rev()
                            .collect();
                        Some((
                            failed,
                            Some(format!("{status} ({detail}): {}", stderr.trim())),
                        ))
                    }
                },
                Err(AwsError::InvocationDoesNotExist) => None,
                Err(e) => return Err(e.into()),
            };
            let outcome = match outcome {
                None if now - sent_at > timeout => {
                    // Stuck past its deadline: cancel it (best effort) and count it as failed.
                    if let Err(e) = self
                        .ctx
                        .commands
                        .cancel_command(
                            &grant.region,
                            &command_id,
                            std::slice::from_ref(&grant.instance_id),
                        )
                        .await
                    {
                        tracing::warn!(command = %command_id, error = %e, "CancelCommand failed");
                    }
                    Some((
                        failed,
                        Some(format!(
                            "no result within {} seconds; cancelled",
                            timeout.num_seconds()
                        )),
                    ))
                }
                other => other,
            };
            match outcome {
                None => {
                    running_since =
                        Some(running_since.map_or(sent_at, |s: NaiveDateTime| s.min(sent_at)));
                }
                Some((status, error)) => {
                    let g = grant.clone();
                    let action = if status == ok {
                        ok_action
                    } else {
                        failed_action
                    };
                    if status != ok {
                        if failed == GrantStatus::RemoveFailed {
                            tracing::error!(
                                target: "gatekeeper::alert",
                                request = %g.request_id, instance = %g.instance_id, user = %g.os_user,
                                error = error.as_deref().unwrap_or(""),
                                "ALERT: removing a temporary user failed; retrying"
                            );
                        } else {
                            tracing::warn!(request = %g.request_id, instance = %g.instance_id, error = error.as_deref().unwrap_or(""), "creating a temporary user failed");
                        }
                    }
                    self.ctx
                        .db(move |conn| {
                            diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                                db::requests::finish_grant(conn, &g.request_id, &g.subject, &g.instance_id, status, error.as_deref(), now)?;
                                events::append(
                                    conn,
                                    Event::system(&g.request_id, action)
                                        .instance(&g.instance_id)
                                        .command(&command_id)
                                        .detail(json!({ "subject": g.subject, "os_user": g.os_user, "error": error })),
                                    now,
                                )
                            })
                        })
                        .await?;
                }
            }
        }
        Ok(running_since.map(|since| {
            let now = self.ctx.clock.now_naive();
            let waited = now - since;
            let delay = if waited < Duration::seconds(10) {
                Duration::seconds(1)
            } else if waited < Duration::seconds(60) {
                Duration::seconds(3)
            } else {
                Duration::seconds(10)
            };
            now + delay
        }))
    }

    // ---------------------------------------------------------------- revoke

    async fn revoke(&self, job: &JobRow) -> Result<Step, JobError> {
        let rid = job.request_id.clone();
        let request = self.request(&rid).await?;
        let status = RequestStatus::parse(&request.status);
        match status {
            Some(RequestStatus::Active) => {
                let now = self.ctx.clock.now_naive();
                let id = rid.clone();
                self.ctx
                    .db(move |conn| {
                        diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                            if db::requests::set_status(
                                conn,
                                &id,
                                &[RequestStatus::Active],
                                RequestStatus::Revoking,
                                now,
                            )? {
                                db::requests::wipe_private_keys(conn, &id)?;
                                events::append(conn, Event::system(&id, "expiry_reached"), now)?;
                            }
                            Ok(())
                        })
                    })
                    .await?;
            }
            Some(RequestStatus::Revoking | RequestStatus::Failed) => {}
            _ => return Ok(Step::Done),
        }

        let grants = self.grants(&rid).await?;
        let prefix = &self.ctx.settings.documents.name_prefix;
        // Grants never sent created nothing (pending ones, and failed ones that no command reached);
        // every other one may have, so it gets the remove document.
        let never_sent: Vec<GrantRow> = grants
            .iter()
            .filter(|g| {
                g.status == GrantStatus::Pending.as_str()
                    || g.status == GrantStatus::Refused.as_str()
            })
            .cloned()
            .collect();
        let nothing_to_remove: Vec<(String, String)> = never_sent
            .iter()
            .map(|g| (g.subject.clone(), g.instance_id.clone()))
            .collect();
        if !never_sent.is_empty() {
            let now = self.ctx.clock.now_naive();
            self.ctx
                .db(move |conn| {
                    for g in &never_sent {
                        db::requests::finish_grant(
                            conn,
                            &g.request_id,
                            &g.subject,
                            &g.instance_id,
                            GrantStatus::Removed,
                            None,
                            now,
                        )?;
                    }
                    Ok::<_, DbError>(())
                })
                .await?;
        }
        let to_remove: Vec<&GrantRow> = grants
            .iter()
            .filter(|g| {
                !nothing_to_remove
                    .iter()
                    .any(|(subject, instance)| *instance == g.instance_id && *subject == g.subject)
            })
            .filter(|g| {
                matches!(
                    GrantStatus::parse(&g.status),
                    Some(
                        GrantStatus::Sending
                            | GrantStatus::Sent
                            | GrantStatus::Active
                            | GrantStatus::Failed
                            | GrantStatus::RemoveFailed
                    )
                )
            })
            .collect();
        for batch in batches(&to_remove) {
            self.keep_lease(job).await?;
            let first = batch[0];
            let ids: Vec<String> = batch.iter().map(|g| g.instance_id.clone()).collect();
            let document = if first.platform == Platform::Windows.as_str() {
                DocumentKind::WindowsRemoveUser.name(prefix)
            } else {
                DocumentKind::LinuxRemoveUser.name(prefix)
            };
            let spec = CommandSpec {
                region: first.region.clone(),
                document,
                instance_ids: ids.clone(),
                parameters: BTreeMap::from([
                    ("username".to_owned(), first.os_user.clone()),
                    ("grantId".to_owned(), rid.clone()),
                    ("executionTimeout".to_owned(), self.execution_timeout()),
                ]),
                comment: format!("Gatekeeper revoke {rid}"),
                timeout_seconds: DELIVERY_TIMEOUT_SECONDS,
            };
            let refused = self
                .send_split(
                    &rid,
                    &first.subject,
                    GrantStatus::Removing,
                    &spec,
                    "revoke_command_sent",
                )
                .await?;
            if !refused.is_empty() {
                self.refused_removals(&rid, &first.region, &first.subject, &first.os_user, refused)
                    .await?;
            }
        }

        let grants = self.grants(&rid).await?;
        let still_running = self
            .follow(
                &grants,
                GrantStatus::Removing,
                GrantStatus::Removed,
                GrantStatus::RemoveFailed,
                "grant_removed",
                "revoke_failed",
            )
            .await?;
        if let Some(until) = still_running {
            return Ok(Step::WaitUntil(until));
        }
        let grants = self.grants(&rid).await?;
        let failed: Vec<String> = grants
            .iter()
            .filter(|g| g.status != GrantStatus::Removed.as_str())
            .map(|g| format!("{}@{}", g.os_user, g.instance_id))
            .collect();
        if !failed.is_empty() {
            if job.attempts + 1 == REVOKE_ALERT_AFTER {
                tracing::error!(
                    target: "gatekeeper::alert",
                    request = %rid, left = ?failed,
                    "ALERT: temporary users could not be removed after {REVOKE_ALERT_AFTER} attempts; retries go on"
                );
                self.event(
                    Event::system(&rid, "revoke_stuck")
                        .detail(json!({ "left": failed, "attempts": job.attempts + 1 })),
                )
                .await?;
            }
            return Err(JobError::Other(format!(
                "removal failed on {}",
                failed.join(", ")
            )));
        }

        let now = self.ctx.clock.now_naive();
        let id = rid.clone();
        self.ctx
            .db(move |conn| {
                diesel::Connection::transaction::<_, DbError, _>(conn, |conn| {
                    db::requests::wipe_private_keys(conn, &id)?;
                    if status == Some(RequestStatus::Failed) {
                        events::append(conn, Event::system(&id, "cleanup_done"), now)?;
                        return Ok(());
                    }
                    // Who ended it, as stored now: an early revoke may have come after this step began.
                    let ended_by = db::requests::get(conn, &id)?.and_then(|r| r.ended_by);
                    let (to, action) = if ended_by.is_some() {
                        (RequestStatus::Revoked, "revoked")
                    } else {
                        (RequestStatus::Expired, "expired")
                    };
                    if db::requests::set_status(conn, &id, &[RequestStatus::Revoking], to, now)? {
                        if ended_by.is_none() {
                            db::requests::set_ended(conn, &id, now, None)?;
                        }
                        events::append(conn, Event::system(&id, action), now)?;
                        tracing::info!(request = %id, status = %to, "access ended; temporary users removed");
                    }
                    Ok(())
                })
            })
            .await?;
        Ok(Step::Done)
    }
}

fn e_is_retryable(e: &JobError) -> bool {
    match e {
        JobError::Aws(AwsError::Throttling(_)) | JobError::Db(_) => true,
        JobError::Aws(AwsError::Other(_)) => true,
        _ => false,
    }
}

/// Groups grants by (subject, region, platform) into batches of at most 50 instances: one
/// `SendCommand` each.
fn batches<'a>(grants: &[&'a GrantRow]) -> Vec<Vec<&'a GrantRow>> {
    let mut groups: BTreeMap<(String, String, String), Vec<&'a GrantRow>> = BTreeMap::new();
    for g in grants {
        groups
            .entry((g.subject.clone(), g.region.clone(), g.platform.clone()))
            .or_default()
            .push(g);
    }
    groups
        .into_values()
        .flat_map(|group| {
            group
                .chunks(MAX_TARGETS_PER_COMMAND)
                .map(|c| c.to_vec())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at 15 minutes.
fn backoff(attempts: i32) -> Duration {
    let base = 5i64.saturating_mul(1i64 << attempts.clamp(0, 12));
    let capped = base.min(15 * 60);
    let jitter = rand::thread_rng().gen_range(0..=capped / 5 + 1);
    Duration::seconds(capped + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!(backoff(0) >= Duration::seconds(5) && backoff(0) <= Duration::seconds(7));
        assert!(backoff(3) >= Duration::seconds(40));
        assert!(backoff(30) <= Duration::seconds(15 * 60 + 181));
    }

    #[test]
    fn batches_split_by_subject_region_and_fifty() {
        let now = chrono::Utc::now().naive_utc();
        let rows: Vec<GrantRow> = (0..120)
            .map(|i| GrantRow {
                request_id: "r".into(),
                subject: if i < 110 {
                    "alice".into()
                } else {
                    "bob".into()
                },
                instance_id: format!("i-{i:08x}"),
                region: if i < 60 {
                    "us-east-1".into()
                } else {
                    "eu-west-1".into()
                },
                os_user: "gk-x".into(),
                status: "pending".into(),
                command_id: None,
                sent_at: None,
                last_error: None,
                updated_at: now,
                platform: "linux".into(),
                secret_sealed: None,
            })
            .collect();
        let refs: Vec<&GrantRow> = rows.iter().collect();
        let b = batches(&refs);
        assert!(b.iter().all(|batch| batch.len() <= 50));
        assert!(b.iter().all(|batch| {
            batch
                .iter()
                .all(|g| g.subject == batch[0].subject && g.region == batch[0].region)
        }));
        assert_eq!(b.iter().map(|x| x.len()).sum::<usize>(), 120);
        // alice/eu-west-1: 50; alice/us-east-1: 50 + 10; bob/eu-west-1: 10.
        assert_eq!(b.len(), 4);
    }
}
