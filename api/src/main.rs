//! The `gatekeeper` command: wires settings to the application and offers operator tools.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};

use gatekeeper::auth::{TokenAuthority, parse_ttl};
use gatekeeper::aws::SdkAws;
use gatekeeper::config::Settings;
use gatekeeper::documents::{self, DocumentKind, StageAction};
use gatekeeper::domain::SubjectId;
use gatekeeper::startup::Application;

#[derive(Parser)]
#[command(
    name = "gatekeeper",
    version,
    about = "Temporary, audited SSH access to EC2 instances"
)]
struct Cli {
    /// TOML settings file (environment variables GATEKEEPER_* override it).
    #[arg(long, short, global = true, env = "GATEKEEPER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server with its worker and inventory sync (the default).
    Serve,
    /// Print a bearer token signed with the configured secret, for local use and scripts.
    Token {
        /// User id (the `sub` claim).
        #[arg(long)]
        sub: String,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Groups, comma-separated (e.g. prod-approvers).
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Lifetime, e.g. 30m, 8h, 2d.
        #[arg(long, default_value = "8h")]
        ttl: String,
    },
    /// Manage the SSM documents.
    Documents {
        #[command(subcommand)]
        action: DocumentsCommand,
    },
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Subcommand)]
enum DocumentsCommand {
    /// Show what staging would change in SSM (nothing is written).
    Diff,
    /// Create missing documents and update changed ones (new default version).
    Stage,
    /// Print a document's script rendered with parameters, exactly as SSM would (patterns checked).
    Render {
        /// linux-create-user or linux-remove-user.
        document: String,
        /// name=value pairs.
        params: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    gatekeeper::telemetry::init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gatekeeper: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            print!("{}", gatekeeper::http::openapi_json());
            Ok(())
        }
        Command::Documents {
            action: DocumentsCommand::Render { document, params },
        } => {
            let kind = DocumentKind::ALL
                .into_iter()
                .find(|k| k.file_name().trim_end_matches(".yaml") == document)
                .ok_or_else(|| anyhow::anyhow!("unknown document {document:?}"))?;
            let mut values = BTreeMap::new();
            for p in params {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| anyhow::anyhow!("expected name=value, got {p:?}"))?;
                values.insert(k.to_owned(), v.to_owned());
            }
            for script in documents::render(kind, &values)? {
                println!("{script}");
            }
            Ok(())
        }
        command => {
            let settings = Settings::load(cli.config.as_deref())?;
            for name in gatekeeper::config::unknown_variables() {
                tracing::warn!(
                    variable = %name,
                    "{name} is set but is not a setting (misspelt?); it has no effect"
                );
            }
            match command {
                Command::Serve => {
                    let app = Application::build(settings).await?;
                    app.run_until_stopped().await
                }
                Command::Token {
                    sub,
                    name,
                    email,
                    groups,
                    ttl,
                } => {
                    let sub = SubjectId::parse(&sub)?;
                    let ttl = parse_ttl(&ttl).map_err(|e| anyhow::anyhow!(e))?;
                    let tokens = TokenAuthority::new(&settings.auth)?;
                    let groups = groups.into_iter().filter(|g| !g.is_empty()).collect();
                    println!(
                        "{}",
                        tokens.issue(&sub, name, email, groups, chrono::Utc::now(), ttl)?
                    );
                    Ok(())
                }
                Command::Documents { action } => {
                    let aws = Arc::new(SdkAws::new(&settings.aws).await);
                    let dry_run = matches!(action, DocumentsCommand::Diff);
                    let reports = documents::stage(
                        aws.as_ref(),
                        &settings.aws.regions,
                        &settings.documents.name_prefix,
                        dry_run,
                    )
                    .await?;
                    for r in reports {
                        match r.action {
                            StageAction::WouldUpdate { diff } => {
                                println!("{} {}: would update", r.region, r.name);
                                print!("{diff}");
                            }
                            other => println!("{} {}: {other:?}", r.region, r.name),
                        }
                    }
                    Ok(())
                }
                Command::Openapi => unreachable!("handled above"),
            }
        }
    }
}
