//! One typed settings struct: built-in defaults, then an optional TOML file, then `GATEKEEPER_*`
//! environment variables (nested keys joined with `__`, e.g. `GATEKEEPER_AWS__ENDPOINT_URL`).
//!
//! Secrets are wrapped in [`Secret`] so that `Debug` output never shows them, and every check that can
//! fail at start-up does so with a message that names the setting.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

use crate::domain::{EnvironmentName, SubjectId};

/// A string that never appears in logs or `Debug` output.
#[derive(Clone, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("Secret(<empty>)")
        } else {
            f.write_str("Secret(<redacted>)")
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server listens on, e.g. `127.0.0.1:8080`. Port 0 picks a free port.
    pub listen: String,
    /// `sqlite://path/to/file.db` (or a bare path) for the embedded store, `postgres://…` for PostgreSQL.
    pub database_url: String,
    /// Connections in the PostgreSQL pool (SQLite always uses one writer connection).
    pub database_pool_size: u32,
    pub auth: AuthSettings,
    pub aws: AwsSettings,
    pub inventory: InventorySettings,
    pub worker: WorkerSettings,
    pub documents: DocumentSettings,
    /// Base64 of 32 random bytes: encrypts private keys at rest until their subject collects them.
    pub encryption_key: Secret,
    /// Directory with the built single-page application, served from `/` when present.
    pub static_dir: Option<String>,
    /// Origins (`https://host[:port]`) of a browser client served elsewhere, allowed to call the API
    /// from the browser (CORS). Empty: only pages of this server's own origin can read its answers.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Requests one person may have open (not yet ended) at once; keeps one user from flooding the worker.
    pub max_open_requests_per_user: u32,
    /// Environments by name with their access policy.
    pub environments: BTreeMap<String, EnvironmentPolicy>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// HS256 secret for bearer tokens issued by this server (`gatekeeper token`). At least 32 bytes.
    pub jwt_secret: Secret,
    /// `iss` claim written into and required from tokens.
    pub issuer: String,
    /// `aud` claim written into and required from tokens.
    pub audience: String,
    /// Demo only: identities the sign-in page offers with ready tokens (`GET /api/v1/demo/identities`).
    /// Anyone who can reach the server can sign in as them: never set this in production.
    #[serde(default)]
    pub demo_identities: Vec<DemoIdentity>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DemoIdentity {
    pub sub: String,
    pub name: String,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AwsSettings {
    /// Regions whose instances are inventoried and managed.
    pub regions: Vec<String>,
    /// Endpoint override for every AWS call (a local emulator); unset for real AWS.
    pub endpoint_url: Option<String>,
    /// Maximum SDK attempts per call (1 disables retries; useful against an emulator).
    pub max_attempts: u32,
    /// Fixed credentials, for an emulator. Leave unset in production: the SDK's default chain (instance
    /// role, environment, profile) is used then.
    pub static_credentials: Option<StaticCredentials>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InventorySettings {
    /// Tag whose value names an instance's environment.
    pub environment_tag: String,
    /// Account id → environment, for accounts that hold one environment each (wins over the tag).
    pub account_environments: BTreeMap<String, String>,
    /// Seconds between two inventory syncs.
    pub sync_interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSettings {
    /// Run the grant/revoke worker in this process.
    pub enabled: bool,
    /// Longest sleep between two looks at the job table (other replicas may have queued work).
    pub poll_interval_seconds: u64,
    /// How long a claimed job stays leased to this replica before another may take it over.
    pub lease_seconds: u64,
    /// Seconds an SSM command may run on an instance before it is cancelled and counted as failed.
    pub command_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DocumentSettings {
    /// Prefix of the SSM document names this server creates and uses.
    pub name_prefix: String,
    /// Create or update the documents in SSM at start.
    pub stage_on_start: bool,
}

/// The access policy of one environment.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentPolicy {
    /// Requests up to this many minutes are approved at once; 0 means every request needs approval.
    pub auto_approve_max_minutes: u32,
    /// Whether requests that give access to other people than the requester are approved at once too
    /// (within `auto_approve_max_minutes`). Off by default: access for others needs an approver.
    #[serde(default)]
    pub auto_approve_others: bool,
    /// Longest access a request may ask for.
    pub max_minutes: u32,
    /// Members of this group approve or reject requests of this environment.
    pub approver_group: String,
    /// When set, only members of this group may ask for access here.
    #[serde(default)]
    pub requester_group: Option<String>,
    /// Whether subjects get passwordless sudo on Linux instances.
    #[serde(default)]
    pub sudo: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://gatekeeper.db".into(),
            database_pool_size: 8,
            auth: AuthSettings {
                jwt_secret: Secret::default(),
                issuer: "gatekeeper".into(),
                audience: "gatekeeper".into(),
                demo_identities: Vec::new(),
            },
            aws: AwsSettings {
                regions: vec!["us-east-1".into()],
                endpoint_url: None,
                max_attempts: 3,
                static_credentials: None,
            },
            inventory: InventorySettings {
                environment_tag: "Environment".into(),
                account_environments: BTreeMap::new(),
                sync_interval_seconds: 300,
            },
            worker: WorkerSettings {
                enabled: true,
                poll_interval_seconds: 2,
                lease_seconds: 300,
                command_timeout_seconds: 600,
            },
            documents: DocumentSettings {
                name_prefix: "Gatekeeper".into(),
                stage_on_start: true,
            },
            encryption_key: Secret::default(),
            static_dir: None,
            cors_origins: Vec::new(),
            max_open_requests_per_user: 20,
            environments: BTreeMap::new(),
        }
    }
}

const TOP_LEVEL_KEYS: &[&str] = &[
    "listen",
    "database_url",
    "database_pool_size",
    "auth",
    "aws",
    "inventory",
    "worker",
    "documents",
    "encryption_key",
    "static_dir",
    "cors_origins",
    "max_open_requests_per_user",
    "environments",
];

/// `GATEKEEPER_*` variables that are not settings but are read elsewhere: by the binary itself
/// (`CONFIG`, `LOG_FORMAT`) and by the project's scripts and tests.
const NOT_SETTINGS: &[&str] = &[
    "CONFIG",
    "LOG_FORMAT",
    "PORT",
    "EMULATOR_PORT",
    "VENV",
    "TOOLS",
    "TEST_DB",
    "TEST_PYTHON",
];

/// `GATEKEEPER_*` environment variables that are neither settings nor known to anything else —
/// most likely misspelt settings, which [`Settings::load`] cannot see. The server warns about them.
pub fn unknown_variables() -> Vec<String> {
    let mut unknown: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            let Some(rest) = k.strip_prefix("GATEKEEPER_") else {
                return false;
            };
            let top = rest.split("__").next().unwrap_or_default();
            !TOP_LEVEL_KEYS.iter().any(|t| t.eq_ignore_ascii_case(top))
                && !NOT_SETTINGS.contains(&rest)
        })
        .collect();
    unknown.sort();
    unknown
}

/// A configuration problem, naming the setting at fault.
#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

impl Settings {
    /// Defaults, then `file` (if given; it must exist), then the `GATEKEEPER_*` environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(ConfigError(format!(
                    "config file {} does not exist",
                    path.display()
                )));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only settings: other GATEKEEPER_* variables (GATEKEEPER_CONFIG, GATEKEEPER_LOG_FORMAT, the
        // scripts' own) are not settings and must not trip the unknown-field check.
        figment = figment.merge(
            Env::prefixed("GATEKEEPER_")
                .filter(|key| {
                    let top = key.as_str().split("__").next().unwrap_or_default();
                    TOP_LEVEL_KEYS.iter().any(|k| k.eq_ignore_ascii_case(top))
                })
                .split("__"),
        );
        let settings: Settings = figment.extract().map_err(|e| {
            ConfigError(
                e.into_iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks what serde cannot: lengths, names, ranges.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(m));
        if self.auth.jwt_secret.expose().len() < 32 {
            return err("auth.jwt_secret (GATEKEEPER_AUTH__JWT_SECRET) must be set to at least 32 characters".into());
        }
        for d in &self.auth.demo_identities {
            if SubjectId::parse(&d.sub).is_err() {
                return err(format!(
                    "auth.demo_identities: {:?} is not a user id",
                    d.sub
                ));
            }
        }
        if self.encryption_key().is_err() {
            return err("encryption_key (GATEKEEPER_ENCRYPTION_KEY) must be the base64 encoding of exactly 32 bytes, e.g. from `openssl rand -base64 32`".into());
        }
        if self.aws.regions.is_empty() {
            return err(
                "aws.regions (GATEKEEPER_AWS__REGIONS) must name at least one region".into(),
            );
        }
        for region in &self.aws.regions {
            let ok = !region.is_empty()
                && region.len() <= 32
                && region
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
            if !ok {
                return err(format!("aws.regions: {region:?} is not a region name"));
            }
        }
        if self.aws.max_attempts == 0 {
            return err("aws.max_attempts must be at least 1".into());
        }
        for origin in &self.cors_origins {
            let host = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            let ok = host.is_some_and(|h| {
                !h.is_empty()
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            });
            if !ok {
                return err(format!(
                    "cors_origins: {origin:?} is not an origin such as https://gatekeeper.example.com (scheme and host, optional port, no path, no wildcard)"
                ));
            }
        }
        if self.max_open_requests_per_user == 0 {
            return err("max_open_requests_per_user must be at least 1".into());
        }
        if self.database_pool_size == 0 {
            return err("database_pool_size must be at least 1".into());
        }
        if self.environments.is_empty() {
            return err(
                "environments: configure at least one environment (e.g. [environments.dev])".into(),
            );
        }
        for (name, policy) in &self.environments {
            if EnvironmentName::parse(name).is_err() {
                return err(format!(
                    "environments.{name}: an environment name is 1-32 characters of a-z, 0-9, '-' and '_'"
                ));
            }
            if policy.max_minutes == 0 || policy.max_minutes > 7 * 24 * 60 {
                return err(format!(
                    "environments.{name}.max_minutes must be between 1 and 10080 (one week)"
                ));
            }
            if policy.auto_approve_max_minutes > policy.max_minutes {
                return err(format!(
                    "environments.{name}.auto_approve_max_minutes must not exceed max_minutes"
                ));
            }
            if policy.approver_group.trim().is_empty() {
                return err(format!(
                    "environments.{name}.approver_group must name a group"
                ));
            }
        }
        for (account, env) in &self.inventory.account_environments {
            if !self.environments.contains_key(env) {
                return err(format!(
                    "inventory.account_environments.{account} names environment {env:?}, which is not configured"
                ));
            }
        }
        if self.inventory.sync_interval_seconds == 0 {
            return err("inventory.sync_interval_seconds must be at least 1".into());
        }
        if self.worker.command_timeout_seconds < 30
            || self.worker.command_timeout_seconds > 2 * 3600
        {
            return err("worker.command_timeout_seconds must be between 30 and 7200".into());
        }
        if self.worker.lease_seconds < 10 {
            return err("worker.lease_seconds must be at least 10".into());
        }
        let prefix_ok = !self.documents.name_prefix.is_empty()
            && self.documents.name_prefix.len() <= 64
            && self
                .documents
                .name_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
        if !prefix_ok {
            return err(
                "documents.name_prefix must be 1-64 characters of A-Z, a-z, 0-9, '-', '_' and '.'"
                    .into(),
            );
        }
        Ok(())
    }

    /// The 32-byte key that encrypts private keys at rest.
    pub fn encryption_key(&self) -> Result<[u8; 32], ConfigError> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(self.encryption_key.expose().trim())
            .map_err(|_| ConfigError("encryption_key is not base64".into()))?;
        bytes
            .try_into()
            .map_err(|_| ConfigError("encryption_key must decode to 32 bytes".into()))
    }

    pub fn policy(&self, environment: &EnvironmentName) -> Option<&EnvironmentPolicy> {
        self.environments.get(environment.as_str())
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use figment::Jail;

    use super::*;

    const SECRET: &str = "a-jwt-secret-of-at-least-32-characters";
    const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";

    fn minimal(jail: &mut Jail) {
        // Whatever the developer's shell exports stays out of the test (restored afterwards).
        jail.clear_env();
        jail.set_env("GATEKEEPER_AUTH__JWT_SECRET", SECRET);
        jail.set_env("GATEKEEPER_ENCRYPTION_KEY", KEY);
        jail.set_env(
            "GATEKEEPER_ENVIRONMENTS__DEV__AUTO_APPROVE_MAX_MINUTES",
            "60",
        );
        jail.set_env("GATEKEEPER_ENVIRONMENTS__DEV__MAX_MINUTES", "120");
        jail.set_env(
            "GATEKEEPER_ENVIRONMENTS__DEV__APPROVER_GROUP",
            "dev-approvers",
        );
    }

    fn refused(jail: &mut Jail, file: Option<&str>) -> String {
        let path = file.map(|content| {
            jail.create_file("gatekeeper.toml", content)
                .expect("the jail writes files");
            PathBuf::from("gatekeeper.toml")
        });
        match Settings::load(path.as_deref()) {
            Ok(_) => panic!("the configuration was accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn environment_overrides_the_file_which_overrides_the_defaults() {
        Jail::expect_with(|jail| {
            minimal(jail);
            jail.create_file(
                "gatekeeper.toml",
                r#"
                listen = "0.0.0.0:9000"
                database_url = "postgres://gk@db/gatekeeper"
                [aws]
                regions = ["eu-west-1", "eu-central-1"]
                [environments.prod]
                auto_approve_max_minutes = 0
                max_minutes = 240
                approver_group = "prod-approvers"
                sudo = true
                "#,
            )?;
            jail.set_env("GATEKEEPER_LISTEN", "127.0.0.1:7000");
            jail.set_env(
                "GATEKEEPER_CORS_ORIGINS",
                r#"["https://ui.example.com:8443"]"#,
            );
            let s =
                Settings::load(Some(Path::new("gatekeeper.toml"))).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "127.0.0.1:7000");
            assert_eq!(s.cors_origins, ["https://ui.example.com:8443"]);
            assert_eq!(s.database_url, "postgres://gk@db/gatekeeper");
            assert_eq!(s.aws.regions, ["eu-west-1", "eu-central-1"]);
            assert_eq!(s.inventory.environment_tag, "Environment");
            assert!(s.environments["prod"].sudo);
            assert_eq!(s.environments["dev"].max_minutes, 120);
            assert_eq!(s.environments["dev"].approver_group, "dev-approvers");
            // Secrets never show in Debug output.
            let debug = format!("{s:?}");
            assert!(!debug.contains(SECRET) && !debug.contains(KEY), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn bad_configuration_names_the_setting() {
        Jail::expect_with(|jail| {
            minimal(jail);
            jail.set_env("GATEKEEPER_AUTH__JWT_SECRET", "short");
            assert!(refused(jail, None).contains("auth.jwt_secret"));
            minimal(jail);
            jail.set_env("GATEKEEPER_ENCRYPTION_KEY", "bm90IDMyIGJ5dGVz");
            assert!(refused(jail, None).contains("encryption_key"));
            minimal(jail);
            jail.set_env("GATEKEEPER_ENVIRONMENTS__DEV__MAX_MINUTES", "30");
            let e = refused(jail, None);
            assert!(
                e.contains("environments.dev.auto_approve_max_minutes"),
                "{e}"
            );
            minimal(jail);
            jail.set_env("GATEKEEPER_ENVIRONMENTS__DEV__MAX_MINUTES", "soon");
            let e = refused(jail, None);
            assert!(
                e.to_lowercase().contains("environments.dev.max_minutes"),
                "{e}"
            );
            minimal(jail);
            jail.set_env("GATEKEEPER_AWS__REGIONS", r#"["us-east-1; rm -rf /"]"#);
            assert!(refused(jail, None).contains("aws.regions"));
            minimal(jail);
            jail.set_env("GATEKEEPER_ENVIRONMENTS__DEV__APPROVER_GROUP", " ");
            assert!(refused(jail, None).contains("environments.dev.approver_group"));
            minimal(jail);
            for origin in [
                "*",
                "https://ui.example.com/",
                "ui.example.com",
                "https://*.example.com",
            ] {
                jail.set_env("GATEKEEPER_CORS_ORIGINS", format!("[{origin:?}]"));
                let e = refused(jail, None);
                assert!(e.contains("cors_origins"), "{origin}: {e}");
            }
            minimal(jail);
            // A misspelt key in a file is refused by name, never silently ignored.
            let e = refused(jail, Some("[worker]\npoll_interval_second = 5\n"));
            assert!(e.contains("poll_interval_second"), "{e}");
            let e = refused(jail, Some("[environments.prod]\nmax_minutes = 60\n"));
            assert!(
                e.contains("environments.prod") && e.contains("auto_approve_max_minutes"),
                "{e}"
            );
            let e = refused(jail, Some("database_pool_size = -1\n"));
            assert!(e.contains("database_pool_size"), "{e}");
            // A config file that is not there is an error, not an empty file.
            match Settings::load(Some(Path::new("missing.toml"))) {
                Ok(_) => panic!("a missing file was accepted"),
                Err(e) => assert!(e.to_string().contains("missing.toml")),
            }
            Ok(())
        });
    }

    #[test]
    fn variables_that_are_not_settings_are_ignored_but_reported() {
        Jail::expect_with(|jail| {
            minimal(jail);
            jail.set_env("GATEKEEPER_CONFIG", "elsewhere.toml");
            jail.set_env("GATEKEEPER_LOG_FORMAT", "json");
            jail.set_env("GATEKEEPER_DATABSE_URL", "postgres://typo");
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert_eq!(s.database_url, "sqlite://gatekeeper.db");
            assert_eq!(unknown_variables(), ["GATEKEEPER_DATABSE_URL"]);
            Ok(())
        });
    }

    /// The compose file's settings are ones this server accepts.
    #[test]
    fn the_compose_file_configures_a_valid_server() {
        let compose = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../docker-compose.yml"
        ))
        .expect("docker-compose.yml is beside the workspace manifest");
        let compose: serde_yaml::Value = serde_yaml::from_str(&compose).expect("valid YAML");
        let env = compose["services"]["gatekeeper"]["environment"]
            .as_mapping()
            .expect("the gatekeeper service sets its environment as a map")
            .clone();
        Jail::expect_with(|jail| {
            jail.clear_env();
            for (name, value) in env {
                let name = name
                    .as_str()
                    .expect("variable names are strings")
                    .to_owned();
                let value = match value {
                    serde_yaml::Value::String(s) => s,
                    other => panic!("{name}: quote the value ({other:?}); compose wants strings"),
                };
                // `${VAR:?message}` is filled in by compose from the operator's environment.
                let value = if value.starts_with("${GATEKEEPER_JWT_SECRET") {
                    SECRET.to_owned()
                } else if value.starts_with("${GATEKEEPER_ENCRYPTION_KEY") {
                    KEY.to_owned()
                } else {
                    assert!(!value.contains("${"), "{name}: unexpected substitution");
                    value
                };
                jail.set_env(&name, value);
            }
            assert!(
                unknown_variables().is_empty(),
                "not settings: {:?}",
                unknown_variables()
            );
            let s = Settings::load(None).map_err(|e| e.to_string())?;
            assert!(s.database_url.starts_with("postgres://"));
            assert_eq!(s.listen, "0.0.0.0:8080");
            assert!(s.aws.endpoint_url.is_some());
            assert!(s.environments.contains_key("prod") && s.environments.contains_key("dev"));
            Ok(())
        });
    }
}
