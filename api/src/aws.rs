//! AWS behind narrow traits. [`SdkAws`] is the real implementation (aws-sdk-ec2 / aws-sdk-ssm, with an
//! optional endpoint override for an emulator); tests may wrap it to inject faults.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_ssm::types::{CommandInvocationStatus, DocumentFormat, DocumentType};

use crate::config::AwsSettings;
use crate::domain::Platform;

/// An AWS failure, classified as the worker needs it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AwsError {
    #[error("AWS is throttling calls: {0}")]
    Throttling(String),
    /// `GetCommandInvocation` right after `SendCommand`: the invocation is not visible yet.
    #[error("the command invocation does not exist (yet)")]
    InvocationDoesNotExist,
    /// `SendCommand` refused the call because an instance cannot take commands (unknown, stopped,
    /// terminated, not managed by SSM). SSM fails the whole call for one such instance.
    #[error("an instance cannot take commands: {0}")]
    InvalidInstance(String),
    /// `UpdateDocument` with content that an earlier version of the document already has.
    #[error("an earlier version of the document has this content")]
    DuplicateDocumentContent,
    #[error("{0}")]
    Other(String),
}

impl AwsError {
    pub fn is_throttling(&self) -> bool {
        matches!(self, AwsError::Throttling(_))
    }
}

fn classify<E, R>(err: aws_sdk_ssm::error::SdkError<E, R>) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let code = err.code().map(str::to_owned);
    // A service's answer as its code and message (the full context would dump the raw HTTP
    // response into logs and grant errors); anything else (timeouts, connection errors) in full.
    let text = match (&code, err.message()) {
        (Some(code), Some(message)) if !message.is_empty() => format!("{code}: {message}"),
        (Some(code), _) => code.clone(),
        (None, _) => DisplayErrorContext(&err).to_string(),
    };
    match code.as_deref() {
        Some(
            "ThrottlingException"
            | "Throttling"
            | "RequestLimitExceeded"
            | "TooManyRequestsException",
        ) => AwsError::Throttling(text),
        Some("InvocationDoesNotExist") => AwsError::InvocationDoesNotExist,
        Some("InvalidInstanceId") => AwsError::InvalidInstance(text),
        Some("DuplicateDocumentContent") => AwsError::DuplicateDocumentContent,
        _ => AwsError::Other(text),
    }
}

/// An instance as EC2 describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveredInstance {
    pub id: String,
    pub account_id: String,
    pub region: String,
    pub name: String,
    pub platform: Platform,
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub private_dns: Option<String>,
    pub tags: BTreeMap<String, String>,
}

#[async_trait]
pub trait Fleet: Send + Sync + 'static {
    /// Every instance of the region (all pages).
    async fn describe_instances(&self, region: &str) -> Result<Vec<DiscoveredInstance>, AwsError>;
    /// SSM agent ping status by instance id (`Online`, `ConnectionLost`, `Inactive`).
    async fn agent_statuses(&self, region: &str) -> Result<HashMap<String, String>, AwsError>;
}

/// One `SendCommand` call.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub region: String,
    pub document: String,
    pub instance_ids: Vec<String>,
    pub parameters: BTreeMap<String, String>,
    pub comment: String,
    pub timeout_seconds: i32,
}

/// Where one invocation stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvocationState {
    /// Pending, in progress, delayed or being cancelled.
    Running,
    Success,
    /// A final failure: failed, timed out, cancelled, undeliverable, terminated.
    Failed {
        status: String,
        detail: String,
    },
}

#[derive(Debug, Clone)]
pub struct Invocation {
    pub state: InvocationState,
    pub stdout: String,
    pub stderr: String,
}

#[async_trait]
pub trait Commands: Send + Sync + 'static {
    /// Sends a command; returns its id.
    async fn send_command(&self, spec: &CommandSpec) -> Result<String, AwsError>;
    async fn invocation(
        &self,
        region: &str,
        command_id: &str,
        instance_id: &str,
    ) -> Result<Invocation, AwsError>;
    async fn cancel_command(
        &self,
        region: &str,
        command_id: &str,
        instance_ids: &[String],
    ) -> Result<(), AwsError>;
}

/// A document as SSM holds it.
#[derive(Debug, Clone)]
pub struct StoredDocument {
    pub content: String,
    pub default_version: Option<String>,
}

#[async_trait]
pub trait DocumentStore: Send + Sync + 'static {
    /// The default version, or the given one.
    async fn get_document(
        &self,
        region: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredDocument>, AwsError>;
    /// Every version number of the document.
    async fn list_document_versions(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<String>, AwsError>;
    async fn create_document(
        &self,
        region: &str,
        name: &str,
        content: &str,
    ) -> Result<(), AwsError>;
    /// Stores a new version; returns its version number.
    async fn update_document(
        &self,
        region: &str,
        name: &str,
        content: &str,
    ) -> Result<String, AwsError>;
    async fn set_default_version(
        &self,
        region: &str,
        name: &str,
        version: &str,
    ) -> Result<(), AwsError>;
}

struct RegionClients {
    ec2: aws_sdk_ec2::Client,
    ssm: aws_sdk_ssm::Client,
}

/// The SDK-backed implementation of every trait above, one client pair per configured region.
pub struct SdkAws {
    regions: HashMap<String, RegionClients>,
}

impl SdkAws {
    pub async fn new(settings: &AwsSettings) -> Self {
        let mut regions = HashMap::new();
        for region in &settings.regions {
            let mut loader = aws_config::defaults(BehaviorVersion::latest())
                .region(aws_config::Region::new(region.clone()))
                .retry_config(RetryConfig::standard().with_max_attempts(settings.max_attempts))
                .timeout_config(
                    TimeoutConfig::builder()
                        .connect_timeout(Duration::from_secs(5))
                        .operation_attempt_timeout(Duration::from_secs(30))
                        .operation_timeout(Duration::from_secs(90))
                        .build(),
                );
            if let Some(creds) = &settings.static_credentials {
                loader = loader.credentials_provider(aws_sdk_ssm::config::Credentials::new(
                    creds.access_key_id.clone(),
                    creds.secret_access_key.expose().to_owned(),
                    None,
                    None,
                    "gatekeeper-settings",
                ));
            }
            if let Some(url) = &settings.endpoint_url {
                loader = loader.endpoint_url(url);
                // A local emulator needs some credentials but checks none; do not let the default
                // chain wander off to the instance metadata service looking for them.
                if settings.static_credentials.is_none()
                    && is_loopback_url(url)
                    && std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                {
                    loader = loader.credentials_provider(aws_sdk_ssm::config::Credentials::new(
                        "gatekeeper-local",
                        "gatekeeper-local",
                        None,
                        None,
                        "gatekeeper-emulator",
                    ));
                }
            }
            let config = loader.load().await;
            regions.insert(
                region.clone(),
                RegionClients {
                    ec2: aws_sdk_ec2::Client::new(&config),
                    ssm: aws_sdk_ssm::Client::new(&config),
                },
            );
        }
        Self { regions }
    }

    fn region(&self, region: &str) -> Result<&RegionClients, AwsError> {
        self.regions
            .get(region)
            .ok_or_else(|| AwsError::Other(format!("region {region} is not configured")))
    }
}

fn is_loopback_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .unwrap_or(url);
    rest.starts_with("127.") || rest.starts_with("localhost") || rest.starts_with("[::1]")
}

#[async_trait]
impl Fleet for SdkAws {
    async fn describe_instances(&self, region: &str) -> Result<Vec<DiscoveredInstance>, AwsError> {
        let clients = self.region(region)?;
        let mut pages = clients
            .ec2
            .describe_instances()
            .max_results(500)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for reservation in page.reservations() {
                let account = reservation.owner_id().unwrap_or_default().to_owned();
                for instance in reservation.instances() {
                    let Some(id) = instance.instance_id() else {
                        continue;
                    };
                    let tags: BTreeMap<String, String> = instance
                        .tags()
                        .iter()
                        .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
                        .collect();
                    let windows = instance
                        .platform()
                        .map(|p| p.as_str().eq_ignore_ascii_case("windows"))
                        .unwrap_or(false)
                        || instance
                            .platform_details()
                            .map(|d| d.to_ascii_lowercase().contains("windows"))
                            .unwrap_or(false);
                    out.push(DiscoveredInstance {
                        id: id.to_owned(),
                        account_id: account.clone(),
                        region: region.to_owned(),
                        name: tags.get("Name").cloned().unwrap_or_default(),
                        platform: if windows {
                            Platform::Windows
                        } else {
                            Platform::Linux
                        },
                        state: instance
                            .state()
                            .and_then(|s| s.name())
                            .map(|n| n.as_str().to_owned())
                            .unwrap_or_else(|| "unknown".into()),
                        private_ip: instance.private_ip_address().map(str::to_owned),
                        public_ip: instance.public_ip_address().map(str::to_owned),
                        private_dns: instance
                            .private_dns_name()
                            .filter(|d| !d.is_empty())
                            .map(str::to_owned),
                        tags,
                    });
                }
            }
        }
        Ok(out)
    }

    async fn agent_statuses(&self, region: &str) -> Result<HashMap<String, String>, AwsError> {
        let clients = self.region(region)?;
        let mut pages = clients
            .ssm
            .describe_instance_information()
            .max_results(50)
            .into_paginator()
            .send();
        let mut out = HashMap::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            for info in page.instance_information_list() {
                if let (Some(id), Some(ping)) = (info.instance_id(), info.ping_status()) {
                    out.insert(id.to_owned(), ping.as_str().to_owned());
                }
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Commands for SdkAws {
    async fn send_command(&self, spec: &CommandSpec) -> Result<String, AwsError> {
        let clients = self.region(&spec.region)?;
        let parameters: HashMap<String, Vec<String>> = spec
            .parameters
            .iter()
            .map(|(k, v)| (k.clone(), vec![v.clone()]))
            .collect();
        let out = clients
            .ssm
            .send_command()
            .document_name(&spec.document)
            .set_instance_ids(Some(spec.instance_ids.clone()))
            .set_parameters(Some(parameters))
            .comment(&spec.comment)
            .timeout_seconds(spec.timeout_seconds)
            .send()
            .await
            .map_err(classify)?;
        out.command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Other("SendCommand returned no command id".into()))
    }

    async fn invocation(
        &self,
        region: &str,
        command_id: &str,
        instance_id: &str,
    ) -> Result<Invocation, AwsError> {
        let clients = self.region(region)?;
        let out = clients
            .ssm
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance_id)
            .send()
            .await
            .map_err(classify)?;
        let detail = out.status_details().unwrap_or_default().to_owned();
        let state = match out.status() {
            Some(CommandInvocationStatus::Success) => InvocationState::Success,
            Some(
                CommandInvocationStatus::Pending
                | CommandInvocationStatus::InProgress
                | CommandInvocationStatus::Delayed
                | CommandInvocationStatus::Cancelling,
            )
            | None => InvocationState::Running,
            Some(other) => InvocationState::Failed {
                status: other.as_str().to_owned(),
                detail,
            },
        };
        Ok(Invocation {
            state,
            stdout: out.standard_output_content().unwrap_or_default().to_owned(),
            stderr: out.standard_error_content().unwrap_or_default().to_owned(),
        })
    }

    async fn cancel_command(
        &self,
        region: &str,
        command_id: &str,
        instance_ids: &[String],
    ) -> Result<(), AwsError> {
        let clients = self.region(region)?;
        clients
            .ssm
            .cancel_command()
            .command_id(command_id)
            .set_instance_ids(Some(instance_ids.to_vec()))
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}

#[async_trait]
impl DocumentStore for SdkAws {
    async fn get_document(
        &self,
        region: &str,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<StoredDocument>, AwsError> {
        let clients = self.region(region)?;
        match clients
            .ssm
            .get_document()
            .name(name)
            .set_document_version(version.map(str::to_owned))
            .document_format(DocumentFormat::Yaml)
            .send()
            .await
        {
            Ok(out) => Ok(Some(StoredDocument {
                content: out.content().unwrap_or_default().to_owned(),
                default_version: out.document_version().map(str::to_owned),
            })),
            Err(err) => {
                if err.code() == Some("InvalidDocument") {
                    Ok(None)
                } else {
                    Err(classify(err))
                }
            }
        }
    }

    async fn list_document_versions(
        &self,
        region: &str,
        name: &str,
    ) -> Result<Vec<String>, AwsError> {
        let clients = self.region(region)?;
        let mut pages = clients
            .ssm
            .list_document_versions()
            .name(name)
            .into_paginator()
            .send();
        let mut versions = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(classify)?;
            versions.extend(
                page.document_versions()
                    .iter()
                    .filter_map(|v| v.document_version().map(str::to_owned)),
            );
        }
        Ok(versions)
    }

    async fn create_document(
        &self,
        region: &str,
        name: &str,
        content: &str,
    ) -> Result<(), AwsError> {
        let clients = self.region(region)?;
        clients
            .ssm
            .create_document()
            .name(name)
            .content(content)
            .document_type(DocumentType::Command)
            .document_format(DocumentFormat::Yaml)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn update_document(
        &self,
        region: &str,
        name: &str,
        content: &str,
    ) -> Result<String, AwsError> {
        let clients = self.region(region)?;
        let out = clients
            .ssm
            .update_document()
            .name(name)
            .content(content)
            .document_format(DocumentFormat::Yaml)
            .document_version("$LATEST")
            .send()
            .await
            .map_err(classify)?;
        out.document_description()
            .and_then(|d| d.document_version())
            .map(str::to_owned)
            .ok_or_else(|| AwsError::Other("UpdateDocument returned no version".into()))
    }

    async fn set_default_version(
        &self,
        region: &str,
        name: &str,
        version: &str,
    ) -> Result<(), AwsError> {
        let clients = self.region(region)?;
        clients
            .ssm
            .update_document_default_version()
            .name(name)
            .document_version(version)
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
