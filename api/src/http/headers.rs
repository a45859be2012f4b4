//! Response headers for every answer: browser hardening (the SPA decides access to production, so
//! it must not be framed, sniffed or given inline code) and CORS for the origins the operator lists
//! (`cors_origins`), for a browser client served from another origin.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::{DefaultHeaders, Next};
use actix_web::{Error, HttpResponse, web};

use crate::context::Context;

/// The policy for the browser client this server serves: its own scripts and the wasm module only,
/// calls to this origin only, never inside a frame (an approval page in a hidden frame could be
/// clicked by a victim).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// Headers every response carries unless a handler set its own.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
}

/// Answers CORS preflights and marks responses readable for the configured origins. Requests from
/// any other origin pass through unmarked, so the browser keeps their answers from the page; the
/// bearer token, not the origin, is what authorises a call.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_owned);
    let configured = req
        .app_data::<web::Data<Context>>()
        .is_some_and(|ctx| !ctx.settings.cors_origins.is_empty());
    // Scheme and host compare without regard to case.
    let allowed = origin.filter(|o| {
        req.app_data::<web::Data<Context>>().is_some_and(|ctx| {
            ctx.settings
                .cors_origins
                .iter()
                .any(|a| a.eq_ignore_ascii_case(o))
        })
    });
    let Some(origin) = allowed else {
        let mut res = next.call(req).await?;
        if configured {
            // The answer depends on the Origin header: caches must keep them apart.
            res.headers_mut()
                .append(header::VARY, header::HeaderValue::from_static("Origin"));
        }
        return Ok(res.map_into_left_body());
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let response = HttpResponse::NoContent()
            .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin))
            .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
            .insert_header((
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                "authorization, content-type",
            ))
            .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"))
            .insert_header((header::VARY, "Origin"))
            .finish();
        return Ok(req.into_response(response).map_into_right_body());
    }
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    if let Ok(value) = header::HeaderValue::from_str(&origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
    }
    headers.append(header::VARY, header::HeaderValue::from_static("Origin"));
    Ok(res.map_into_left_body())
}
