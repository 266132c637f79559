//! Hookhub: receive, verify, store and deliver webhooks.
//!
//! The library holds everything but process wiring: domain records, inbound verification,
//! outbound signing, the retry policy, the ports (storage and queue traits) with their
//! adapters, the receiver and dispatcher services, and the HTTP routes shared by the Lambda
//! functions and the local dev server.

pub mod admin;
pub mod bulk;
pub mod config_cache;
pub mod custom_headers;
pub mod decision;
pub mod dedup;
pub mod delivery;
pub mod dispatch;
pub mod domain;
pub mod filter;
pub mod http;
pub mod ingest;
pub mod intake;
pub mod jq;
pub mod local;
pub mod metrics;
pub mod netguard;
pub mod operational;
pub mod payload;
pub mod ports;
pub mod private_files;
pub mod retry;
pub mod secret;
pub mod server;
pub mod settings;
pub mod signing;
pub mod telemetry;
pub mod verify;
pub mod worker;

#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(feature = "aws")]
pub mod aws;

#[cfg(feature = "contract-tests")]
pub mod contract;
