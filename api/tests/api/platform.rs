//! Document staging in SSM and the job table's leases, against the emulator and both databases.

use chrono::Duration;
use gatekeeper::clock::Clock;
use gatekeeper::db::jobs::{self, JobKind};
use gatekeeper::documents::{self, DocumentKind, StageAction};

use crate::helpers::*;

/// A document's meaning: SSM may hand the content back re-serialised (the emulator returns JSON).
fn same(content: Option<&str>) -> serde_yaml::Value {
    serde_yaml::from_str(content.expect("content")).expect("document parses")
}

#[tokio::test]
async fn documents_are_staged_idempotently() {
    let app = spawn_app().await; // spawn_app stages once: all four documents were created
    for kind in DocumentKind::ALL {
        let name = kind.name("Gatekeeper");
        let stored = app.ssm.get_document().name(&name).send().await;
        assert!(stored.is_ok(), "{name} is not in SSM: {stored:?}");
    }
    let store = app.ctx.documents.as_ref();
    let regions = vec![REGION.to_owned()];
    let again = documents::stage(store, &regions, "Gatekeeper", false)
        .await
        .unwrap();
    assert_eq!(again.len(), 4);
    assert!(
        again.iter().all(|r| r.action == StageAction::Unchanged),
        "{again:?}"
    );

    let name = DocumentKind::LinuxRemoveUser.name("Gatekeeper");
    let stored = app.ssm.get_document().name(&name).send().await.unwrap();
    assert_eq!(
        same(stored.content()),
        same(Some(DocumentKind::LinuxRemoveUser.content()))
    );

    // Somebody changed the document in SSM: the dry run shows the difference, staging restores ours
    // as a new default version.
    let tampered = DocumentKind::LinuxRemoveUser
        .content()
        .replace("userdel --remove", "true");
    app.ssm
        .update_document()
        .name(&name)
        .content(&tampered)
        .document_version("$LATEST")
        .document_format(aws_sdk_ssm::types::DocumentFormat::Yaml)
        .send()
        .await
        .unwrap();
    app.ssm
        .update_document_default_version()
        .name(&name)
        .document_version("2")
        .send()
        .await
        .unwrap();
    let plan = documents::stage(store, &regions, "Gatekeeper", true)
        .await
        .unwrap();
    let changed = plan.iter().find(|r| r.name == name).unwrap();
    match &changed.action {
        StageAction::WouldUpdate { diff } => {
            assert!(
                diff.contains("- ") && diff.contains("userdel --remove"),
                "{diff}"
            );
            assert!(diff.contains("+ ") && diff.contains("true"), "{diff}");
        }
        other => panic!("expected WouldUpdate, got {other:?}"),
    }
    let applied = documents::stage(store, &regions, "Gatekeeper", false)
        .await
        .unwrap();
    let changed = applied.iter().find(|r| r.name == name).unwrap();
    // SSM refuses a new version whose content equals an old one: version 1 becomes the default again.
    assert_eq!(
        changed.action,
        StageAction::Updated {
            version: "1".into()
        }
    );
    let stored = app.ssm.get_document().name(&name).send().await.unwrap();
    assert_eq!(stored.document_version(), Some("1"));
    assert_eq!(
        same(stored.content()),
        same(Some(DocumentKind::LinuxRemoveUser.content()))
    );
    let last = documents::stage(store, &regions, "Gatekeeper", false)
        .await
        .unwrap();
    assert!(last.iter().all(|r| r.action == StageAction::Unchanged));
}

#[tokio::test]
async fn a_job_is_leased_to_one_worker_at_a_time() {
    let app = spawn_app().await;
    let now = app.clock.now_naive();
    let lease = Duration::seconds(60);
    let result = app
        .ctx
        .db(move |conn| {
            jobs::enqueue(conn, JobKind::Revoke, "r1", now, now)?;
            // Queuing the same job again never duplicates it; an earlier time moves it earlier.
            jobs::enqueue(
                conn,
                JobKind::Revoke,
                "r1",
                now + Duration::seconds(30),
                now,
            )?;
            let count = jobs::all(conn)?.len();
            let a = jobs::claim_due(conn, now, lease, "worker-a")?;
            let b = jobs::claim_due(conn, now, lease, "worker-b")?;
            // Only the holder may complete it.
            jobs::complete(conn, "revoke:r1", "worker-b")?;
            let still = jobs::all(conn)?.len();
            // After the lease runs out (worker-a crashed), another worker takes it over.
            let c = jobs::claim_due(conn, now + Duration::seconds(61), lease, "worker-b")?;
            Ok::<_, gatekeeper::db::DbError>((count, a, b, still, c))
        })
        .await
        .unwrap();
    let (count, a, b, still, c) = result;
    assert_eq!(count, 1);
    assert_eq!(a.unwrap().locked_by.as_deref(), Some("worker-a"));
    assert!(b.is_none(), "a leased job is not handed to a second worker");
    assert_eq!(still, 1);
    assert_eq!(c.unwrap().locked_by.as_deref(), Some("worker-b"));
}

#[tokio::test]
async fn revokes_go_before_grants() {
    let app = spawn_app().await;
    let now = app.clock.now_naive();
    let claimed = app
        .ctx
        .db(move |conn| {
            jobs::enqueue(conn, JobKind::Grant, "g1", now - Duration::seconds(30), now)?;
            jobs::enqueue(conn, JobKind::Revoke, "r1", now, now)?;
            jobs::claim_due(conn, now, Duration::seconds(60), "w")
        })
        .await
        .unwrap();
    assert_eq!(
        claimed.unwrap().id,
        "revoke:r1",
        "ending access never waits behind grants"
    );
}

#[tokio::test]
async fn concurrent_workers_never_run_a_job_twice() {
    let app = spawn_app().await;
    let now = app.clock.now_naive();
    let ids: Vec<String> = (0..20).map(|i| format!("req-{i}")).collect();
    let queued = ids.clone();
    app.ctx
        .db(move |conn| {
            for id in &queued {
                jobs::enqueue(conn, JobKind::Grant, id, now, now)?;
            }
            Ok::<_, gatekeeper::db::DbError>(())
        })
        .await
        .unwrap();
    let mut handles = Vec::new();
    for w in 0..4 {
        let ctx = app.ctx.clone();
        handles.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let worker = format!("w{w}");
                let job = ctx
                    .db(move |conn| jobs::claim_due(conn, now, Duration::seconds(300), &worker))
                    .await
                    .unwrap();
                match job {
                    Some(job) => mine.push(job.id),
                    None => return mine,
                }
            }
        }));
    }
    let mut claimed = Vec::new();
    for h in handles {
        claimed.extend(h.await.unwrap());
    }
    claimed.sort();
    let mut expected: Vec<String> = ids
        .iter()
        .map(|i| jobs::job_id(JobKind::Grant, i))
        .collect();
    expected.sort();
    assert_eq!(claimed, expected, "every job claimed exactly once");
}
