//! Gatekeeper: temporary, audited SSH access to EC2 instances through SSM Run Command.

pub mod auth;
pub mod aws;
pub mod clock;
pub mod config;
pub mod context;
pub mod crypto;
pub mod db;
pub mod documents;
pub mod domain;
pub mod http;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod worker;
