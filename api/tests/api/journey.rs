//! The whole job end to end through HTTP, the worker and the AWS SDK against the emulator.

use chrono::{DateTime, Utc};
use gatekeeper::clock::Clock;
use serde_json::json;

use crate::helpers::*;

fn at(value: &serde_json::Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(value.as_str().expect("timestamp"))
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn search_request_grant_collect_expire() {
    let app = spawn_app().await;
    let dev = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "checkout-api",
                windows: false,
            },
            3,
        )
        .await;
    let prod = app
        .launch(
            Launch {
                env: Some("prod"),
                name: "ledger-db",
                windows: false,
            },
            2,
        )
        .await;
    let win = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "reporting-win",
                windows: true,
            },
            1,
        )
        .await;
    let report = app.sync().await;
    assert_eq!(report.instances, 6);
    assert!(report.errors.is_empty(), "{:?}", report.errors);

    let alice = app.token("alice", &[]);
    let dave = app.token("dave", &["dev-approvers"]);
    let eve = app.token("eve", &[]);
    let paula = app.token("paula", &["prod-approvers"]);

    // Search: free text, filters, paging, and the reason an instance cannot be granted.
    let (status, page) = app
        .get("/api/v1/instances?q=CHECKOUT&environment=dev", Some(&alice))
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(
        items
            .iter()
            .all(|i| i["name"] == "checkout-api" && i["grantable"] == true)
    );
    assert_eq!(items[0]["tags"]["Team"], "payments");
    assert!(items[0]["private_ip"].as_str().is_some());
    assert_eq!(items[0]["agent_status"], "Online");

    let (_, page) = app
        .get("/api/v1/instances?platform=windows", Some(&alice))
        .await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], win[0].as_str());
    assert_eq!(items[0]["platform"], "windows");
    app.ec2
        .stop_instances()
        .instance_ids(&dev[2])
        .send()
        .await
        .unwrap();
    app.sync().await;
    let (_, page) = app
        .get(&format!("/api/v1/instances?q={}", dev[2]), Some(&alice))
        .await;
    assert_eq!(page["items"][0]["grantable"], false);
    assert!(
        page["items"][0]["not_grantable_reason"]
            .as_str()
            .unwrap()
            .contains("stopped")
    );

    let ip = {
        let (_, page) = app
            .get(&format!("/api/v1/instances?q={}", prod[0]), Some(&alice))
            .await;
        page["items"][0]["private_ip"].as_str().unwrap().to_owned()
    };
    let (_, page) = app
        .get(&format!("/api/v1/instances?q={ip}"), Some(&alice))
        .await;
    assert_eq!(page["items"][0]["id"], prod[0].as_str(), "search by IP");

    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = app
            .get(
                &format!("/api/v1/instances?limit=4&cursor={cursor}"),
                Some(&alice),
            )
            .await;
        assert_eq!(status, 200);
        for i in page["items"].as_array().unwrap() {
            seen.push(i["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    let mut all: Vec<String> = dev.iter().chain(&prod).chain(&win).cloned().collect();
    all.sort();
    assert_eq!(seen, all, "paging returns every instance once, in id order");

    // An auto-approved dev request becomes active.
    let (status, created) = app
        .create_request(
            &alice,
            json!({
                "environment": "dev",
                "instance_ids": [dev[0], dev[1]],
                "duration_minutes": 60,
                "reason": "debug the checkout timeouts",
                "ticket": "OPS-1234"
            }),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "approved");
    assert_eq!(created["subjects"][0]["os_user"], "gk-alice");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        app.commands().await.is_empty(),
        "nothing is sent before the worker runs"
    );

    let granted_at = app.clock.now();
    let outcomes = app.settle().await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "active", "{outcomes:?}");
    let expires = at(&detail["expires_at"]);
    assert!(expires >= granted_at + chrono::Duration::minutes(60));
    assert!(expires < granted_at + chrono::Duration::minutes(61));
    assert_eq!(
        expires.timestamp() % 60,
        0,
        "the end of access falls on a whole minute"
    );
    let grants = detail["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    assert!(
        grants
            .iter()
            .all(|g| g["status"] == "active" && g["command_id"].is_string())
    );
    let public_key = detail["subjects"][0]["public_key"]
        .as_str()
        .unwrap()
        .to_owned();

    // The emulator recorded exactly one create command, with server-derived parameters.
    let commands = app.commands().await;
    assert_eq!(commands.len(), 1);
    let create = &commands[0];
    assert_eq!(create.document_name(), Some("Gatekeeper-LinuxCreateUser"));
    let mut targets = create.instance_ids().to_vec();
    targets.sort();
    let mut want = vec![dev[0].clone(), dev[1].clone()];
    want.sort();
    assert_eq!(targets, want);
    assert_eq!(param(create, "username"), "gk-alice");
    assert_eq!(param(create, "publicKey"), public_key);
    assert_eq!(param(create, "grantId"), id);
    assert_eq!(
        param(create, "expiresAt"),
        expires.format("%Y%m%d%H%M").to_string()
    );
    assert_eq!(param(create, "sudo"), "false");
    assert_eq!(param(create, "executionTimeout"), "300");
    assert!(
        !format!("{create:?}").contains("PRIVATE KEY"),
        "no private key travels to SSM"
    );

    // A non-subject who may see the request (an approver) gets 403; a stranger 404.
    let (status, body) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&dave))
        .await;
    assert_eq!((status, code(&body)), (403, "not_a_subject"));
    let (status, body) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&eve))
        .await;
    assert_eq!((status, code(&body)), (404, "request_not_found"));
    let (status, _) = app.get(&format!("/api/v1/requests/{id}"), Some(&eve)).await;
    assert_eq!(status, 404);

    // The subject collects a private key that matches the public key that was sent, once.
    let (status, creds) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!(status, 200, "{creds}");
    let private = ssh_key::PrivateKey::from_openssh(creds["private_key"].as_str().unwrap())
        .expect("OpenSSH private key");
    let sent = ssh_key::PublicKey::from_openssh(&public_key).unwrap();
    assert_eq!(private.public_key().key_data(), sent.key_data());
    assert_eq!(private.algorithm(), ssh_key::Algorithm::Ed25519);
    assert_eq!(creds["os_user"], "gk-alice");
    let targets = creds["instances"].as_array().unwrap();
    assert_eq!(targets.len(), 2);
    let cmd = targets[0]["ssh_command"].as_str().unwrap();
    assert!(
        cmd.starts_with("ssh -i ~/.ssh/gatekeeper-") && cmd.contains(" gk-alice@"),
        "{cmd}"
    );
    let (status, body) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!(
        (status, code(&body)),
        (410, "credentials_already_collected")
    );

    // A prod request waits for approval; nobody approves their own, nor one that grants them access.
    let (status, prod_req) = app
        .create_request(
            &alice,
            json!({
                "environment": "prod",
                "instance_ids": [prod[0]],
                "subjects": ["alice", "paula"],
                "duration_minutes": 30,
                "reason": "rotate the ledger replica",
            }),
        )
        .await;
    assert_eq!(status, 201, "{prod_req}");
    assert_eq!(prod_req["status"], "pending_approval");
    let pid = prod_req["id"].as_str().unwrap().to_owned();
    app.settle().await;
    assert_eq!(
        app.commands().await.len(),
        1,
        "nothing is sent for a pending request"
    );
    let approve = format!("/api/v1/requests/{pid}/approve");
    let alice_prod = app.token("alice", &["prod-approvers"]);
    let (status, body) = app.post(&approve, Some(&alice_prod), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (403, "self_approval"),
        "the requester cannot approve"
    );
    let (status, body) = app.post(&approve, Some(&paula), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (403, "self_approval"),
        "a subject cannot approve"
    );
    let (status, body) = app.post(&approve, Some(&dave), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (404, "request_not_found"),
        "other approvers cannot even see it"
    );

    // Approvals queue: a second prod approver sees it and approves.
    let olga = app.token("olga", &["prod-approvers"]);
    let (_, queue) = app
        .get("/api/v1/requests?awaiting_my_decision=true", Some(&olga))
        .await;
    assert_eq!(queue["items"].as_array().unwrap().len(), 1);
    assert_eq!(queue["items"][0]["id"], pid.as_str());
    let (_, queue) = app
        .get("/api/v1/requests?awaiting_my_decision=true", Some(&paula))
        .await;
    assert!(
        queue["items"].as_array().unwrap().is_empty(),
        "own access is not in the queue"
    );
    let (status, approved) = app
        .post(&approve, Some(&olga), json!({"comment": "ok for 30m"}))
        .await;
    assert_eq!(status, 200, "{approved}");
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], "olga");
    let (status, body) = app.post(&approve, Some(&olga), json!({})).await;
    assert_eq!(
        (status, code(&body)),
        (409, "invalid_state"),
        "deciding twice is refused"
    );
    app.settle().await;
    let prod_detail = app.request(&alice, &pid).await;
    assert_eq!(prod_detail["status"], "active", "{prod_detail}");
    let commands = app.commands().await;
    assert_eq!(commands.len(), 3, "one create command per subject");
    let users: Vec<String> = commands.iter().map(|c| param(c, "username")).collect();
    assert!(users.contains(&"gk-paula".to_owned()));

    // The prod request ends first (30 minutes); its uncollected keys are wiped with it.
    let prod_expires = at(&prod_detail["expires_at"]);
    app.advance_to(prod_expires).await;
    let pid2 = pid.clone();
    let subjects = app
        .ctx
        .db(move |conn| gatekeeper::db::requests::subjects(conn, &pid2))
        .await
        .unwrap();
    assert_eq!(subjects.len(), 2);
    assert!(
        subjects.iter().all(|s| s.private_key_sealed.is_none()),
        "no private key outlives its grant"
    );
    assert_eq!(app.request(&alice, &pid).await["status"], "expired");
    assert!(prod_expires < expires);

    // Just before the end nothing is removed; at the end the remove document runs and the keys go.
    app.advance_to(expires - chrono::Duration::seconds(1)).await;
    assert_eq!(app.request(&alice, &id).await["status"], "active");
    app.advance_to(expires).await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "expired", "{detail}");
    assert!(
        detail["grants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "removed")
    );
    let removes: Vec<_> = app
        .commands()
        .await
        .into_iter()
        .filter(|c| {
            c.document_name() == Some("Gatekeeper-LinuxRemoveUser") && param(c, "grantId") == id
        })
        .collect();
    assert_eq!(removes.len(), 1);
    assert_eq!(param(&removes[0], "username"), "gk-alice");
    let mut removed: Vec<String> = removes[0].instance_ids().to_vec();
    removed.sort();
    assert_eq!(removed, want);

    let (status, body) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!((status, code(&body)), (409, "not_active"));

    let trail = actions(&detail);
    for expected in [
        "requested",
        "auto_approved",
        "grant_started",
        "key_generated",
        "grant_command_sent",
        "grant_created",
        "activated",
        "credentials_collected",
        "expiry_reached",
        "revoke_command_sent",
        "grant_removed",
        "expired",
    ] {
        assert!(
            trail.contains(&expected.to_owned()),
            "{expected} missing from {trail:?}"
        );
    }
    let sent = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "grant_command_sent")
        .unwrap();
    assert_eq!(sent["command_id"], commands[0].command_id().unwrap());
}

#[tokio::test]
async fn rejection_needs_a_reason_and_is_final() {
    let app = spawn_app().await;
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
    let paula = app.token("paula", &["prod-approvers"]);
    let (_, req) = app
        .create_request(&alice, json!({"environment": "prod", "instance_ids": prod, "duration_minutes": 15, "reason": "hotfix"}))
        .await;
    let id = req["id"].as_str().unwrap();
    let reject = format!("/api/v1/requests/{id}/reject");
    let (status, body) = app.post(&reject, Some(&paula), json!({})).await;
    assert_eq!((status, code(&body)), (422, "comment_required"));
    let (status, body) = app
        .post(
            &reject,
            Some(&paula),
            json!({"comment": "use the runbook instead"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["decision_comment"], "use the runbook instead");
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            Some(&paula),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));
    app.settle().await;
    assert!(app.commands().await.is_empty());
    assert!(actions(&app.request(&alice, id).await).contains(&"rejected".to_owned()));
}

#[tokio::test]
async fn cancel_before_grant_and_revoke_early() {
    let app = spawn_app().await;
    let dev = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            1,
        )
        .await;
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
    let bob = app.token("bob", &[]);
    let paula = app.token("paula", &["prod-approvers"]);

    let (_, req) = app
        .create_request(&alice, json!({"environment": "prod", "instance_ids": prod, "subjects": ["alice", "bob"], "duration_minutes": 15, "reason": "hotfix"}))
        .await;
    let id = req["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/cancel"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (403, "not_the_requester"));
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/cancel"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "canceled");
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            Some(&paula),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (409, "invalid_state"));

    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "duration_minutes": 240, "reason": "load test"}))
        .await;
    let id = req["id"].as_str().unwrap();
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (409, "invalid_state"),
        "not active yet"
    );
    app.settle().await;
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/cancel"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(
        (status, code(&body)),
        (409, "invalid_state"),
        "active access is revoked, not canceled"
    );
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&bob),
            json!({}),
        )
        .await;
    assert_eq!((status, code(&body)), (404, "request_not_found"));
    let (status, body) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&alice),
            json!({"comment": "done early"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "revoking");
    let (status, _) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!(status, 409, "no key is handed out once access is ending");
    app.settle().await;
    let detail = app.request(&alice, id).await;
    assert_eq!(detail["status"], "revoked", "{detail}");
    assert_eq!(detail["ended_by"], "alice");
    assert!(
        app.commands()
            .await
            .iter()
            .any(|c| c.document_name() == Some("Gatekeeper-LinuxRemoveUser"))
    );
}

#[tokio::test]
async fn a_failed_grant_removes_what_was_created() {
    let app = spawn_app().await;
    let dev = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            3,
        )
        .await;
    app.sync().await;
    app.control(
        "outcomes",
        json!([{"instance_id": dev[1], "document": "Gatekeeper-LinuxCreateUser", "status": "Failed", "stderr": "useradd: cannot lock /etc/passwd"}]),
    )
    .await;
    let alice = app.token("alice", &[]);
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "duration_minutes": 30, "reason": "deploy"}))
        .await;
    let id = req["id"].as_str().unwrap();
    app.settle().await;
    let detail = app.request(&alice, id).await;
    assert_eq!(detail["status"], "failed", "{detail}");
    let trail = actions(&detail);
    assert!(trail.contains(&"grant_failed".to_owned()));
    assert!(trail.contains(&"cleanup_done".to_owned()), "{trail:?}");
    assert!(
        detail["grants"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["status"] == "removed")
    );
    let event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "grant_failed")
        .unwrap();
    assert!(
        event["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("cannot lock"),
        "{event}"
    );
    // The remove document went to every instance, the failed one included (it may be half-created).
    let remove = app
        .commands()
        .await
        .into_iter()
        .find(|c| c.document_name() == Some("Gatekeeper-LinuxRemoveUser"))
        .expect("cleanup command");
    assert_eq!(remove.instance_ids().len(), 3);
    let (status, _) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!(status, 409);
}

#[tokio::test]
async fn a_failing_revoke_is_retried_and_alerted_until_it_works() {
    let app = spawn_app().await;
    let dev = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            1,
        )
        .await;
    app.sync().await;
    let alice = app.token("alice", &[]);
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": dev, "duration_minutes": 30, "reason": "deploy"}))
        .await;
    let id = req["id"].as_str().unwrap().to_owned();
    app.settle().await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "active");
    app.control(
        "outcomes",
        json!([{"instance_id": dev[0], "document": "Gatekeeper-LinuxRemoveUser", "status": "Failed", "stderr": "userdel: user gk-alice is currently used by process 4242", "times": 3}]),
    )
    .await;
    app.advance_to(at(&detail["expires_at"])).await;
    let detail = app.request(&alice, &id).await;
    assert_eq!(
        detail["status"], "revoking",
        "a failed removal never reports success"
    );
    assert_eq!(detail["grants"][0]["status"], "remove_failed");
    assert!(
        detail["grants"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("currently used")
    );

    // Retries with growing backoff; after the third failure operators are alerted; the fourth works.
    for _ in 0..3 {
        let jobs = app.ctx.db(gatekeeper::db::jobs::all).await.unwrap();
        let job = jobs
            .iter()
            .find(|j| j.kind == "revoke")
            .expect("the revoke job stays queued");
        assert!(
            job.last_error
                .as_deref()
                .unwrap_or("")
                .contains("removal failed")
        );
        app.advance_to(job.run_at.and_utc()).await;
    }
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "expired", "{detail}");
    let trail = actions(&detail);
    assert_eq!(trail.iter().filter(|a| *a == "revoke_failed").count(), 3);
    assert_eq!(trail.iter().filter(|a| *a == "revoke_stuck").count(), 1);
    assert!(
        app.ctx
            .db(gatekeeper::db::jobs::all)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn throttling_and_stuck_commands_are_handled() {
    let app = spawn_app().await;
    let dev = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            2,
        )
        .await;
    app.sync().await;
    let alice = app.token("alice", &[]);

    // Throttled SendCommand and GetCommandInvocation calls are retried with backoff.
    app.control("throttle", json!({"account": app.account_id, "calls": 2}))
        .await;
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [dev[0]], "duration_minutes": 30, "reason": "deploy"}))
        .await;
    let id = req["id"].as_str().unwrap().to_owned();
    let outcomes = app.settle_through_retries().await;
    assert!(outcomes.iter().any(|o| matches!(o, gatekeeper::worker::RunOutcome::Retry { error, .. } if error.contains("throttl"))), "{outcomes:?}");
    assert_eq!(app.request(&alice, &id).await["status"], "active");

    // An invocation that never finishes is cancelled after the command timeout and counts as failed.
    app.control(
        "outcomes",
        json!([{"instance_id": dev[1], "document": "Gatekeeper-LinuxCreateUser", "status": "InProgress", "times": -1}]),
    )
    .await;
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [dev[1]], "duration_minutes": 30, "reason": "deploy"}))
        .await;
    let id = req["id"].as_str().unwrap().to_owned();
    let started = app.clock.now();
    app.settle().await;
    assert!(
        app.clock.now() - started >= chrono::Duration::seconds(300),
        "polled until the command timeout"
    );
    let detail = app.request(&alice, &id).await;
    assert_eq!(detail["status"], "failed", "{detail}");
    assert!(actions(&detail).contains(&"cleanup_done".to_owned()));
    let event = detail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "grant_failed")
        .unwrap();
    assert!(
        event["detail"]["error"]
            .as_str()
            .unwrap()
            .contains("cancelled"),
        "{event}"
    );
}

#[tokio::test]
async fn windows_access_with_a_password_made_on_the_instance() {
    let app = spawn_app().await;
    let linux = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "web",
                windows: false,
            },
            1,
        )
        .await;
    let win = app
        .launch(
            Launch {
                env: Some("dev"),
                name: "reporting",
                windows: true,
            },
            2,
        )
        .await;
    app.sync().await;
    let name = "a.very.long.person.name@example.com";
    let person = app.token(name, &[]);
    let (status, req) = app
        .create_request(
            &person,
            json!({"environment": "dev", "instance_ids": [linux[0], win[0], win[1]], "duration_minutes": 60, "reason": "month-end report"}),
        )
        .await;
    assert_eq!(status, 201, "{req}");
    let id = req["id"].as_str().unwrap().to_owned();
    app.settle().await;
    let detail = app.request(&person, &id).await;
    assert_eq!(detail["status"], "active", "{detail}");

    let commands = app.commands().await;
    let create = commands
        .iter()
        .find(|c| c.document_name() == Some("Gatekeeper-WindowsCreateUser"))
        .expect("a Windows create");
    assert_eq!(
        create.instance_ids().len(),
        2,
        "one command for both Windows instances"
    );
    let user = param(create, "username");
    assert!(user.starts_with("gk-") && user.len() <= 20, "{user}");
    assert_eq!(param(create, "administrator"), "false");
    let key = param(create, "passwordKey");
    assert!(
        regex::Regex::new(gatekeeper::domain::PASSWORD_KEY_PATTERN)
            .unwrap()
            .is_match(&key)
    );
    // No private key travels through SSM, and no parameter carries a password.
    assert!(!format!("{commands:?}").contains("PRIVATE KEY"));
    assert!(commands.iter().all(|c| {
        c.parameters()
            .is_none_or(|p| !p.keys().any(|k| k.to_lowercase() == "password"))
    }));

    // The subject collects the SSH key and the passwords the instances made, decrypted, once.
    let (status, creds) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&person))
        .await;
    assert_eq!(status, 200, "{creds}");
    assert!(
        creds["private_key"]
            .as_str()
            .unwrap()
            .contains("OPENSSH PRIVATE KEY")
    );
    assert_eq!(creds["instances"].as_array().unwrap().len(), 1);
    let logins = creds["windows"].as_array().unwrap();
    assert_eq!(logins.len(), 2);
    let made: serde_json::Value = app
        .http
        .get(format!("{}/_gatekeeper/passwords", app.emulator))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for login in logins {
        assert_eq!(login["username"], user.as_str());
        let instance = login["instance_id"].as_str().unwrap();
        let expected = &made[format!("{}/{instance}", create.command_id().unwrap())];
        assert!(expected.is_string());
        assert_eq!(
            &login["password"], expected,
            "the password the instance generated"
        );
    }
    let (status, _) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&person))
        .await;
    assert_eq!(status, 410);
    let rid = id.clone();
    let grants = app
        .ctx
        .db(move |conn| gatekeeper::db::requests::grants(conn, &rid))
        .await
        .unwrap();
    assert!(
        grants.iter().all(|g| g.secret_sealed.is_none()),
        "passwords are wiped once collected"
    );

    // Ending access removes the Windows users with the Windows document.
    let (status, _) = app
        .post(
            &format!("/api/v1/requests/{id}/revoke"),
            Some(&person),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    app.settle().await;
    assert_eq!(app.request(&person, &id).await["status"], "revoked");
    let removes: Vec<_> = app
        .commands()
        .await
        .into_iter()
        .filter(|c| c.document_name() == Some("Gatekeeper-WindowsRemoveUser"))
        .collect();
    assert_eq!(removes.len(), 1);
    assert_eq!(param(&removes[0], "username"), user);
    let rid = id.clone();
    let subjects = app
        .ctx
        .db(move |conn| gatekeeper::db::requests::subjects(conn, &rid))
        .await
        .unwrap();
    assert!(
        subjects.iter().all(|s| s.password_key_sealed.is_none()),
        "the one-time key is wiped at the end"
    );
}
