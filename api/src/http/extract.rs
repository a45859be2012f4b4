//! Authentication in the handler's signature: a handler that takes [`AuthUser`] only runs for a caller
//! with a valid bearer token.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};

use super::error::ApiError;
use crate::auth::{AuthError, Identity};
use crate::context::Context;

/// The authenticated caller.
pub struct AuthUser(pub Identity);

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

fn authenticate(req: &HttpRequest) -> Result<AuthUser, ApiError> {
    let ctx = req
        .app_data::<web::Data<Context>>()
        .ok_or_else(|| ApiError::internal("application context missing"))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?;
    let value = header
        .to_str()
        .map_err(|_| AuthError::Invalid("the Authorization header is not text".into()))?;
    // The scheme is case-insensitive (RFC 9110).
    let token = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| AuthError::Invalid("expected `Authorization: Bearer <token>`".into()))?;
    Ok(AuthUser(ctx.tokens.verify(token.trim())?))
}

/// A JSON body that may be left out entirely (then `T::default()`); a body that is present must be
/// valid JSON of `T` — unknown fields included — or the request gets `400 invalid_body`. Unlike
/// `Option<Json<T>>`, a broken body is never mistaken for a missing one.
pub struct OptionalJson<T>(pub T);

impl<T> FromRequest for OptionalJson<T>
where
    T: serde::de::DeserializeOwned + Default + 'static,
{
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let bytes = bytes.await.map_err(unreadable)?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            if !json {
                return Err(not_json());
            }
            parse_object(&bytes).map(OptionalJson)
        })
    }
}

/// A required JSON body of `T` (`Content-Type: application/json`): a JSON object, with every field
/// known and none twice. serde would also take a struct as an array of its values in field order —
/// refused here, as the contract says object.
pub struct JsonObject<T>(pub T);

impl<T> FromRequest for JsonObject<T>
where
    T: serde::de::DeserializeOwned + 'static,
{
    type Error = ApiError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let json = is_json(req);
        let bytes = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            if !json {
                return Err(not_json());
            }
            let bytes = bytes.await.map_err(unreadable)?;
            parse_object(&bytes).map(JsonObject)
        })
    }
}

/// `Content-Type: application/json` (or another `…+json` type).
fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim();
            v.eq_ignore_ascii_case("application/json")
                || (v.len() > 5 && v[v.len() - 5..].eq_ignore_ascii_case("+json"))
        })
}

fn not_json() -> ApiError {
    ApiError::bad_request(
        "invalid_body",
        "send the body as JSON with Content-Type: application/json",
    )
}

fn unreadable(e: actix_web::Error) -> ApiError {
    if e.as_response_error().status_code() == actix_web::http::StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is larger than 64 KiB",
        )
    } else {
        ApiError::bad_request("invalid_body", format!("the body cannot be read: {e}"))
    }
}

fn parse_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request(
            "invalid_body",
            "the body must be a JSON object",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request("invalid_body", format!("the JSON body is invalid: {e}"))
    })
}
