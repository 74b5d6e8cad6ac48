//! Whether a code signature's certificate chain is one Apple issued, read from the certificates
//! the signature embeds (its CMS blob): securityd gives `teamid:` only to such code.
//!
//! securityd's `ClientIdentification::partitionIdForProcess` (`securityd/src/clientid.cpp`)
//! checks these requirements, in this order, after Apple's own code:
//!
//! * Mac App Store: `anchor apple generic and certificate leaf[field.1.2.840.113635.100.6.1.9]`;
//! * TestFlight: `anchor apple generic and certificate 1[field.1.2.840.113635.100.6.2.1] exists
//!   and certificate leaf[field.1.2.840.113635.100.6.1.25.1] exists`;
//!
//! both named by the CodeDirectory's team; then Developer ID (`certificate 1[…6.2.6]` and
//! `leaf[…6.1.13]`), Mac development and Mac distribution (`certificate 1[…6.2.1]` and
//! `leaf[…6.1.12]` or `leaf[…6.1.7]`), named by the leaf certificate's OU. Anything else that is
//! signed gets `cdhash:`. `anchor apple generic` is an anchor among Apple's roots, which
//! Security knows by SHA-256 (`OSX/utilities/SecAppleAnchor.c`, `SecIsAppleTrustAnchor`;
//! `libsecurity_codesigning/lib/csutilities.cpp`, `isAppleCA`); `field.<oid>` is the leaf's or
//! the first intermediate's extension of that OID being there (`certificateHasField`).
//!
//! Only the classification is done here; whether the signature verifies is securityd's to
//! check, and code whose signature does not gets no partition at all.

use super::{CodesignError, Region};
use const_oid::db::rfc4519::OU;
use const_oid::ObjectIdentifier;
use der::{Decode, Encode};
use sha2::{Digest, Sha256};
use x509_cert::Certificate;

/// The CMS signature (certificates and signer) wrapped in a blob of its own (`cs_blobs.h`).
const CSMAGIC_BLOBWRAPPER: u32 = 0xfade_0b01;

/// SHA-256 of Apple's root certificates (`SecAppleAnchor.c`: Apple Root CA, G2, G3, Platform
/// Backport RSA and ECC G1).
const APPLE_ROOTS: [[u8; 32]; 5] = [
    hex32("b0b1730ecbc7ff4505142c49f1295e6eda6bcaed7e2c68c5be91b5a11001f024"),
    hex32("c2b9b042dd57830e7d117dac55ac8ae19407d38e41d88f3215bc3a890444a050"),
    hex32("63343abfb89a6a03ebb57e9b3f5fa7be7c4f5c756f3017b3a8c488c3653e9179"),
    hex32("fb3f6cf69467b5fa9ffa2b3b392b6e5e775bbb09c77b6e759e9038e26bbf9049"),
    hex32("eda23b3f224f45e0952f20e4d2b33e000d49c8044c1168de47b443cd2b3536dc"),
];

/// Apple's marker extensions (the OIDs of `clientid.cpp`'s requirements).
const APPLE_OID: &str = "1.2.840.113635.100.6";
const LEAF_MAC_APP_STORE: &str = "1.9";
const LEAF_TESTFLIGHT: &str = "1.25.1";
const LEAF_DEVELOPER_ID: &str = "1.13";
const LEAF_MAC_DEVELOPMENT: &str = "1.12";
const LEAF_MAC_DISTRIBUTION: &str = "1.7";
const CA_WWDR: &str = "2.1";
const CA_DEVELOPER_ID: &str = "2.6";

/// Where the team of Apple-issued code comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppleIssued {
    /// Mac App Store or TestFlight: the CodeDirectory's team, which Apple verified.
    StoreTeam,
    /// Developer ID, Mac development or distribution: the leaf certificate's OU.
    LeafTeam(Option<String>),
}

const fn hex32(hex: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    let bytes = hex.as_bytes();
    let mut i = 0;
    while i < 32 {
        out[i] = (nibble(bytes[2 * i]) << 4) | nibble(bytes[2 * i + 1]);
        i += 1;
    }
    out
}

const fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        _ => c - b'a' + 10,
    }
}

/// One certificate of the chain, as far as the requirements look.
struct Link {
    der: Vec<u8>,
    cert: Certificate,
}

impl Link {
    fn has_extension(&self, suffix: &str) -> bool {
        let Ok(oid) = ObjectIdentifier::new(&format!("{APPLE_OID}.{suffix}")) else {
            return false;
        };
        self.cert
            .tbs_certificate
            .extensions
            .iter()
            .flatten()
            .any(|e| e.extn_id == oid)
    }

    fn is_apple_root(&self) -> bool {
        let digest: [u8; 32] = Sha256::digest(&self.der).into();
        APPLE_ROOTS.contains(&digest)
    }

    /// The subject's organizational unit: a developer certificate's team.
    fn organizational_unit(&self) -> Option<String> {
        self.cert
            .tbs_certificate
            .subject
            .0
            .iter()
            .flat_map(|rdn| rdn.0.iter())
            .find(|atv| atv.oid == OU)
            .and_then(|atv| {
                der::asn1::Utf8StringRef::try_from(&atv.value)
                    .map(|s| s.as_str().to_owned())
                    .or_else(|_| {
                        der::asn1::PrintableStringRef::try_from(&atv.value)
                            .map(|s| s.as_str().to_owned())
                    })
                    .ok()
            })
    }
}

/// The CMS blob (`CSMAGIC_BLOBWRAPPER`): the certificates of the SignedData it wraps. An empty
/// wrapper (ad-hoc code) has none; one that is not CMS is left to securityd to refuse.
pub(super) fn parse_cms_wrapper(data: Region<'_>) -> Result<Vec<Vec<u8>>, CodesignError> {
    let magic = data.u32_be(0, "CMS blob magic")?;
    if magic != CSMAGIC_BLOBWRAPPER {
        return Err(data.corrupt(
            0,
            "CMS blob",
            format!("magic {magic:#010x}, expected {CSMAGIC_BLOBWRAPPER:#010x}"),
        ));
    }
    let length = data.u32_be(4, "CMS blob length")?;
    let blob = data.sub(0, u64::from(length), "CMS blob")?;
    Ok(embedded_certificates(blob.rest(8, "CMS content")?.bytes))
}

/// The certificates embedded in a code signature's CMS blob (DER SignedData), signer first
/// when the signer names its certificate by issuer and serial; none when there are none or
/// the blob is not CMS.
pub(super) fn embedded_certificates(cms_der: &[u8]) -> Vec<Vec<u8>> {
    use cms::cert::CertificateChoices;
    use cms::signed_data::{SignedData, SignerIdentifier};
    let Ok(info) = cms::content_info::ContentInfo::from_der(cms_der) else {
        return Vec::new();
    };
    let Ok(signed) = info.content.decode_as::<SignedData>() else {
        return Vec::new();
    };
    let mut certificates: Vec<Certificate> = signed
        .certificates
        .iter()
        .flat_map(|set| set.0.iter())
        .filter_map(|choice| match choice {
            CertificateChoices::Certificate(c) => Some(c.clone()),
            CertificateChoices::Other(_) => None,
        })
        .collect();
    let signer = signed.signer_infos.0.iter().find_map(|s| match &s.sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => Some(ias.clone()),
        SignerIdentifier::SubjectKeyIdentifier(_) => None,
    });
    if let Some(ias) = signer {
        if let Some(at) = certificates.iter().position(|c| {
            c.tbs_certificate.issuer == ias.issuer
                && c.tbs_certificate.serial_number == ias.serial_number
        }) {
            let leaf = certificates.remove(at);
            certificates.insert(0, leaf);
        }
    }
    certificates
        .iter()
        .filter_map(|c| c.to_der().ok())
        .collect()
}

/// The chain from the first certificate (the signer's) up through its issuers, as far as
/// the embedded certificates reach.
fn chain(certificates: &[Vec<u8>]) -> Vec<Link> {
    let parsed: Vec<Link> = certificates
        .iter()
        .filter_map(|der| {
            Certificate::from_der(der).ok().map(|cert| Link {
                der: der.clone(),
                cert,
            })
        })
        .collect();
    let mut order: Vec<usize> = Vec::new();
    let mut at = if parsed.is_empty() { None } else { Some(0) };
    while let Some(i) = at {
        order.push(i);
        let current = &parsed[i].cert.tbs_certificate;
        if current.issuer == current.subject || order.len() >= parsed.len() {
            break;
        }
        at = (0..parsed.len()).find(|&j| {
            !order.contains(&j) && parsed[j].cert.tbs_certificate.subject == current.issuer
        });
    }
    let mut parsed: Vec<Option<Link>> = parsed.into_iter().map(Some).collect();
    order
        .into_iter()
        .filter_map(|i| parsed.get_mut(i).and_then(Option::take))
        .collect()
}

/// Whether the signature's embedded chain meets one of the requirements for which securityd
/// names code by its team, and where that team comes from.
pub fn apple_issued(certificates: &[Vec<u8>]) -> Option<AppleIssued> {
    let chain = chain(certificates);
    let (leaf, anchor) = (chain.first()?, chain.last()?);
    if !anchor.is_apple_root() {
        return None;
    }
    let first_ca = chain.get(1);
    let ca_has = |suffix| first_ca.is_some_and(|c| c.has_extension(suffix));
    if leaf.has_extension(LEAF_MAC_APP_STORE)
        || (ca_has(CA_WWDR) && leaf.has_extension(LEAF_TESTFLIGHT))
    {
        return Some(AppleIssued::StoreTeam);
    }
    let developer = (ca_has(CA_DEVELOPER_ID) && leaf.has_extension(LEAF_DEVELOPER_ID))
        || (ca_has(CA_WWDR)
            && (leaf.has_extension(LEAF_MAC_DEVELOPMENT)
                || leaf.has_extension(LEAF_MAC_DISTRIBUTION)));
    developer.then(|| AppleIssued::LeafTeam(leaf.organizational_unit()))
}
