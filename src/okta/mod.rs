//! Okta Device Trust: the org URL rules, the JSON wire format and the HTTP client that asks Okta
//! for the device's client certificate (protocol spec §1-4).

pub mod client;
pub mod org;
pub mod wire;

pub use client::{user_agent, Device, Metadata, OktaClient, OktaError, Operation, CLIENT_VERSION};
pub use org::{cert_auth_host, OrgError, OrgUrl};

/// The subject CN Okta's device-trust CA issues, and the one checked before storing.
pub const OKTA_SUBJECT_CN: &str = "Okta MTLS";
/// The issuer CN of the certificates Okta's device-trust CA issues.
pub const OKTA_ISSUER_CN: &str = "MTLS Certificate Authority";
