//! The HTTP API: routes, extractors, error mapping and the OpenAPI document.

pub mod error;
pub mod extract;
pub mod headers;
pub mod instances;
pub mod meta;
pub mod requests;

use actix_web::{HttpRequest, HttpResponse, web};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use error::{ApiError, ErrorBody};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".into());
        components.add_security_scheme("bearer", SecurityScheme::Http(http));
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Gatekeeper API",
        description = "Temporary, audited SSH access to EC2 instances. Every error has the body `{code, message}`.",
        license(name = "Apache-2.0"),
    ),
    paths(
        meta::health,
        meta::get_me,
        meta::demo_identities,
        instances::search_instances,
        requests::create_request,
        requests::list_requests,
        requests::get_request,
        requests::approve_request,
        requests::reject_request,
        requests::cancel_request,
        requests::revoke_request,
        requests::get_credentials,
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "meta", description = "Health and the caller's identity"),
        (name = "instances", description = "The inventory"),
        (name = "requests", description = "Access requests, decisions and credentials"),
    )
)]
pub struct ApiDoc;

/// The OpenAPI document as committed in `openapi/openapi.json`.
pub fn openapi_json() -> String {
    let mut json = ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    json.push('\n');
    json
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(openapi_json())
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {} {}", req.method(), req.path()),
    ))
}

/// Registers every route and the error handlers that turn malformed input into `{code, message}`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(
        web::JsonConfig::default()
            .limit(64 * 1024)
            .error_handler(|err, _| {
                ApiError::bad_request("invalid_body", format!("the JSON body is invalid: {err}"))
                    .into()
            }),
    )
    .app_data(web::PayloadConfig::default().limit(64 * 1024))
    .app_data(web::QueryConfig::default().error_handler(|err, _| {
        ApiError::bad_request(
            "invalid_query",
            format!("the query string is invalid: {err}"),
        )
        .into()
    }))
    .app_data(web::PathConfig::default().error_handler(|err, _| {
        ApiError::bad_request("invalid_path", format!("the path is invalid: {err}")).into()
    }))
    .service(meta::health)
    .service(meta::get_me)
    .service(meta::demo_identities)
    .service(instances::search_instances)
    .service(requests::create_request)
    .service(requests::list_requests)
    .service(requests::get_request)
    .service(requests::approve_request)
    .service(requests::reject_request)
    .service(requests::cancel_request)
    .service(requests::revoke_request)
    .service(requests::get_credentials)
    .route("/api/openapi.json", web::get().to(openapi_document));
}

/// JSON 404 for unknown API paths.
pub fn api_not_found() -> actix_web::Route {
    web::route().to(not_found)
}
