//! The committed OpenAPI contract matches the code. `UPDATE_OPENAPI=1` rewrites it.

use std::path::Path;

use crate::helpers::{spawn_app, spawn_app_with};

#[test]
fn openapi_json_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json");
    let generated = gatekeeper::http::openapi_json();
    if std::env::var("UPDATE_OPENAPI").is_ok_and(|v| v == "1") {
        std::fs::write(&path, &generated).expect("write openapi/openapi.json");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "openapi/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p gatekeeper --test api openapi` and commit it"
    );
}

#[tokio::test]
async fn the_server_serves_its_contract_and_every_operation_documents_errors() {
    let app = spawn_app().await;
    let (status, doc) = app.get("/api/openapi.json", None).await;
    assert_eq!(status, 200);
    let committed: serde_json::Value =
        serde_json::from_str(&gatekeeper::http::openapi_json()).unwrap();
    assert_eq!(doc, committed);
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let errors: Vec<_> = responses
                .keys()
                .filter(|c| c.starts_with('4') || c.starts_with('5'))
                .collect();
            assert!(
                !errors.is_empty(),
                "{method} {path} documents no error response"
            );
            for code in errors {
                let schema = &responses[code]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    schema, "#/components/schemas/ErrorBody",
                    "{method} {path} {code}"
                );
            }
            assert!(
                op["tags"].as_array().is_some_and(|t| !t.is_empty()),
                "{method} {path} has no tag"
            );
        }
    }
}

#[tokio::test]
async fn responses_carry_browser_hardening_and_cors_only_for_listed_origins() {
    let spa = tempfile::tempdir().unwrap();
    std::fs::write(
        spa.path().join("index.html"),
        "<!doctype html><title>t</title>",
    )
    .unwrap();
    let dir = spa.path().to_str().unwrap().to_owned();
    let app = spawn_app_with(move |s| {
        s.cors_origins = vec!["https://ui.example.com".into()];
        s.static_dir = Some(dir);
    })
    .await;
    let url = |path: &str| format!("{}{path}", app.address);
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // The API and the browser client (a deep link falls back to index.html) are never framed,
    // sniffed or given inline scripts.
    for path in [
        "/api/v1/health",
        "/requests/some-id",
        "/api/v1/nothing-here",
    ] {
        let r = app.http.get(url(path)).send().await.unwrap();
        let csp = header(&r, "content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(
            csp.contains("script-src 'self' 'wasm-unsafe-eval';"),
            "{path}: {csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(header(&r, "x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            header(&r, "x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            header(&r, "referrer-policy").as_deref(),
            Some("no-referrer")
        );
    }
    let r = app.http.get(url("/requests/some-id")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("<title>t</title>"));
    // Where the browser client is served, API paths still answer in JSON: any case, wrong methods,
    // undecodable paths.
    for (method, path, status) in [
        (reqwest::Method::GET, "/api", 404),
        (reqwest::Method::GET, "/API/v1/me", 404),
        (reqwest::Method::DELETE, "/api/v1/requests", 405),
        (reqwest::Method::POST, "/api/v1/me", 405),
        (reqwest::Method::GET, "/..%2f..%2fetc%2fpasswd", 400),
    ] {
        let r = app
            .http
            .request(method.clone(), url(path))
            .send()
            .await
            .unwrap();
        let (got, body) = crate::helpers::read(r).await;
        assert_eq!(got, status, "{method} {path}: {body}");
        assert!(
            body["code"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }

    // A listed origin gets its preflight answered and may read answers.
    let token = app.token("alice", &[]);
    let preflight = app
        .http
        .request(reqwest::Method::OPTIONS, url("/api/v1/requests"))
        .header("origin", "https://ui.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        header(&preflight, "access-control-allow-origin").as_deref(),
        Some("https://ui.example.com")
    );
    assert!(
        header(&preflight, "access-control-allow-headers")
            .unwrap_or_default()
            .contains("authorization")
    );
    let r = app
        .http
        .get(url("/api/v1/me"))
        .header("origin", "https://ui.example.com")
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://ui.example.com")
    );
    assert_eq!(header(&r, "vary").as_deref(), Some("Origin"));

    // Any other origin gets no CORS headers: the browser keeps the answer from that page, and a
    // preflight finds nothing to allow.
    for origin in [
        "https://evil.example.com",
        "https://ui.example.com.evil.example",
        "null",
    ] {
        let r = app
            .http
            .get(url("/api/v1/me"))
            .header("origin", origin)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(header(&r, "access-control-allow-origin"), None, "{origin}");
        let preflight = app
            .http
            .request(reqwest::Method::OPTIONS, url("/api/v1/requests"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
            .await
            .unwrap();
        assert_ne!(preflight.status(), 204, "{origin}");
        assert_eq!(
            header(&preflight, "access-control-allow-origin"),
            None,
            "{origin}"
        );
    }
}
