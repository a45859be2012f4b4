//! Domain types: parsed once at the edge, valid for as long as they exist. No framework imports here.

mod names;
mod status;

pub use names::*;
pub use status::*;

/// Input that does not satisfy a rule of the domain. `code` is machine-readable and stable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub code: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
