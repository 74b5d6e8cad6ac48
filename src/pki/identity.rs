//! A new key and the certificate a CA issued for it, checked: the only value an identity store
//! accepts, so an unchecked certificate cannot be stored by construction.
//!
//! The key comes from the store that will keep it (the keychain generates it inside
//! okta.keychain; the file store in memory), so `CheckedIdentity` carries it as a [`NewKey`]
//! and hands it back to that store, which takes its own type out again.

use std::any::Any;

use time::OffsetDateTime;

use super::cert::{check_issued, CertificateInfo, IssuedCertError};
use super::key::SigningKey;

/// A freshly generated key, not yet part of a stored identity.
pub trait NewKey: SigningKey {
    /// The key as its own type, for the store that generated it.
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// An issued certificate that passed every check of protocol §3 against the key we generated.
pub struct CheckedIdentity {
    key: Box<dyn NewKey>,
    certificate: CertificateInfo,
    chain: Vec<Vec<u8>>,
}

impl CheckedIdentity {
    /// The checks run before anything is stored: the certificate parses, carries `key`'s public
    /// key, is valid at `now`, and (for Okta) has subject CN `expected_cn`. `chain` holds the
    /// issuer certificates the CA sent with it, nearest first.
    pub fn check(
        key: Box<dyn NewKey>,
        certificate_der: &[u8],
        chain: Vec<Vec<u8>>,
        expected_cn: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<CheckedIdentity, IssuedCertError> {
        let public = key
            .public_key_der()
            .map_err(|e| IssuedCertError::Unparseable(format!("our own public key: {e}")))?;
        let certificate = check_issued(certificate_der, &public, expected_cn, now)?;
        Ok(CheckedIdentity {
            key,
            certificate,
            chain,
        })
    }

    pub fn certificate(&self) -> &CertificateInfo {
        &self.certificate
    }

    pub fn key(&self) -> &dyn SigningKey {
        &*self.key
    }

    /// Taken apart by the store that keeps it.
    pub fn into_parts(self) -> (Box<dyn NewKey>, CertificateInfo, Vec<Vec<u8>>) {
        (self.key, self.certificate, self.chain)
    }
}

impl std::fmt::Debug for CheckedIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckedIdentity")
            .field("serial", &self.certificate.serial_hex)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pki::authority::tests::{client_request, test_authority, test_certificate};
    use crate::pki::key::tests::{other_test_key, test_key};
    use crate::pki::PrivateKey;

    fn key_copy(key: &PrivateKey) -> Box<dyn NewKey> {
        Box::new(PrivateKey::from_pkcs8_der(&key.to_pkcs8_der().unwrap()).unwrap())
    }

    #[test]
    fn only_a_certificate_for_our_key_becomes_a_checked_identity() {
        let now = OffsetDateTime::now_utc();
        let ca = test_authority();
        let ours = test_certificate(now);
        let checked =
            CheckedIdentity::check(key_copy(test_key()), &ours, vec![], Some("Okta MTLS"), now)
                .unwrap();
        assert_eq!(checked.certificate().der, ours);

        let theirs = ca
            .issue(client_request(
                other_test_key().public_key_der().unwrap(),
                now,
            ))
            .unwrap();
        let refused = CheckedIdentity::check(
            key_copy(test_key()),
            &theirs,
            vec![],
            Some("Okta MTLS"),
            now,
        );
        assert!(matches!(refused, Err(IssuedCertError::KeyMismatch)));
        let refused =
            CheckedIdentity::check(key_copy(test_key()), &ours, vec![], Some("Other"), now);
        assert!(matches!(refused, Err(IssuedCertError::WrongSubject { .. })));
    }

    #[test]
    fn debug_names_the_serial_and_the_chain_length_never_the_key() {
        let now = OffsetDateTime::now_utc();
        let ca = test_authority();
        let ours = test_certificate(now);
        let checked = CheckedIdentity::check(
            key_copy(test_key()),
            &ours,
            vec![ca.certificate_der().to_vec()],
            None,
            now,
        )
        .unwrap();
        let shown = format!("{checked:?}");
        let serial = &checked.certificate().serial_hex;
        assert_eq!(
            shown,
            format!("CheckedIdentity {{ serial: \"{serial}\", chain: 1, .. }}")
        );
        let (_, _, chain) = checked.into_parts();
        assert_eq!(chain, [ca.certificate_der().to_vec()]);
    }
}
