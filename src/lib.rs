//! devicetrust: puts a device-trust client certificate on a managed Mac and keeps it healthy.
pub mod http;
pub mod okta;
pub mod secret;
