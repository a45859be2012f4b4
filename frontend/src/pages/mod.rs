//! One module per page.

pub mod approvals;
pub mod detail;
pub mod history;
pub mod requests;
pub mod search;
pub mod signin;
