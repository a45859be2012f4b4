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
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| AuthError::Invalid("expected `Authorization: Bearer <token>`".into()))?;
    Ok(AuthUser(ctx.tokens.verify(token.trim())?))
}
