//! What happens when the world changes under a request: instances retagged, stopped or terminated
//! while it waits or while access ends, access ended while it is still being granted, and races
//! between concurrent calls.

use aws_sdk_ec2::types::Tag;
use gatekeeper::clock::Clock;
use serde_json::{Value, json};

use crate::helpers::*;

async fn dev_instances(app: &TestApp, count: i32) -> Vec<String> {
    let ids = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            count,
        )
        .await;
    app.sync().await;
    ids
}

/// Retags an instance into prod and syncs the inventory.
async fn retag_into_prod(app: &TestApp, instance: &str) {
    app.ec2
        .create_tags()
        .resources(instance)
        .tags(Tag::builder().key("Environment").value("prod").build())
        .send()
        .await
        .unwrap();
    app.sync().await;
}

/// Alice's 30-minute dev request for `instances` (approved at once); its id.
async fn deploy(app: &TestApp, alice: &str, instances: &[String]) -> String {
    let (status, req) = app
        .create_request(alice, json!({"environment": "dev", "instance_ids": instances, "duration_minutes": 30, "reason": "deploy"}))
        .await;
    assert_eq!(status, 201, "{req}");
    req["id"].as_str().unwrap().to_owned()
}

fn grant_status(detail: &Value, instance: &str) -> String {
    detail["grants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["instance_id"] == instance)
        .map(|g| g["status"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn an_instance_that_changed_while_a_request_waited_is_not_granted() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 2).await;
    let alice = app.token("alice", &[]);
    let carol = app.token("carol", &["dev-approvers"]);
    // Longer than dev approves at once: it waits for an approver.
    let (status, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [dev[0]], "duration_minutes": 300, "reason": "profiling"}))
        .await;
    assert_eq!(
        (status, req["status"].as_str()),
        (201, Some("pending_approval"))
    );
    let id = req["id"].as_str().unwrap().to_owned();

    // Meanwhile the instance is retagged into prod, whose approvers are other people.
    retag_into_prod(&app, &dev[0]).await;
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            Some(&carol),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "instances_changed"), "{body}");
    assert!(body["message"].as_str().unwrap().contains("prod"), "{body}");
    assert_eq!(app.request(&alice, &id).await["status"], "pending_approval");

    // A stopped instance cannot be approved either.
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [dev[1]], "duration_minutes": 300, "reason": "profiling"}))
        .await;
    let id = req["id"].as_str().unwrap().to_owned();
    app.ec2
        .stop_instances()
        .instance_ids(&dev[1])
        .send()
        .await
        .unwrap();
    app.sync().await;
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            Some(&carol),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "instances_changed"), "{body}");
}

#[tokio::test]
async fn the_worker_grants_nothing_on_an_instance_that_left_the_environment() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 2).await;
    let alice = app.token("alice", &[]);
    // Approved at once; before the worker gets to it, one instance is retagged into prod.
    let id = deploy(&app, &alice, &dev).await;
    retag_into_prod(&app, &dev[1]).await;
    app.settle().await;
    let detail = app.request(&alice, &id).await;
    assert!(
        actions(&detail).contains(&"grant_refused".to_owned()),
        "{detail}"
    );
    // Nothing was ever sent to it — no create, and no remove for what was never created: the
    // request failed, and the other instance was cleaned up.
    let to_moved = app
        .commands()
        .await
        .iter()
        .filter(|c| c.instance_ids().contains(&dev[1]))
        .count();
    assert_eq!(to_moved, 0);
    assert_eq!(grant_status(&detail, &dev[1]), "removed", "{detail}");
    assert_eq!(detail["status"], "failed");
    assert!(
        actions(&detail).contains(&"cleanup_done".to_owned()),
        "{detail}"
    );
}

#[tokio::test]
async fn access_ended_while_it_is_being_granted_is_removed_as_soon_as_it_exists() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 1).await;
    let alice = app.token("alice", &[]);
    // The create runs for a while on the instance.
    app.control(
        "outcomes",
        json!([{"instance_id": dev[0], "document": "Gatekeeper-LinuxCreateUser", "status": "InProgress", "for_looks": 3}]),
    )
    .await;
    let id = deploy(&app, &alice, &dev[..1]).await;
    // Step by step until the create is sent and still running.
    let until = loop {
        if let gatekeeper::worker::RunOutcome::Waiting { until, .. } =
            app.worker.run_once().await.unwrap()
        {
            break until;
        }
    };
    assert_eq!(app.request(&alice, &id).await["status"], "granting");
    assert!(
        app.request(&alice, &id).await["permissions"]["revoke"]
            .as_bool()
            .unwrap()
    );

    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&alice),
            json!({"comment": "wrong box"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "granting");
    assert_eq!(body["ended_by"], "alice");
    assert!(!body["permissions"]["revoke"].as_bool().unwrap());
    // Asking twice is refused, not queued twice.
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));

    // No remove overtakes the running create; once it is done, the account is removed.
    app.advance_to(until.and_utc()).await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "revoked", "{detail}");
    let actions = actions(&detail);
    assert!(!actions.contains(&"activated".to_owned()), "{actions:?}");
    let created = actions.iter().position(|a| a == "grant_created").unwrap();
    let removal = actions
        .iter()
        .position(|a| a == "revoke_command_sent")
        .unwrap();
    assert!(created < removal, "{actions:?}");
    let (status, _) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!(status, 409, "no key for access that ended before it began");
}

#[tokio::test]
async fn one_instance_that_cannot_take_commands_never_holds_up_the_others_removal() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 3).await;
    let alice = app.token("alice", &[]);
    let id = deploy(&app, &alice, &dev).await;
    app.settle().await;
    assert_eq!(app.request(&alice, &id).await["status"], "active");

    // One instance is stopped and one terminated before access ends; SSM refuses any call naming them.
    app.ec2
        .stop_instances()
        .instance_ids(&dev[0])
        .send()
        .await
        .unwrap();
    app.ec2
        .terminate_instances()
        .instance_ids(&dev[1])
        .send()
        .await
        .unwrap();
    app.sync().await;
    let (status, _) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    app.settle().await;
    let detail = app.request(&alice, &id).await;
    // The running instance is cleaned at once; the terminated one took the account with it; the
    // stopped one keeps the account, so the request stays revoking and the removal is retried.
    assert_eq!(grant_status(&detail, &dev[2]), "removed", "{detail}");
    assert_eq!(grant_status(&detail, &dev[1]), "removed", "{detail}");
    assert_eq!(grant_status(&detail, &dev[0]), "remove_failed", "{detail}");
    assert_eq!(detail["status"], "revoking");

    // Back up: the retry removes the account and access has ended.
    app.ec2
        .start_instances()
        .instance_ids(&dev[0])
        .send()
        .await
        .unwrap();
    app.sync().await;
    // The retry comes after its backoff.
    app.advance_to(app.clock.now() + chrono::Duration::minutes(16))
        .await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "revoked", "{detail}");
    assert_eq!(grant_status(&detail, &dev[0]), "removed", "{detail}");
}

#[tokio::test]
async fn concurrent_requests_keep_the_open_request_limit() {
    let app = spawn_app_with(|s| s.max_open_requests_per_user = 3).await;
    let prod = app
        .launch(
            Launch {
                env: Some("prod"),
                name: "api",
                windows: false,
            },
            1,
        )
        .await;
    app.sync().await;
    let alice = app.token("alice", &[]);
    let body = json!({"environment": "prod", "instance_ids": prod, "duration_minutes": 30, "reason": "many at once"});
    let calls = (0..12).map(|_| app.create_request(&alice, body.clone()));
    let results = futures::future::join_all(calls).await;
    let created = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results
        .iter()
        .filter(|(s, b)| *s == 429 && code(b) == "too_many_open_requests")
        .count();
    assert_eq!((created, refused), (3, 9), "{results:?}");
}

#[tokio::test]
async fn an_os_account_name_belongs_to_one_user_id_even_under_races() {
    let app = spawn_app().await;
    let now = chrono::Utc::now().naive_utc();
    // Two ids claim one name at the same time (what two requests for colliding ids would do): one wins.
    let claim = |subject: &'static str| {
        app.ctx.db(move |conn| {
            diesel::Connection::transaction(conn, |conn| {
                let other = gatekeeper::db::requests::claim_os_accounts(
                    conn,
                    subject,
                    &["gk-shared"],
                    now,
                )?;
                std::thread::sleep(std::time::Duration::from_millis(200));
                Ok::<_, gatekeeper::db::DbError>(other)
            })
        })
    };
    let (a, b) = tokio::join!(claim("ann"), claim("ben"));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(
        matches!((&a, &b), (None, Some(o)) if o == "ann")
            || matches!((&a, &b), (Some(o), None) if o == "ben"),
        "{a:?} {b:?}"
    );
    // A request whose subject lands on a name another id holds is refused.
    let dev = dev_instances(&app, 1).await;
    let alice = app.token("alice", &[]);
    app.ctx
        .db(move |conn| {
            gatekeeper::db::requests::claim_os_accounts(conn, "mallory", &["gk-bob"], now)
        })
        .await
        .unwrap();
    let (status, b) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "subjects": ["bob"], "duration_minutes": 30, "reason": "pairing"}))
        .await;
    assert_eq!((status, code(&b)), (422, "os_user_collision"), "{b}");
    // The same id asking again keeps its own name.
    let (status, b) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "duration_minutes": 30, "reason": "twice"}))
        .await;
    assert_eq!(status, 201, "{b}");
    let (status, b) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "duration_minutes": 30, "reason": "thrice"}))
        .await;
    assert_eq!(status, 201, "{b}");
}

#[tokio::test]
async fn no_credentials_after_the_end_even_before_the_revoke_runs() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 1).await;
    let alice = app.token("alice", &[]);
    let id = deploy(&app, &alice, &dev).await;
    app.settle().await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "active");
    // The end passes while the worker is down: the request still says active, the key stays put.
    let end = chrono::DateTime::parse_from_rfc3339(detail["expires_at"].as_str().unwrap())
        .unwrap()
        .with_timezone(&chrono::Utc);
    app.clock.set(end + chrono::Duration::seconds(1));
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "active");
    assert_eq!(detail["permissions"]["collect_credentials"], false);
    let (status, b) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!((status, code(&b)), (409, "not_active"), "{b}");
    app.settle().await;
    assert_eq!(app.request(&alice, &id).await["status"], "expired");
}

#[tokio::test]
async fn a_create_whose_send_may_have_arrived_is_removed_after_it_could_have_run() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 1).await;
    let alice = app.token("alice", &[]);
    // Every attempt to send the create fails in a way that does not say whether SSM took it.
    app.control("throttle", json!({"account": app.account_id, "calls": 5}))
        .await;
    let id = deploy(&app, &alice, &dev).await;
    let failed_at = app.clock.now();
    app.settle_through_retries().await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "failed", "{detail}");
    assert_eq!(grant_status(&detail, &dev[0]), "failed", "{detail}");
    // It is not taken for "never sent": a removal is queued, but not before such a create would have
    // run (delivery timeout plus the script's time limit), so it cannot overtake it.
    let removes = |commands: &[aws_sdk_ssm::types::Command]| {
        commands
            .iter()
            .filter(|c| c.document_name() == Some("Gatekeeper-LinuxRemoveUser"))
            .count()
    };
    assert_eq!(removes(&app.commands().await), 0);
    let jobs = app.ctx.db(gatekeeper::db::jobs::all).await.unwrap();
    let revoke = jobs
        .iter()
        .find(|j| j.kind == "revoke")
        .expect("a cleanup job");
    let earliest = failed_at.naive_utc() + chrono::Duration::seconds(60 + 300);
    assert!(revoke.run_at >= earliest, "{} < {earliest}", revoke.run_at);
    app.advance_to(revoke.run_at.and_utc()).await;
    assert_eq!(removes(&app.commands().await), 1);
    let detail = app.request(&alice, &id).await;
    assert!(
        actions(&detail).contains(&"cleanup_done".to_owned()),
        "{detail}"
    );
}

#[tokio::test]
async fn requests_claiming_the_same_names_in_opposite_orders_do_not_deadlock() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 1).await;
    let app = &app;
    let calls = (0..8).map(|i| {
        let (requester, subjects) = if i % 2 == 0 {
            ("amy", json!([format!("pair-x{}", i / 2), format!("pair-y{}", i / 2)]))
        } else {
            ("ben", json!([format!("pair-y{}", i / 2), format!("pair-x{}", i / 2)]))
        };
        let token = app.token(requester, &[]);
        let body = json!({"environment": "dev", "instance_ids": dev, "subjects": subjects, "duration_minutes": 30, "reason": "pairing"});
        async move { app.create_request(&token, body).await }
    });
    for (status, body) in futures::future::join_all(calls).await {
        assert_eq!(status, 201, "{body}");
    }
}

#[tokio::test]
async fn a_grant_whose_first_send_failed_is_not_sent_after_its_instance_moved() {
    let app = spawn_app().await;
    let dev = dev_instances(&app, 1).await;
    let alice = app.token("alice", &[]);
    // The first send fails (the grant is left "sending"); before the retry the instance moves to prod.
    app.control("throttle", json!({"account": app.account_id, "calls": 1}))
        .await;
    let id = deploy(&app, &alice, &dev).await;
    assert!(matches!(
        app.worker.run_once().await.unwrap(),
        gatekeeper::worker::RunOutcome::Retry { .. }
    ));
    retag_into_prod(&app, &dev[0]).await;
    app.advance_to(app.clock.now() + chrono::Duration::minutes(1))
        .await;
    let creates = app
        .commands()
        .await
        .iter()
        .filter(|c| c.document_name() == Some("Gatekeeper-LinuxCreateUser"))
        .count();
    assert_eq!(creates, 0, "a create went to an instance now in prod");
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "failed", "{detail}");
    assert!(
        actions(&detail).contains(&"grant_refused".to_owned()),
        "{detail}"
    );
}
