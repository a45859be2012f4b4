//! The one error body of the API: `{"code": "snake_case", "message": "…"}`. 5xx causes are logged,
//! never echoed.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::auth::AuthError;
use crate::service::ServiceError;

/// Every error response carries this body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// Stable, machine-readable reason, e.g. `self_approval` or `unknown_instance`.
    #[schema(example = "unknown_instance")]
    pub code: String,
    /// What went wrong, for people.
    #[schema(example = "not in the inventory: i-0123456789abcdef0")]
    pub message: String,
}

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let reference = uuid::Uuid::new_v4();
        tracing::error!(%reference, error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("something went wrong on the server (reference {reference})"),
        )
    }
}

/// Messages often quote what a client sent; in a log line, control characters (newlines, terminal
/// escapes) and invisible ones are written as `\u{…}` escapes, so nobody can forge log lines.
impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: ", self.code)?;
        for c in self.message.chars() {
            if c.is_control() || crate::domain::is_format_char(c) {
                write!(f, "\\u{{{:x}}}", c as u32)?;
            } else {
                std::fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            response.insert_header(("WWW-Authenticate", "Bearer"));
        }
        response.json(ErrorBody {
            code: self.code.to_owned(),
            message: self.message.clone(),
        })
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(v) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, v.code, v.message)
            }
            ServiceError::NotFound { code, message } => {
                ApiError::new(StatusCode::NOT_FOUND, code, message)
            }
            ServiceError::Forbidden { code, message } => {
                ApiError::new(StatusCode::FORBIDDEN, code, message)
            }
            ServiceError::Conflict { code, message } => {
                ApiError::new(StatusCode::CONFLICT, code, message)
            }
            ServiceError::Gone { code, message } => ApiError::new(StatusCode::GONE, code, message),
            ServiceError::TooMany { code, message } => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, code, message)
            }
            ServiceError::Internal(cause) => ApiError::internal(format!("{cause:#}")),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        let code = match e {
            AuthError::Missing => "unauthenticated",
            AuthError::Expired => "token_expired",
            AuthError::Invalid(_) => "invalid_token",
        };
        ApiError::new(StatusCode::UNAUTHORIZED, code, e.to_string())
    }
}

impl From<actix_web::error::BlockingError> for ApiError {
    fn from(e: actix_web::error::BlockingError) -> Self {
        ApiError::internal(e)
    }
}

/// Turns every error response that is not already `{code, message}` — the framework's own 405 for a
/// method a route does not take, 400 for a path it cannot decode, 413 for an oversized body — into
/// one, so that clients parse a single error shape.
pub fn json_error_bodies<B: actix_web::body::MessageBody + 'static>()
-> actix_web::middleware::ErrorHandlers<B> {
    use actix_web::http::header;
    use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers};

    ErrorHandlers::new().default_handler(|res: actix_web::dev::ServiceResponse<B>| {
        let is_json = res
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let (req, _) = res.into_parts();
        let (code, message) = match status {
            StatusCode::METHOD_NOT_ALLOWED => (
                "method_not_allowed",
                format!("{} is not allowed on {}", req.method(), req.path()),
            ),
            StatusCode::NOT_FOUND => (
                "not_found",
                format!("no route for {} {}", req.method(), req.path()),
            ),
            StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large".into()),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => (
                "unsupported_media_type",
                "send JSON with Content-Type: application/json".into(),
            ),
            s if s.is_server_error() => ("internal_error", "internal error".into()),
            s => (
                "bad_request",
                format!(
                    "the request was refused: {}",
                    s.canonical_reason().unwrap_or("bad request")
                ),
            ),
        };
        let response = ApiError::new(status, code, message).error_response();
        Ok(ErrorHandlerResponse::Response(
            actix_web::dev::ServiceResponse::new(req, response).map_into_right_body(),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_cannot_be_forged_through_a_message() {
        let err = ApiError::bad_request(
            "invalid_token",
            "bad header x\n2026-12-03T00:00:00Z ERROR gatekeeper::alert: ALERT \u{1b}[2J\u{202e}",
        );
        let line = err.to_string();
        assert!(!line.contains('\n') && !line.contains('\u{1b}') && !line.contains('\u{202e}'));
        assert!(
            line.contains("\\u{a}2026") && line.contains("\\u{1b}[2J"),
            "{line}"
        );
        // The client still gets the message as it is, inside JSON.
        assert!(err.message.contains('\n'));
    }
}
