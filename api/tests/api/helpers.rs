//! `spawn_app()`: a Gatekeeper on a random port with its own database (SQLite file or PostgreSQL
//! database, chosen by `GATEKEEPER_TEST_DB`), its own account in the AWS emulator, a hand-moved clock
//! and a worker that the test drives.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_sdk_ec2::types::{InstanceType, ResourceType, Tag, TagSpecification};
use chrono::Utc;
use diesel::Connection;
use diesel::connection::SimpleConnection;
use gatekeeper::clock::{Clock, ManualClock};
use gatekeeper::config::{EnvironmentPolicy, Secret, Settings, StaticCredentials};
use gatekeeper::context::Context;
use gatekeeper::domain::SubjectId;
use gatekeeper::startup::Application;
use gatekeeper::worker::{RunOutcome, Worker};
use serde_json::Value;

pub const LINUX_AMI: &str = "ami-1e749f67";
pub const WINDOWS_AMI: &str = "ami-03cf127a";
pub const REGION: &str = "us-east-1";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

struct Emulator {
    url: String,
    _child: Child,
}

/// One emulator per test binary; every test gets its own account in it.
fn emulator() -> &'static str {
    static EMULATOR: OnceLock<Emulator> = OnceLock::new();
    &EMULATOR
        .get_or_init(|| {
            if let Ok(url) = std::env::var("GATEKEEPER_TEST_EMULATOR_URL") {
                return Emulator {
                    url,
                    _child: Command::new("true").spawn().expect("spawn true"),
                };
            }
            let python = std::env::var("GATEKEEPER_TEST_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|_| repo_root().join(".venv/bin/python"));
            assert!(
                python.exists(),
                "the AWS emulator needs {} (run scripts/test.sh, which creates it)",
                python.display()
            );
            let port = free_port();
            let child = Command::new(python)
                .arg(repo_root().join("tests/emulator/server.py"))
                .args(["--port", &port.to_string(), "--exit-with-parent"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start the AWS emulator");
            let url = format!("http://127.0.0.1:{port}");
            let health = format!("{url}/_gatekeeper/health");
            for _ in 0..200 {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
                    && ureq_get(&health).is_some()
                {
                    return Emulator { url, _child: child };
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            panic!("the AWS emulator did not start on port {port}");
        })
        .url
}

fn ureq_get(url: &str) -> Option<String> {
    // A tiny blocking GET without another HTTP client dependency.
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/')?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    write!(stream, "GET /{path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    body.lines()
        .next()
        .is_some_and(|l| l.contains(" 200 "))
        .then_some(body)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn backend() -> String {
    std::env::var("GATEKEEPER_TEST_DB").unwrap_or_else(|_| "sqlite".into())
}

/// A fresh database URL for one test.
fn database_url(dir: &Path) -> String {
    match backend().as_str() {
        "postgres" => {
            let admin = std::env::var("GATEKEEPER_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("gk_t_{}", uuid::Uuid::new_v4().simple());
            let mut conn = diesel::PgConnection::establish(&admin).unwrap_or_else(|e| {
                panic!("PostgreSQL at {admin} is required for GATEKEEPER_TEST_DB=postgres: {e}")
            });
            conn.batch_execute(&format!("CREATE DATABASE {name}"))
                .expect("create the test database");
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .unwrap_or(admin);
            format!("{base}/{name}")
        }
        "sqlite" => format!("sqlite://{}", dir.join("gatekeeper.db").display()),
        other => panic!("GATEKEEPER_TEST_DB must be sqlite or postgres, not {other}"),
    }
}

pub fn policy(auto: u32, max: u32, approvers: &str) -> EnvironmentPolicy {
    EnvironmentPolicy {
        auto_approve_max_minutes: auto,
        auto_approve_others: false,
        max_minutes: max,
        approver_group: approvers.into(),
        requester_group: None,
        sudo: false,
    }
}

pub fn test_settings(account: &str, dir: &Path) -> Settings {
    let mut s = Settings::default();
    s.listen = "127.0.0.1:0".into();
    s.database_url = database_url(dir);
    s.database_pool_size = 4;
    s.auth.jwt_secret = Secret::new("test-secret-test-secret-test-secret-0123");
    s.encryption_key = Secret::new("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=");
    s.aws.regions = vec![REGION.into()];
    s.aws.endpoint_url = Some(emulator().to_owned());
    s.aws.max_attempts = 1;
    s.aws.static_credentials = Some(StaticCredentials {
        access_key_id: account.into(),
        secret_access_key: Secret::new("emulator"),
    });
    s.worker.enabled = false;
    s.worker.command_timeout_seconds = 300;
    s.inventory.sync_interval_seconds = 3600;
    s.environments = BTreeMap::from([
        ("dev".into(), policy(240, 480, "dev-approvers")),
        ("qa".into(), policy(120, 480, "qa-approvers")),
        ("prod".into(), policy(0, 240, "prod-approvers")),
    ]);
    s
}

pub struct TestApp {
    pub address: String,
    pub http: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub ctx: Context,
    pub worker: Worker,
    pub ec2: aws_sdk_ec2::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub emulator: String,
    /// This test's account in the emulator.
    pub account_id: String,
    _dir: tempfile::TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    gatekeeper::telemetry::init();
    let dir = tempfile::tempdir().expect("temp dir");
    // The emulator reads the account from an access key of this shape.
    let account = format!("GKTEST00{:012}", rand_u64() % 1_000_000_000_000);
    let mut settings = test_settings(&account, dir.path());
    adjust(&mut settings);
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let app = Application::build_with(settings, clock.clone())
        .await
        .expect("the application builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let ctx = app.context();
    tokio::spawn(app.serve_only());
    gatekeeper::documents::stage(
        ctx.documents.as_ref(),
        &ctx.settings.aws.regions,
        &ctx.settings.documents.name_prefix,
        false,
    )
    .await
    .expect("documents stage");
    let sdk = sdk_config(&account).await;
    TestApp {
        address,
        http: reqwest::Client::new(),
        clock,
        worker: Worker::new(ctx.clone()),
        ctx,
        ec2: aws_sdk_ec2::Client::new(&sdk),
        ssm: aws_sdk_ssm::Client::new(&sdk),
        emulator: emulator().to_owned(),
        account_id: account[8..].to_owned(),
        _dir: dir,
    }
}

fn rand_u64() -> u64 {
    u64::from_le_bytes(
        uuid::Uuid::new_v4().as_bytes()[..8]
            .try_into()
            .expect("8 bytes"),
    )
}

pub async fn sdk_config(account: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .endpoint_url(emulator())
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            account, "emulator", None, None, "test",
        ))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await
}

/// An instance to launch in the emulator.
pub struct Launch<'a> {
    pub env: Option<&'a str>,
    pub name: &'a str,
    pub windows: bool,
}

impl TestApp {
    /// Launches instances through the EC2 SDK; returns their ids.
    pub async fn launch(&self, launch: Launch<'_>, count: i32) -> Vec<String> {
        let mut tags = vec![Tag::builder().key("Name").value(launch.name).build()];
        if let Some(env) = launch.env {
            tags.push(Tag::builder().key("Environment").value(env).build());
        }
        tags.push(Tag::builder().key("Team").value("payments").build());
        let out = self
            .ec2
            .run_instances()
            .image_id(if launch.windows {
                WINDOWS_AMI
            } else {
                LINUX_AMI
            })
            .instance_type(InstanceType::T3Micro)
            .min_count(count)
            .max_count(count)
            .tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .set_tags(Some(tags))
                    .build(),
            )
            .send()
            .await
            .expect("RunInstances");
        out.instances()
            .iter()
            .map(|i| i.instance_id().expect("instance id").to_owned())
            .collect()
    }

    pub async fn sync(&self) -> gatekeeper::service::inventory::SyncReport {
        gatekeeper::service::inventory::sync(&self.ctx).await
    }

    pub async fn control(&self, path: &str, body: Value) {
        let response = self
            .http
            .post(format!("{}/_gatekeeper/{path}", self.emulator))
            .json(&body)
            .send()
            .await
            .expect("emulator control call");
        assert!(
            response.status().is_success(),
            "emulator control {path} failed"
        );
    }

    pub fn token(&self, sub: &str, groups: &[&str]) -> String {
        self.ctx
            .tokens
            .issue(
                &SubjectId::parse(sub).expect("subject"),
                Some(format!("{sub} (test)")),
                None,
                groups.iter().map(|g| g.to_string()).collect(),
                Utc::now(),
                chrono::Duration::hours(8),
            )
            .expect("token")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.get(format!("{}{path}", self.address));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("GET")).await
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self
            .http
            .post(format!("{}{path}", self.address))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        read(req.send().await.expect("POST")).await
    }

    pub async fn post_raw(&self, path: &str, token: &str, body: &str) -> (u16, Value) {
        let req = self
            .http
            .post(format!("{}{path}", self.address))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body.to_owned());
        read(req.send().await.expect("POST")).await
    }

    pub async fn create_request(&self, token: &str, body: Value) -> (u16, Value) {
        self.post("/api/v1/requests", Some(token), body).await
    }

    pub async fn request(&self, token: &str, id: &str) -> Value {
        let (status, body) = self
            .get(&format!("/api/v1/requests/{id}"), Some(token))
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Runs the worker until it is idle, moving the clock forward to each job that is waiting for a
    /// command to finish (so no test sleeps). Jobs that failed and back off, and jobs that never ran
    /// here (a revoke due at the end of access), stay queued: tests move the clock to them on purpose.
    pub async fn settle(&self) -> Vec<RunOutcome> {
        self.settle_with(false).await
    }

    /// Like [`TestApp::settle`], but also waits out the backoff of failed steps.
    pub async fn settle_through_retries(&self) -> Vec<RunOutcome> {
        self.settle_with(true).await
    }

    async fn settle_with(&self, follow_retries: bool) -> Vec<RunOutcome> {
        let mut all: Vec<RunOutcome> = Vec::new();
        for _ in 0..500 {
            let outcomes = self.worker.drain().await.expect("worker runs");
            all.extend(outcomes.iter().cloned());
            let mut last: BTreeMap<String, RunOutcome> = BTreeMap::new();
            for o in all.iter() {
                match o {
                    RunOutcome::Done { job }
                    | RunOutcome::Waiting { job, .. }
                    | RunOutcome::Retry { job, .. } => {
                        last.insert(job.clone(), o.clone());
                    }
                    RunOutcome::Idle => {}
                }
            }
            let next = last
                .values()
                .filter_map(|o| match o {
                    RunOutcome::Waiting { until, .. } => Some(*until),
                    RunOutcome::Retry { until, .. } if follow_retries => Some(*until),
                    _ => None,
                })
                .min();
            match next {
                Some(at) if at > self.clock.now_naive() => self.clock.set(at.and_utc()),
                Some(_) => {}
                None => return all,
            }
        }
        panic!("the worker did not settle");
    }

    /// Moves the clock to `at` and runs whatever became due.
    pub async fn advance_to(&self, at: chrono::DateTime<Utc>) -> Vec<RunOutcome> {
        self.clock.set(at);
        self.settle().await
    }

    /// Every SSM command the emulator recorded for this account.
    pub async fn commands(&self) -> Vec<aws_sdk_ssm::types::Command> {
        self.ssm
            .list_commands()
            .send()
            .await
            .expect("ListCommands")
            .commands()
            .to_vec()
    }
}

pub async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"))
    };
    (status, json)
}

/// The `code` of an error body, checking that it has the documented shape.
pub fn code(body: &Value) -> &str {
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "error without message: {body}"
    );
    body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("error without code: {body}"))
}

pub fn actions(detail: &Value) -> Vec<String> {
    detail["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["action"].as_str().expect("action").to_owned())
        .collect()
}

pub fn param(command: &aws_sdk_ssm::types::Command, name: &str) -> String {
    command
        .parameters()
        .and_then(|p| p.get(name))
        .and_then(|v| v.first())
        .cloned()
        .unwrap_or_default()
}
