//! Every rule a client can break gets a clear 4xx with a machine-readable code, never a 500.

use serde_json::{Value, json};

use crate::helpers::*;

struct Fleet {
    dev: Vec<String>,
    prod: Vec<String>,
    win: Vec<String>,
    untagged: Vec<String>,
}

async fn fleet(app: &TestApp) -> Fleet {
    let fleet = Fleet {
        dev: app
            .launch(
                Launch {
                    env: Some("dev"),
                    name: "web",
                    windows: false,
                },
                3,
            )
            .await,
        prod: app
            .launch(
                Launch {
                    env: Some("prod"),
                    name: "api",
                    windows: false,
                },
                1,
            )
            .await,
        win: app
            .launch(
                Launch {
                    env: Some("dev"),
                    name: "win",
                    windows: true,
                },
                1,
            )
            .await,
        untagged: app
            .launch(
                Launch {
                    env: None,
                    name: "stray",
                    windows: false,
                },
                1,
            )
            .await,
    };
    app.sync().await;
    fleet
}

fn body(env: &str, ids: &[String]) -> Value {
    json!({"environment": env, "instance_ids": ids, "duration_minutes": 30, "reason": "routine check"})
}

#[tokio::test]
async fn authentication_is_required_and_checked() {
    let app = spawn_app().await;
    let (status, b) = app.get("/api/v1/instances", None).await;
    assert_eq!((status, code(&b)), (401, "unauthenticated"));
    let (status, b) = app.get("/api/v1/instances", Some("not-a-jwt")).await;
    assert_eq!((status, code(&b)), (401, "invalid_token"));

    // Signed with another secret.
    let other = {
        let mut s = app.ctx.settings.auth.clone();
        s.jwt_secret = gatekeeper::config::Secret::new("a-completely-different-secret-value!!");
        gatekeeper::auth::TokenAuthority::new(&s).unwrap()
    };
    let forged = other
        .issue(
            &gatekeeper::domain::SubjectId::parse("mallory").unwrap(),
            None,
            None,
            vec!["prod-approvers".into()],
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let (status, b) = app.get("/api/v1/me", Some(&forged)).await;
    assert_eq!((status, code(&b)), (401, "invalid_token"));

    let expired = app
        .ctx
        .tokens
        .issue(
            &gatekeeper::domain::SubjectId::parse("alice").unwrap(),
            None,
            None,
            vec![],
            chrono::Utc::now() - chrono::Duration::hours(3),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let (status, b) = app.get("/api/v1/me", Some(&expired)).await;
    assert_eq!((status, code(&b)), (401, "token_expired"));

    // An unsigned token ("alg": "none") is refused.
    let header = base64_url(br#"{"alg":"none","typ":"JWT"}"#);
    let claims = base64_url(br#"{"sub":"mallory","groups":["prod-approvers"],"iss":"gatekeeper","aud":"gatekeeper","iat":0,"exp":9999999999}"#);
    let (status, _) = app
        .get("/api/v1/me", Some(&format!("{header}.{claims}.")))
        .await;
    assert_eq!(status, 401);

    // A token that names critical header extensions is refused (RFC 7515), even when signed.
    let crit = {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.typ = Some("JWT".into());
        let mut value = serde_json::to_value(&header).unwrap();
        value["crit"] = json!(["exp"]);
        let now = chrono::Utc::now().timestamp();
        let claims = json!({"sub": "alice", "groups": [], "iss": "gatekeeper", "aud": "gatekeeper", "iat": now, "exp": now + 600});
        let signing_input = format!(
            "{}.{}",
            base64_url(value.to_string().as_bytes()),
            base64_url(claims.to_string().as_bytes())
        );
        let key = jsonwebtoken::EncodingKey::from_secret(
            app.ctx.settings.auth.jwt_secret.expose().as_bytes(),
        );
        let signature = jsonwebtoken::crypto::sign(
            signing_input.as_bytes(),
            &key,
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{signing_input}.{signature}")
    };
    let (status, b) = app.get("/api/v1/me", Some(&crit)).await;
    assert_eq!((status, code(&b)), (401, "invalid_token"), "{b}");
    assert!(b["message"].as_str().unwrap().contains("crit"), "{b}");

    // Signed tokens with extreme times are refused, not a crash.
    let key = jsonwebtoken::EncodingKey::from_secret(
        app.ctx.settings.auth.jwt_secret.expose().as_bytes(),
    );
    for (iat, exp) in [(-1i64, i64::MAX), (i64::MIN, 4_102_444_800), (0, i64::MAX)] {
        let claims = json!({"sub": "alice", "groups": [], "iss": "gatekeeper", "aud": "gatekeeper", "iat": iat, "exp": exp});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &key,
        )
        .unwrap();
        let (status, b) = app.get("/api/v1/me", Some(&token)).await;
        assert_eq!(
            (status, code(&b)),
            (401, "invalid_token"),
            "iat {iat} exp {exp}: {b}"
        );
    }

    let alice = app.token("alice", &["dev-approvers"]);
    let (status, me) = app.get("/api/v1/me", Some(&alice)).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "alice");
    assert_eq!(me["os_user"], "gk-alice");
    let dev = me["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "dev")
        .unwrap();
    assert_eq!(dev["may_approve"], true);
    assert_eq!(dev["auto_approve_max_minutes"], 240);

    let (status, health) = app.get("/api/v1/health", None).await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "ok");
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn malformed_requests_get_400_and_unknown_routes_404() {
    let app = spawn_app().await;
    let alice = app.token("alice", &[]);
    let (status, b) = app.post_raw("/api/v1/requests", &alice, "{not json").await;
    assert_eq!((status, code(&b)), (400, "invalid_body"));
    let (status, b) = app
        .post_raw("/api/v1/requests", &alice, r#"{"environment":"dev"}"#)
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"), "missing fields");
    let (status, b) = app
        .post_raw("/api/v1/requests", &alice, r#"{"environment":"dev","instance_ids":[],"duration_minutes":5,"reason":"abc","platform":"linux"}"#)
        .await;
    assert_eq!(
        (status, code(&b)),
        (400, "invalid_body"),
        "unknown fields are refused, not ignored"
    );
    let (status, b) = app
        .post_raw(
            "/api/v1/requests",
            &alice,
            r#"{"environment":"dev","instance_ids":"i-1","duration_minutes":5,"reason":"abc"}"#,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"));
    let big = format!(
        r#"{{"environment":"dev","instance_ids":[],"duration_minutes":5,"reason":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (status, b) = app.post_raw("/api/v1/requests", &alice, &big).await;
    assert_eq!((status, code(&b)), (413, "payload_too_large"), "{b}");
    let big_comment = format!(r#"{{"comment":"{}"}}"#, "x".repeat(70_000));
    let (status, b) = app
        .post_raw(
            &format!("/api/v1/requests/{}/approve", uuid::Uuid::new_v4()),
            &alice,
            &big_comment,
        )
        .await;
    assert_eq!((status, code(&b)), (413, "payload_too_large"), "{b}");
    // Comment bodies are JSON too.
    let form = app
        .http
        .post(format!(
            "{}/api/v1/requests/{}/approve",
            app.address,
            uuid::Uuid::new_v4()
        ))
        .bearer_auth(&alice)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("comment=ok")
        .send()
        .await
        .unwrap();
    let (status, b) = read(form).await;
    assert_eq!((status, code(&b)), (400, "invalid_body"), "{b}");
    // Repeated slashes are one: this is the API's health, not a page of the browser client.
    let (status, b) = app.get("//api/v1//health", None).await;
    assert_eq!((status, b["status"].as_str()), (200, Some("ok")), "{b}");
    let (status, b) = app.get("/api/v1/instances?limit=abc", Some(&alice)).await;
    assert_eq!((status, code(&b)), (400, "invalid_query"));
    let (status, b) = app.get("/api/v1/instances?bogus=1", Some(&alice)).await;
    assert_eq!((status, code(&b)), (400, "invalid_query"));
    let (status, b) = app.get("/api/v1/nothing-here", Some(&alice)).await;
    assert_eq!((status, code(&b)), (404, "not_found"));
    let (status, b) = app.get("/api/v1/requests/not-a-uuid", Some(&alice)).await;
    assert_eq!((status, code(&b)), (404, "request_not_found"));
    let (status, b) = app
        .get(
            &format!("/api/v1/requests/{}", uuid::Uuid::new_v4()),
            Some(&alice),
        )
        .await;
    assert_eq!((status, code(&b)), (404, "request_not_found"));
    let (status, b) = app
        .get("/api/v1/requests/x/credentials", Some(&alice))
        .await;
    assert_eq!((status, code(&b)), (404, "request_not_found"));

    // A struct as an array of its values is valid to serde, not to the contract.
    let (status, b) = app
        .post_raw(
            "/api/v1/requests",
            &alice,
            r#"["dev",["i-0123456789abcdef0"],null,5,"array body",null]"#,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"), "{b}");
    // A comment body as an array is refused before the request is even looked up.
    let (status, b) = app
        .post_raw(
            &format!("/api/v1/requests/{}/approve", uuid::Uuid::new_v4()),
            &alice,
            r#"["ok"]"#,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"), "{b}");
    let (status, b) = app
        .post_raw(
            "/api/v1/requests",
            &alice,
            r#"{"environment":"dev","environment":"prod","instance_ids":[],"duration_minutes":5,"reason":"abc"}"#,
        )
        .await;
    assert_eq!(
        (status, code(&b)),
        (400, "invalid_body"),
        "a key twice: {b}"
    );
    let untyped = app
        .http
        .post(format!("{}/api/v1/requests", app.address))
        .bearer_auth(&alice)
        .header("content-type", "text/plain")
        .body(r#"{"environment":"dev","instance_ids":[],"duration_minutes":5,"reason":"abc"}"#)
        .send()
        .await
        .unwrap();
    let (status, b) = read(untyped).await;
    assert_eq!((status, code(&b)), (400, "invalid_body"), "{b}");

    // The framework's own refusals carry the one error body too (a method no route takes is a 404
    // here, a 405 where the browser client is served).
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/v1/requests"),
        (reqwest::Method::PUT, "/api/v1/me"),
        (reqwest::Method::POST, "/api/v1/me"),
        (reqwest::Method::GET, "/api"),
        (reqwest::Method::GET, "/API/v1/me"),
    ] {
        let r = app
            .http
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(&alice)
            .send()
            .await
            .unwrap();
        let (status, b) = read(r).await;
        assert!(
            matches!(
                (status, code(&b)),
                (404, "not_found") | (405, "method_not_allowed")
            ),
            "{method} {path}: {status} {b}"
        );
        assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    }
}

#[tokio::test]
async fn search_filters_are_validated() {
    let app = spawn_app().await;
    let alice = app.token("alice", &[]);
    for (query, expected) in [
        ("platform=solaris", "invalid_platform"),
        ("state=exploded", "invalid_instance_state"),
        ("q=a%00b", "invalid_search_text"),
        ("environment=Not%20Valid", "invalid_environment"),
        ("limit=0", "invalid_limit"),
        ("limit=201", "invalid_limit"),
        ("cursor=%21%21", "invalid_cursor"),
        ("cursor=Zm9v", "invalid_cursor"),
    ] {
        let (status, b) = app
            .get(&format!("/api/v1/instances?{query}"), Some(&alice))
            .await;
        assert_eq!((status, code(&b)), (422, expected), "{query}");
    }
    // LIKE wildcards in free text are literal.
    fleet(&app).await;
    let (status, page) = app.get("/api/v1/instances?q=%25", Some(&alice)).await;
    assert_eq!(status, 200);
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "% matches only a literal %"
    );
    let (_, page) = app.get("/api/v1/instances?q=_", Some(&alice)).await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "_ matches only a literal _"
    );

    for (query, expected) in [
        ("status=exploded", "invalid_status"),
        ("limit=0", "invalid_limit"),
        ("cursor=xyz", "invalid_cursor"),
        ("person=a%20b", "invalid_subject"),
    ] {
        let (status, b) = app
            .get(&format!("/api/v1/requests?{query}"), Some(&alice))
            .await;
        assert_eq!((status, code(&b)), (422, expected), "{query}");
    }
}

#[tokio::test]
async fn every_request_rule_is_enforced() {
    let app = spawn_app().await;
    let f = fleet(&app).await;
    let alice = app.token("alice", &[]);
    let many: Vec<String> = (0..101).map(|i| format!("i-{i:017x}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (body("staging", &f.dev[..1]), "unknown_environment"),
        (body("DEV;rm", &f.dev[..1]), "invalid_environment"),
        (body("dev", &[]), "no_instances"),
        (body("dev", &["i-xyz".to_owned()]), "invalid_instance_id"),
        (
            body("dev", &["i-0123456789abcdef0; reboot".to_owned()]),
            "invalid_instance_id",
        ),
        (
            body("dev", &["i-0123456789abcdef0".to_owned()]),
            "unknown_instance",
        ),
        (
            body("dev", &[f.dev[0].clone(), f.dev[0].clone()]),
            "duplicate_instance",
        ),
        (body("dev", &many), "too_many_instances"),
        (body("dev", &f.prod), "instance_not_in_environment"),
        (body("prod", &f.dev[..1]), "instance_not_in_environment"),
        (body("prod", &f.win), "instance_not_in_environment"),
        (body("dev", &f.untagged), "instance_not_in_environment"),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 0, "reason": "check"}),
            "invalid_duration",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": -5, "reason": "check"}),
            "invalid_duration",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 481, "reason": "check"}),
            "invalid_duration",
        ),
        (
            json!({"environment": "prod", "instance_ids": f.prod, "duration_minutes": 241, "reason": "check"}),
            "invalid_duration",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "  x "}),
            "invalid_reason",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "ok\u{0}bad"}),
            "invalid_reason",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "x".repeat(1001)}),
            "invalid_reason",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "check", "ticket": "OPS 1; id"}),
            "invalid_ticket",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "check", "subjects": ["bob smith"]}),
            "invalid_subject",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "check", "subjects": ["$(reboot)"]}),
            "invalid_subject",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "check", "subjects": ["bob", "bob"]}),
            "duplicate_subject",
        ),
        (
            json!({"environment": "dev", "instance_ids": [f.dev[0]], "duration_minutes": 30, "reason": "check", "subjects": (0..21).map(|i| format!("u{i}")).collect::<Vec<_>>()}),
            "too_many_subjects",
        ),
    ];
    for (request, expected) in cases {
        let (status, b) = app.create_request(&alice, request.clone()).await;
        assert_eq!((status, code(&b)), (422, expected), "{request}");
    }

    // A stopped instance, and one whose SSM agent is offline, cannot be granted.
    app.ec2
        .stop_instances()
        .instance_ids(&f.dev[1])
        .send()
        .await
        .unwrap();
    let agents: serde_json::Map<String, Value> = [(f.dev[2].clone(), json!("ConnectionLost"))]
        .into_iter()
        .collect();
    app.control("agents", Value::Object(agents)).await;
    app.sync().await;
    let (status, b) = app.create_request(&alice, body("dev", &f.dev[1..2])).await;
    assert_eq!((status, code(&b)), (422, "instance_not_running"));
    let (status, b) = app.create_request(&alice, body("dev", &f.dev[2..3])).await;
    assert_eq!((status, code(&b)), (422, "instance_not_manageable"));
    assert!(code(&b).len() > 3 && b["message"].as_str().unwrap().contains("ConnectionLost"));
    let (_, page) = app
        .get(&format!("/api/v1/instances?q={}", f.dev[2]), Some(&alice))
        .await;
    assert_eq!(page["items"][0]["grantable"], false);

    // None of the refused requests reached AWS or the database.
    assert!(app.commands().await.is_empty());
    let (_, list) = app.get("/api/v1/requests", Some(&alice)).await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn requester_groups_restrict_who_may_ask() {
    let app = spawn_app_with(|s| {
        s.environments.get_mut("prod").unwrap().requester_group = Some("oncall".into());
    })
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
    let (status, b) = app
        .create_request(&app.token("alice", &[]), body("prod", &prod))
        .await;
    assert_eq!((status, code(&b)), (403, "not_a_requester"));
    let (status, b) = app
        .create_request(&app.token("alice", &["oncall"]), body("prod", &prod))
        .await;
    assert_eq!(status, 201, "{b}");
}

#[tokio::test]
async fn visibility_of_requests() {
    let app = spawn_app().await;
    let f = fleet(&app).await;
    let alice = app.token("alice", &[]);
    let bob = app.token("bob", &[]);
    let dave = app.token("dave", &["dev-approvers"]);
    let (_, a) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [f.dev[0]], "subjects": ["carol"], "duration_minutes": 30, "reason": "for carol"}))
        .await;
    let id = a["id"].as_str().unwrap();
    let carol = app.token("carol", &[]);
    for (token, visible) in [(&alice, true), (&carol, true), (&dave, true), (&bob, false)] {
        let (status, _) = app
            .get(&format!("/api/v1/requests/{id}"), Some(token))
            .await;
        assert_eq!(status, if visible { 200 } else { 404 });
        let (_, list) = app.get("/api/v1/requests", Some(token)).await;
        assert_eq!(
            list["items"].as_array().unwrap().len(),
            usize::from(visible)
        );
    }
    // Access for somebody else is not auto-approved: an approver decides.
    assert_eq!(a["status"], "pending_approval");
    let (status, _) = app
        .post(
            &format!("/api/v1/requests/{id}/approve"),
            Some(&dave),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    // The requester who is not a subject gets no key.
    app.settle().await;
    let (status, b) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&alice))
        .await;
    assert_eq!((status, code(&b)), (403, "not_a_subject"));
    let (status, _) = app
        .get(&format!("/api/v1/requests/{id}/credentials"), Some(&carol))
        .await;
    assert_eq!(status, 200);
    let (_, list) = app
        .get("/api/v1/requests?person=carol&status=active", Some(&dave))
        .await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let (_, list) = app
        .get("/api/v1/requests?environment=prod", Some(&dave))
        .await;
    assert!(list["items"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn hardening_against_abuse() {
    let app = spawn_app_with(|s| s.max_open_requests_per_user = 2).await;
    let f = fleet(&app).await;
    let alice = app.token("alice", &[]);
    let dave = app.token("dave", &["dev-approvers"]);

    // A body that is present must be valid: a broken or unknown-field comment is a 400, never ignored.
    let (_, req) = app
        .create_request(&alice, json!({"environment": "dev", "instance_ids": [f.dev[0]], "subjects": ["bob"], "duration_minutes": 30, "reason": "for bob"}))
        .await;
    let id = req["id"].as_str().unwrap();
    let approve = format!("/api/v1/requests/{id}/approve");
    let (status, b) = app
        .post(
            &approve,
            Some(&dave),
            json!({"comment": "fine", "force": true}),
        )
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"));
    let (status, b) = app
        .post_raw(
            &format!("/api/v1/requests/{id}/reject"),
            &dave,
            r#"{"comment":"#,
        )
        .await;
    assert_eq!((status, code(&b)), (400, "invalid_body"));
    let (status, b) = app
        .post(
            &approve,
            Some(&dave),
            json!({"comment": "fine \u{202E}reversed"}),
        )
        .await;
    assert_eq!((status, code(&b)), (422, "invalid_comment"));
    let (status, b) = app
        .post(&approve, Some(&dave), json!({"comment": "fine"}))
        .await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(b["decision_comment"], "fine");

    // One person cannot flood the worker: open requests are limited.
    let (status, _) = app.create_request(&alice, body("dev", &f.dev[1..2])).await;
    assert_eq!(status, 201);
    let (status, b) = app.create_request(&alice, body("dev", &f.dev[2..3])).await;
    assert_eq!((status, code(&b)), (429, "too_many_open_requests"));

    // "system" is the worker's name in the audit trail; no token may claim it.
    let system = app
        .ctx
        .tokens
        .issue(
            &gatekeeper::domain::SubjectId::parse("alice").unwrap(),
            None,
            None,
            vec![],
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let forged_claims = system.replace(
        system.split('.').nth(1).unwrap(),
        &base64_url(br#"{"sub":"system","iss":"gatekeeper","aud":"gatekeeper","iat":0,"exp":1}"#),
    );
    let (status, _) = app.get("/api/v1/me", Some(&forged_claims)).await;
    assert_eq!(status, 401, "a tampered token is refused");
    assert!(gatekeeper::domain::SubjectId::parse("system").is_err());

    // Display names from tokens are stored as clean text; the scheme is case-insensitive.
    let named = app
        .ctx
        .tokens
        .issue(
            &gatekeeper::domain::SubjectId::parse("nina").unwrap(),
            Some("Ni\u{0}na\u{1b}[31m<b>\u{202E}".into()),
            None,
            vec![],
            chrono::Utc::now(),
            chrono::Duration::hours(1),
        )
        .unwrap();
    let response = app
        .http
        .get(format!("{}/api/v1/me", app.address))
        .header("Authorization", format!("BEARER {named}"))
        .send()
        .await
        .unwrap();
    let (status, me) = read(response).await;
    assert_eq!(status, 200);
    assert_eq!(me["name"], "Nina[31m<b>");
}

#[tokio::test]
async fn history_filters_and_summaries() {
    let app = spawn_app().await;
    let f = fleet(&app).await;
    let alice = app.token("alice", &[]);
    let (_, a) = app.create_request(&alice, body("dev", &f.dev[..2])).await;
    let (_, b) = app.create_request(&alice, body("dev", &f.dev[2..3])).await;
    let b_id = b["id"].as_str().unwrap();
    let (status, _) = app
        .post(
            &format!("/api/v1/requests/{b_id}/cancel"),
            Some(&alice),
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    let (_, list) = app.get("/api/v1/requests", Some(&alice)).await;
    let first = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == a["id"])
        .unwrap()
        .clone();
    assert_eq!(first["subject_ids"], json!(["alice"]));
    assert_eq!(first["instance_ids"].as_array().unwrap().len(), 2);
    let statuses = |summary: &Value| -> Vec<(String, String, String)> {
        summary["grant_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["subject"].as_str().unwrap().to_owned(),
                    g["instance_id"].as_str().unwrap().to_owned(),
                    g["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut dev = f.dev[..2].to_vec();
    dev.sort();
    let expect = |status: &str| -> Vec<(String, String, String)> {
        dev.iter()
            .map(|i| ("alice".to_owned(), i.clone(), status.to_owned()))
            .collect()
    };
    assert_eq!(statuses(&first), expect("pending"));
    // Once granted, the list says so per subject and instance, as the detail does.
    app.settle().await;
    let (_, list) = app.get("/api/v1/requests", Some(&alice)).await;
    let first = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == a["id"])
        .unwrap()
        .clone();
    assert_eq!(statuses(&first), expect("active"));
    let detail = app.request(&alice, a["id"].as_str().unwrap()).await;
    assert_eq!(statuses(&detail), expect("active"));

    let (_, finished) = app
        .get("/api/v1/requests?finished=true", Some(&alice))
        .await;
    let items = finished["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], b["id"]);
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let (_, none) = app
        .get(
            &format!("/api/v1/requests?from={}", later.replace('+', "%2B")),
            Some(&alice),
        )
        .await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, all) = app
        .get(
            &format!("/api/v1/requests?to={}", later.replace('+', "%2B")),
            Some(&alice),
        )
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
    let (status, body) = app
        .get("/api/v1/requests?from=yesterday", Some(&alice))
        .await;
    assert_eq!((status, code(&body)), (422, "invalid_time"));
}

#[tokio::test]
async fn demo_identities_only_when_configured() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/v1/demo/identities", None).await;
    assert_eq!((status, code(&body)), (404, "not_found"));
    let app = spawn_app_with(|s| {
        s.auth.demo_identities = vec![gatekeeper::config::DemoIdentity {
            sub: "alice".into(),
            name: "Alice".into(),
            groups: vec!["engineers".into()],
        }];
    })
    .await;
    let (status, ids) = app.get("/api/v1/demo/identities", None).await;
    assert_eq!(status, 200);
    let token = ids[0]["token"].as_str().unwrap();
    let (status, me) = app.get("/api/v1/me", Some(token)).await;
    assert_eq!(status, 200);
    assert_eq!(me["id"], "alice");
    assert_eq!(me["groups"], json!(["engineers"]));
}

#[tokio::test]
async fn the_approval_queue_pages_exactly_over_what_the_approver_may_decide() {
    let app = spawn_app().await;
    let f = fleet(&app).await;
    let dave = app.token("dave", &["prod-approvers"]);
    let mut decidable = Vec::new();
    // Requests dave may decide, interleaved with his own and ones that grant him access: those
    // must neither show up nor cut a page short and lose the cursor.
    for round in 0..4 {
        let requester = format!("user{round}");
        let (status, b) = app
            .create_request(&app.token(&requester, &[]), body("prod", &f.prod))
            .await;
        assert_eq!(status, 201, "{b}");
        decidable.push(b["id"].as_str().unwrap().to_owned());
        let (status, _) = app.create_request(&dave, body("prod", &f.prod)).await;
        assert_eq!(status, 201);
        let mut for_dave = body("prod", &f.prod);
        for_dave["subjects"] = json!([requester, "dave"]);
        let (status, _) = app
            .create_request(&app.token(&requester, &[]), for_dave)
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    for _ in 0..10 {
        let (status, page) = app
            .get(
                &format!("/api/v1/requests?awaiting_my_decision=true&limit=1&cursor={cursor}"),
                Some(&dave),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "a page came back short: {page}");
        seen.push(items[0]["id"].as_str().unwrap().to_owned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = c.to_owned(),
            None => break,
        }
    }
    seen.sort();
    decidable.sort();
    assert_eq!(seen, decidable);
}

#[tokio::test]
async fn list_filters_outside_what_the_store_compares_are_refused() {
    let app = spawn_app().await;
    let f = fleet(&app).await;
    let alice = app.token("alice", &[]);
    let (status, _) = app.create_request(&alice, body("dev", &f.dev[..1])).await;
    assert_eq!(status, 201);
    let cursor = |micros: &str| {
        base64_url(format!("{micros}|00000000-0000-0000-0000-000000000000").as_bytes())
    };
    for query in [
        format!("cursor={}", cursor("-8000000000000000000")),
        format!("cursor={}", cursor("8000000000000000000")),
    ] {
        let (status, b) = app
            .get(&format!("/api/v1/requests?{query}"), Some(&alice))
            .await;
        assert_eq!((status, code(&b)), (422, "invalid_cursor"), "{query}: {b}");
    }
    for query in [
        "from=9999-12-31T23:59:59-23:59",
        "to=9999-12-31T23:59:59-23:59",
        "from=1969-12-31T23:59:59Z",
    ] {
        let (status, b) = app
            .get(&format!("/api/v1/requests?{query}"), Some(&alice))
            .await;
        assert_eq!((status, code(&b)), (422, "invalid_time"), "{query}: {b}");
    }
    // The approval queue is pending requests: another status or finished=true contradicts it.
    for query in ["status=rejected", "finished=true"] {
        let (status, b) = app
            .get(
                &format!("/api/v1/requests?awaiting_my_decision=true&{query}"),
                Some(&alice),
            )
            .await;
        assert_eq!((status, code(&b)), (422, "invalid_status"), "{query}: {b}");
    }
    let (status, b) = app
        .get(
            "/api/v1/requests?awaiting_my_decision=true&status=pending_approval",
            Some(&alice),
        )
        .await;
    assert_eq!(status, 200, "{b}");
    // An empty subject list is not "the caller": leave the field out for that.
    let mut empty = body("dev", &f.dev[1..2]);
    empty["subjects"] = json!([]);
    let (status, b) = app.create_request(&alice, empty).await;
    assert_eq!((status, code(&b)), (422, "invalid_subject"), "{b}");
}
