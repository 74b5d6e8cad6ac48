//! The agent's memory between runs: how the device enrolled and how the last renewal went.
//!
//! It holds no secret. `status` and the health chain read it ("Renewal Failing"); a corrupt or
//! missing file is treated as "nothing known", never as a reason to fail.

use crate::fsutil;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Okta,
    Scep,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Okta => "okta",
            Method::Scep => "scep",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalAttempt {
    /// RFC 3339, UTC.
    pub time: String,
    pub ok: bool,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    pub method: Option<Method>,
    /// The org the identity belongs to (a device belongs to one org's Device Trust).
    pub org_url: Option<String>,
    /// Where the MTLS handshake happens (metadata `certAuthDomain`, host only).
    pub cert_auth_host: Option<String>,
    /// The SCEP CA a SCEP enrollment came from.
    #[serde(default)]
    pub scep_url: Option<String>,
    pub enrolled_at: Option<String>,
    pub last_renewal: Option<RenewalAttempt>,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot write the state file {path}: {reason}")]
pub struct StateError {
    path: PathBuf,
    reason: String,
}

impl AgentState {
    /// Reads the state; anything unreadable counts as an empty state (and says so at debug).
    pub fn load(path: &Path) -> AgentState {
        match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::debug!("ignoring unreadable state file {}: {e}", path.display());
                AgentState::default()
            }),
            Err(_) => AgentState::default(),
        }
    }

    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let err = |reason: String| StateError {
            path: path.to_owned(),
            reason,
        };
        let json = serde_json::to_vec_pretty(self).map_err(|e| err(e.to_string()))?;
        fsutil::atomic_write_private(path, &json).map_err(|e| err(crate::config::io_reason(&e)))
    }

    pub fn record_renewal(&mut self, result: Result<(), String>) {
        self.last_renewal = Some(RenewalAttempt {
            time: now_rfc3339(),
            ok: result.is_ok(),
            error: result.err(),
        });
    }
}

pub use crate::timefmt::{now_rfc3339, rfc3339};
