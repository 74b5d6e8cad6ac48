//! The values a pkiMessage carries in its attributes (messageType, pkiStatus, failInfo) and the
//! digest it is signed with, each with its wire form (RFC 8894 §3.2.1).

use std::fmt;

use aws_lc_rs::signature::RsaParameters;
use const_oid::db::rfc5912::{ID_SHA_1, ID_SHA_256};
use const_oid::ObjectIdentifier;
use sha1::Sha1;
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    CertRep,
    RenewalReq,
    PkcsReq,
    /// GetCertInitial in the drafts.
    CertPoll,
    GetCert,
    GetCrl,
}

impl MessageType {
    pub(super) fn number(self) -> u8 {
        match self {
            MessageType::CertRep => 3,
            MessageType::RenewalReq => 17,
            MessageType::PkcsReq => 19,
            MessageType::CertPoll => 20,
            MessageType::GetCert => 21,
            MessageType::GetCrl => 22,
        }
    }

    pub(super) fn from_number(n: &str) -> Option<Self> {
        Some(match n {
            "3" => MessageType::CertRep,
            "17" => MessageType::RenewalReq,
            "19" => MessageType::PkcsReq,
            "20" => MessageType::CertPoll,
            "21" => MessageType::GetCert,
            "22" => MessageType::GetCrl,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PkiStatus {
    Success,
    Failure,
    Pending,
}

impl PkiStatus {
    pub(super) fn number(self) -> u8 {
        match self {
            PkiStatus::Success => 0,
            PkiStatus::Failure => 2,
            PkiStatus::Pending => 3,
        }
    }

    pub(super) fn from_number(n: &str) -> Option<Self> {
        Some(match n {
            "0" => PkiStatus::Success,
            "2" => PkiStatus::Failure,
            "3" => PkiStatus::Pending,
            _ => return None,
        })
    }
}

/// Why a CA refused a request (RFC 8894 §3.2.1.4.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailInfo {
    BadAlg,
    BadMessageCheck,
    BadRequest,
    BadTime,
    BadCertId,
    /// A value outside the RFC; kept so the error can still name it.
    Other(u32),
}

impl FailInfo {
    pub(super) fn number(self) -> u32 {
        match self {
            FailInfo::BadAlg => 0,
            FailInfo::BadMessageCheck => 1,
            FailInfo::BadRequest => 2,
            FailInfo::BadTime => 3,
            FailInfo::BadCertId => 4,
            FailInfo::Other(n) => n,
        }
    }

    pub(super) fn from_number(n: u32) -> Self {
        match n {
            0 => FailInfo::BadAlg,
            1 => FailInfo::BadMessageCheck,
            2 => FailInfo::BadRequest,
            3 => FailInfo::BadTime,
            4 => FailInfo::BadCertId,
            n => FailInfo::Other(n),
        }
    }

    /// The RFC's name, as CA logs and admins know it.
    pub fn name(self) -> String {
        match self {
            FailInfo::BadAlg => "badAlg".into(),
            FailInfo::BadMessageCheck => "badMessageCheck".into(),
            FailInfo::BadRequest => "badRequest".into(),
            FailInfo::BadTime => "badTime".into(),
            FailInfo::BadCertId => "badCertId".into(),
            FailInfo::Other(n) => format!("failInfo {n}"),
        }
    }

    /// What it means for the admin reading the Jamf log.
    pub fn explanation(self) -> &'static str {
        match self {
            FailInfo::BadAlg => "the CA does not support an algorithm the request used",
            FailInfo::BadMessageCheck => {
                "the CA could not verify the request's signature or decrypt it"
            }
            FailInfo::BadRequest => {
                "the CA would not process the request; usually the challenge is wrong or \
                 expired, or the requested subject or key is not allowed"
            }
            FailInfo::BadTime => {
                "the request's time is too far from the CA's clock; check the device's date and time"
            }
            FailInfo::BadCertId => "the CA could not find the certificate the request refers to",
            FailInfo::Other(_) => "a failure code RFC 8894 does not define",
        }
    }
}

impl fmt::Display for FailInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.explanation())
    }
}

/// The digest of the signature (and messageDigest attribute).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageDigest {
    Sha1,
    Sha256,
}

impl MessageDigest {
    pub(super) fn oid(self) -> ObjectIdentifier {
        match self {
            MessageDigest::Sha1 => ID_SHA_1,
            MessageDigest::Sha256 => ID_SHA_256,
        }
    }

    pub(super) fn from_oid(oid: &ObjectIdentifier) -> Option<Self> {
        match *oid {
            ID_SHA_1 => Some(MessageDigest::Sha1),
            ID_SHA_256 => Some(MessageDigest::Sha256),
            _ => None,
        }
    }

    pub(super) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            MessageDigest::Sha1 => Sha1::digest(data).to_vec(),
            MessageDigest::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// PKCS#1 v1.5 verification with this hash; SHA-1 only because older CAs still answer so.
    pub(super) fn verification(self) -> &'static RsaParameters {
        match self {
            MessageDigest::Sha1 => {
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY
            }
            MessageDigest::Sha256 => &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MessageDigest::Sha1 => "SHA-1",
            MessageDigest::Sha256 => "SHA-256",
        }
    }
}
