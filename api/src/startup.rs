//! Builds the application: storage, AWS clients, the HTTP server (bound before it runs, so tests can
//! use port 0), and the background tasks (worker, inventory sync) as siblings of the server.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::dev::{Server, ServiceRequest, ServiceResponse, fn_service};
use actix_web::{App, HttpServer, web};
use tokio::sync::Notify;

use crate::auth::TokenAuthority;
use crate::aws::SdkAws;
use crate::clock::{Clock, SystemClock};
use crate::config::Settings;
use crate::context::Context;
use crate::crypto::Sealer;
use crate::{db, documents, http, service, worker};

pub struct Application {
    port: u16,
    server: Server,
    ctx: Context,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with(settings, Arc::new(SystemClock)).await
    }

    /// Builds with an injected clock. Nothing runs until [`Application::run_until_stopped`] or
    /// [`Application::serve_only`].
    pub async fn build_with(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let ctx = context(settings, clock).await?;
        let listener = TcpListener::bind(&ctx.settings.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", ctx.settings.listen))?;
        let port = listener.local_addr()?.port();
        let server = server(listener, ctx.clone())?;
        Ok(Self { port, server, ctx })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn context(&self) -> Context {
        self.ctx.clone()
    }

    /// Stages the documents (if configured), then runs the server, the worker and the inventory sync.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let ctx = self.ctx.clone();
        if !ctx.settings.auth.demo_identities.is_empty() {
            tracing::warn!(
                "auth.demo_identities is set: anyone who reaches this server can sign in as them (demo only)"
            );
        }
        if ctx.settings.documents.stage_on_start {
            let reports = documents::stage(
                ctx.documents.as_ref(),
                &ctx.settings.aws.regions,
                &ctx.settings.documents.name_prefix,
                false,
            )
            .await
            .map_err(|e| anyhow::anyhow!("staging the SSM documents failed: {e}"))?;
            for r in reports {
                tracing::info!(region = %r.region, document = %r.name, action = ?r.action, "SSM document staged");
            }
        }
        let inventory_ctx = ctx.clone();
        let inventory = tokio::spawn(async move {
            let every = std::time::Duration::from_secs(
                inventory_ctx.settings.inventory.sync_interval_seconds,
            );
            loop {
                service::inventory::sync(&inventory_ctx).await;
                tokio::time::sleep(every).await;
            }
        });
        let worker = if ctx.settings.worker.enabled {
            let w = Arc::new(worker::Worker::new(ctx.clone()));
            Some(tokio::spawn(w.run()))
        } else {
            None
        };
        tracing::info!(port = self.port, "Gatekeeper is listening");
        let result = self.server.await;
        inventory.abort();
        if let Some(w) = worker {
            w.abort();
        }
        result.map_err(Into::into)
    }

    /// Runs the HTTP server alone (tests drive the worker and the sync themselves).
    pub async fn serve_only(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Opens the database and the AWS clients and assembles the shared context.
pub async fn context(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Context> {
    let key = settings.encryption_key()?;
    let pool = {
        let url = settings.database_url.clone();
        let size = settings.database_pool_size;
        tokio::task::spawn_blocking(move || db::connect(&url, size)).await??
    };
    let aws = Arc::new(SdkAws::new(&settings.aws).await);
    Ok(Context {
        tokens: TokenAuthority::new(&settings.auth)?,
        settings: Arc::new(settings),
        pool,
        clock,
        sealer: Sealer::new(&key),
        fleet: aws.clone(),
        commands: aws.clone(),
        documents: aws,
        worker_wake: Arc::new(Notify::new()),
    })
}

fn server(listener: TcpListener, ctx: Context) -> anyhow::Result<Server> {
    let static_dir: Option<PathBuf> = ctx
        .settings
        .static_dir
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.join("index.html").is_file());
    let data = web::Data::new(ctx);
    let server = HttpServer::new(move || {
        let mut app = App::new()
            .wrap(http::error::json_error_bodies())
            .wrap(actix_web::middleware::from_fn(http::headers::cors))
            .wrap(http::headers::security_headers())
            // `//api/v1/…` is `/api/v1/…`, not a path of the browser client.
            .wrap(actix_web::middleware::NormalizePath::new(
                actix_web::middleware::TrailingSlash::MergeOnly,
            ))
            .wrap(tracing_actix_web::TracingLogger::default())
            .app_data(data.clone())
            .configure(http::configure);
        match &static_dir {
            Some(dir) => {
                let index = dir.join("index.html");
                app = app.service(
                    actix_files::Files::new("/", dir)
                        .index_file("index.html")
                        .default_handler(fn_service(move |req: ServiceRequest| {
                            let index = index.clone();
                            async move { spa_fallback(req, index).await }
                        })),
                );
            }
            None => {
                app = app.default_service(http::api_not_found());
            }
        }
        app
    })
    .listen(listener)?
    .run();
    Ok(server)
}

/// Unknown `/api/…` paths get the JSON 404; every other path gets the SPA's `index.html`, so that
/// client-side routes survive a reload.
async fn spa_fallback(
    req: ServiceRequest,
    index: PathBuf,
) -> Result<ServiceResponse, actix_web::Error> {
    let (req, _) = req.into_parts();
    let path = req.path().to_ascii_lowercase();
    if path == "/api" || path.starts_with("/api/") {
        let err = http::error::ApiError::new(
            actix_web::http::StatusCode::NOT_FOUND,
            "not_found",
            format!("no route for {} {}", req.method(), req.path()),
        );
        let response = actix_web::ResponseError::error_response(&err);
        return Ok(ServiceResponse::new(req, response));
    }
    let response = match actix_files::NamedFile::open_async(index).await {
        Ok(file) => file.into_response(&req),
        Err(e) => actix_web::ResponseError::error_response(&http::error::ApiError::internal(
            format!("the browser client's index.html cannot be read: {e}"),
        )),
    };
    Ok(ServiceResponse::new(req, response))
}
