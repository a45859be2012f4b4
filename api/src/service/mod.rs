//! What the API does, independent of HTTP: each public function is one use case. Handlers parse input,
//! call one of these, and map the result to a response.

pub mod inventory;
pub mod requests;

use crate::db::DbError;
use crate::domain::ValidationError;

/// Why a use case refused or failed. Every variant but `Internal` is the caller's to fix.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    Invalid(#[from] ValidationError),
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("{message}")]
    Gone { code: &'static str, message: String },
    #[error("{message}")]
    TooMany { code: &'static str, message: String },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<DbError> for ServiceError {
    fn from(e: DbError) -> Self {
        ServiceError::Internal(e.into())
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(e: diesel::result::Error) -> Self {
        ServiceError::Internal(DbError::from(e).into())
    }
}

impl ServiceError {
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(ValidationError::new(code, message))
    }
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::NotFound {
            code,
            message: message.into(),
        }
    }
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Forbidden {
            code,
            message: message.into(),
        }
    }
    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Conflict {
            code,
            message: message.into(),
        }
    }
    pub fn gone(code: &'static str, message: impl Into<String>) -> Self {
        ServiceError::Gone {
            code,
            message: message.into(),
        }
    }
}
