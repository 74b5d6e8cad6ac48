//! Public-key plumbing for device trust: keys, the enrollment CSR, checks on issued certificates,
//! the CMS renewal token, and a small certificate authority for the simulator and tests.
//!
//! Everything that signs goes through [`SigningKey`], because on macOS the device key lives in a
//! keychain that can be asked to sign but never hands the key out.

pub mod authority;
pub mod cert;
pub mod csr;
pub mod identity;
pub mod key;
pub mod token;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use authority::{Authority, IssueProfile, IssueRequest};
pub use cert::{
    check_issued, pem_decode_all, pem_encode, verify_issued_by, CertificateInfo, IssuedCertError,
};
pub use csr::{build_csr, verify_csr, CsrInfo, CsrProfile, KeyUsage, SubjectAltName};
pub use identity::{CheckedIdentity, NewKey};
pub use key::{PrivateKey, SigningKey};
pub use token::{
    sign_renewal_token, verify_renewal_token, RenewalClaims, TokenDevice, VerifiedToken,
};

/// rustls's crypto provider for the process: aws-lc-rs, the library that also does our RSA.
/// Installed as the process default on the first call and returned on every call, so the
/// binary, the simulator and tests may all call it; a provider some other code installed first
/// is returned as it is.
pub fn install_crypto_provider() -> Arc<CryptoProvider> {
    if let Some(installed) = CryptoProvider::get_default() {
        return Arc::clone(installed);
    }
    // Losing a race with another thread's install is fine: both install the same provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    CryptoProvider::get_default()
        .map(Arc::clone)
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
}

/// Every failure of the PKI layer. Messages are one line and never carry key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("RSA key generation failed: {0}")]
    KeyGeneration(String),
    #[error("the private key is not a usable PKCS#8 RSA key: {0}")]
    InvalidPrivateKey(String),
    #[error("the public key is not a usable RSA SubjectPublicKeyInfo: {0}")]
    InvalidPublicKey(String),
    #[error("the key refused to sign: {0}")]
    Signing(String),
    #[error(
        "the key could not decrypt the message (it was not encrypted to this key, or is corrupt)"
    )]
    Decryption,
    #[error("could not encode the {what}: {reason}")]
    Encode { what: &'static str, reason: String },
    #[error("the {what} is not valid DER: {reason}")]
    Malformed { what: &'static str, reason: String },
    #[error("not valid PEM: {0}")]
    Pem(String),
    #[error("{name:?} is not a valid RFC 4514 distinguished name")]
    InvalidName { name: String },
    #[error("subject alternative name {0} cannot be encoded")]
    InvalidSubjectAltName(String),
    #[error("the {what} uses signature algorithm {oid}; only sha256WithRSAEncryption is accepted")]
    UnsupportedSignatureAlgorithm { what: &'static str, oid: String },
    #[error("the {what} uses digest algorithm {oid}; only SHA-256 is accepted")]
    UnsupportedDigestAlgorithm { what: &'static str, oid: String },
    #[error("the {0} signature does not verify")]
    BadSignature(&'static str),
    #[error("the certificate was issued by {found}, not by {expected}")]
    IssuerMismatch { expected: String, found: String },
    #[error("the signing key does not match the {0}")]
    KeyMismatch(&'static str),
    #[error("invalid validity period: {0}")]
    InvalidValidity(String),
    #[error("invalid certificate serial number: {0}")]
    InvalidSerial(String),
    #[error("the renewal token is CMS content type {0}, not signed-data")]
    NotSignedData(String),
    #[error("the renewal token has {0} signers; exactly one is required")]
    SignerCount(usize),
    #[error("the renewal token's content type is {0}, not id-data")]
    WrongContentType(String),
    #[error("the renewal token carries no content")]
    MissingContent,
    #[error("the renewal token's {0} signed attribute is missing, repeated or malformed")]
    SignedAttribute(&'static str),
    #[error("the renewal token's message digest does not match its content")]
    DigestMismatch,
    #[error("the renewal token identifies its signer by key identifier; only issuer and serial number is supported")]
    UnsupportedSignerIdentifier,
    #[error("the renewal token does not include its signer's certificate")]
    SignerCertificateMissing,
    #[error("the renewal token's content is not renewal claims: {0}")]
    InvalidClaims(String),
}

impl PkiError {
    pub(crate) fn encode(what: &'static str) -> impl FnOnce(der::Error) -> PkiError {
        move |e| PkiError::Encode {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn malformed(what: &'static str) -> impl FnOnce(der::Error) -> PkiError {
        move |e| PkiError::Malformed {
            what,
            reason: e.to_string(),
        }
    }
}
