//! Builds signed, ad-hoc, unsigned and universal Mach-O files byte by byte for the tests.
//!
//! We have no Apple-signed binaries here, so the fixtures follow the layouts of `<mach-o/loader.h>`,
//! `<mach-o/fat.h>` and the kernel's `cs_blobs.h`: a minimal header, one unrelated load command
//! (LC_UUID, so the parser must skip it), LC_CODE_SIGNATURE, and a SuperBlob holding an empty
//! requirements blob, a CodeDirectory (identifier, optional team ID, no code hashes) and a CMS
//! wrapper, padded to 16 bytes as `codesign` pads it. The CMS wrapper is empty, or holds a
//! SignedData with a certificate chain: Apple's real root (its SHA-256 is what Security
//! trusts) above a Developer ID CA and leaf made here, which carry Apple's marker extensions
//! and borrowed keys and signatures (nothing in the agent verifies them; securityd would).

pub use super::{CPU_ARM64, CPU_X86_64};
pub const CPU_I386: u32 = 7;

use const_oid::ObjectIdentifier;
use der::asn1::{BitString, OctetString, SetOfVec};
use der::{Any, Decode, Encode};
use std::str::FromStr;
use x509_cert::ext::Extension;
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::{Certificate, TbsCertificate};

/// Apple Root CA, as Security embeds it (`OSX/utilities/SecAppleAnchor.c`, `AppleRootCA`).
pub const APPLE_ROOT_CA: &[u8] = include_bytes!("../../tests/fixtures/macho/apple-root-ca.cer");

/// `CodeDirectory.hashType` values of `cs_blobs.h`.
pub const HASH_SHA1: u8 = 1;
pub const HASH_SHA256: u8 = 2;
pub const HASH_SHA384: u8 = 4;

/// What the CodeDirectory of a fixture says.
#[derive(Clone, Debug)]
pub struct Cd<'a> {
    pub version: u32,
    pub flags: u32,
    pub identifier: &'a str,
    pub team: Option<&'a str>,
    pub hash_type: u8,
}

impl<'a> Cd<'a> {
    /// A Developer ID signature as current `codesign` writes it (version 0x20400).
    pub fn team(identifier: &'a str, team: &'a str) -> Self {
        Cd {
            version: 0x20400,
            flags: 0x1_0000, // CS_RUNTIME, the hardened runtime
            identifier,
            team: Some(team),
            hash_type: HASH_SHA256,
        }
    }

    /// An ad-hoc signature (`codesign -s -`, or the linker's): CS_ADHOC, no team.
    pub fn ad_hoc(identifier: &'a str) -> Self {
        Cd {
            version: 0x20400,
            flags: 0x2 | 0x2_0000, // CS_ADHOC | CS_LINKER_SIGNED
            identifier,
            team: None,
            hash_type: HASH_SHA256,
        }
    }

    /// The same directory with another hash type (`codesign` writes a SHA-1 primary and a
    /// SHA-256 alternate for code that must run on old systems).
    pub fn hashed(self, hash_type: u8) -> Self {
        Cd { hash_type, ..self }
    }
}

/// `CPU_SUBTYPE_X86_64_ALL` is 3, the others' "all" subtype 0.
fn cpu_subtype(cpu_type: u32) -> u32 {
    if cpu_type == CPU_X86_64 {
        3
    } else {
        0
    }
}

fn be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn pad_to(out: &mut Vec<u8>, align: usize) {
    while !out.len().is_multiple_of(align) {
        out.push(0);
    }
}

/// A CodeDirectory blob: the fixed header for `version`, then the strings.
pub fn code_directory(cd: &Cd) -> Vec<u8> {
    // The header grows with the version: scatter (0x20100), team (0x20200), codeLimit64
    // (0x20300), exec segment (0x20400).
    let header = match cd.version {
        v if v < 0x20100 => 44,
        v if v < 0x20200 => 48,
        v if v < 0x20300 => 52,
        v if v < 0x20400 => 64,
        _ => 88,
    };
    let ident_offset = header as u32;
    let ident_end = ident_offset + cd.identifier.len() as u32 + 1;
    let team_offset = match cd.team {
        Some(_) if cd.version >= 0x20200 => ident_end,
        _ => 0,
    };
    let team_end = match cd.team {
        Some(t) if team_offset != 0 => team_offset + t.len() as u32 + 1,
        _ => ident_end,
    };
    let hash_offset = team_end; // nCodeSlots is 0: no hashes follow
    let mut out = Vec::new();
    be(&mut out, 0xfade_0c02);
    be(&mut out, 0); // length, patched below
    be(&mut out, cd.version);
    be(&mut out, cd.flags);
    be(&mut out, hash_offset);
    be(&mut out, ident_offset);
    be(&mut out, 0); // nSpecialSlots
    be(&mut out, 0); // nCodeSlots
    be(&mut out, 0); // codeLimit
    let hash_size = match cd.hash_type {
        HASH_SHA1 => 20,
        HASH_SHA384 => 48,
        _ => 32,
    };
    out.extend_from_slice(&[hash_size, cd.hash_type, 0, 12]); // hashSize, hashType, platform, pageSize 4k
    be(&mut out, 0); // spare2
    if cd.version >= 0x20100 {
        be(&mut out, 0); // scatterOffset
    }
    if cd.version >= 0x20200 {
        be(&mut out, team_offset);
    }
    out.resize(header, 0); // spare3, codeLimit64, execSeg* are zero
    out.extend_from_slice(cd.identifier.as_bytes());
    out.push(0);
    if let Some(team) = cd.team.filter(|_| team_offset != 0) {
        out.extend_from_slice(team.as_bytes());
        out.push(0);
    }
    let len = out.len() as u32;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out
}

/// An embedded-signature SuperBlob holding `blobs` as (slot, bytes).
pub fn super_blob(blobs: &[(u32, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    be(&mut out, 0xfade_0cc0);
    be(&mut out, 0); // length, patched below
    be(&mut out, blobs.len() as u32);
    let mut offset = 12 + 8 * blobs.len() as u32;
    for (slot, blob) in blobs {
        be(&mut out, *slot);
        be(&mut out, offset);
        offset += blob.len() as u32;
    }
    for (_, blob) in blobs {
        out.extend_from_slice(blob);
    }
    let len = out.len() as u32;
    out[4..8].copy_from_slice(&len.to_be_bytes());
    out
}

/// The signature `codesign` would embed for `cd`: requirements, CodeDirectory, CMS wrapper.
pub fn signature(cd: &Cd) -> Vec<u8> {
    signature_with(cd, &[])
}

/// [`signature`] whose CMS wrapper holds a SignedData with `certificates`, the first the
/// signer's.
pub fn signature_with(cd: &Cd, certificates: &[Vec<u8>]) -> Vec<u8> {
    let requirements = [0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0].to_vec();
    let cms = if certificates.is_empty() {
        Vec::new()
    } else {
        signed_data(certificates)
    };
    let mut wrapper = Vec::new();
    be(&mut wrapper, 0xfade_0b01);
    be(&mut wrapper, 8 + cms.len() as u32);
    wrapper.extend_from_slice(&cms);
    super_blob(&[
        (0, code_directory(cd)),
        (2, requirements),
        (0x10000, wrapper),
    ])
}

/// Apple's marker extensions, by what follows `1.2.840.113635.100.6.`.
pub const DEVELOPER_ID_LEAF: &str = "1.13";
pub const DEVELOPER_ID_CA: &str = "2.6";
pub const MAC_APP_STORE_LEAF: &str = "1.9";

/// A certificate named `subject`, issued in the name of `issuer`, with Apple's marker
/// extensions `markers`. Its key, validity and signature are Apple Root CA's: only names and
/// extensions are read.
pub fn certificate(subject: &Name, issuer: &Name, serial: u8, markers: &[&str]) -> Vec<u8> {
    let root = Certificate::from_der(APPLE_ROOT_CA).unwrap();
    let extensions = markers
        .iter()
        .map(|m| Extension {
            extn_id: ObjectIdentifier::new(&format!("1.2.840.113635.100.6.{m}")).unwrap(),
            critical: false,
            extn_value: OctetString::new(vec![0x05, 0x00]).unwrap(),
        })
        .collect::<Vec<_>>();
    Certificate {
        tbs_certificate: TbsCertificate {
            version: x509_cert::Version::V3,
            serial_number: SerialNumber::new(&[serial]).unwrap(),
            signature: root.signature_algorithm.clone(),
            issuer: issuer.clone(),
            validity: root.tbs_certificate.validity,
            subject: subject.clone(),
            subject_public_key_info: root.tbs_certificate.subject_public_key_info.clone(),
            issuer_unique_id: None,
            subject_unique_id: None,
            extensions: (!extensions.is_empty()).then_some(extensions),
        },
        signature_algorithm: root.signature_algorithm.clone(),
        signature: BitString::from_bytes(&[0x5a; 256]).unwrap(),
    }
    .to_der()
    .unwrap()
}

pub fn name(rdns: &str) -> Name {
    Name::from_str(rdns).unwrap()
}

/// Apple Root CA's own name.
pub fn apple_root_name() -> Name {
    Certificate::from_der(APPLE_ROOT_CA)
        .unwrap()
        .tbs_certificate
        .subject
}

/// A Developer ID chain for `team`: leaf, Developer ID CA, and the root `root` (DER) above
/// them, named `root_name`.
pub fn developer_id_chain(team: &str, root: &[u8], root_name: &Name) -> Vec<Vec<u8>> {
    let ca = name("CN=Developer ID Certification Authority,OU=G2,O=Apple Inc.,C=US");
    let leaf = name(&format!(
        "UID={team},CN=Developer ID Application: Example ({team}),OU={team},O=Example,C=US"
    ));
    vec![
        certificate(&leaf, &ca, 0x43, &[DEVELOPER_ID_LEAF]),
        certificate(&ca, root_name, 0x42, &[DEVELOPER_ID_CA]),
        root.to_vec(),
    ]
}

/// A self-signed root made here, named like Apple's but not Apple's.
pub fn impostor_root() -> (Vec<u8>, Name) {
    let root = name("CN=Apple Root CA,OU=Apple Certification Authority,O=Apple Inc.,C=US");
    (certificate(&root, &root, 1, &[]), root)
}

/// A detached CMS SignedData carrying `certificates`, its one signer naming the first.
pub fn signed_data(certificates: &[Vec<u8>]) -> Vec<u8> {
    use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
    use cms::content_info::{CmsVersion, ContentInfo};
    use cms::signed_data::{
        CertificateSet, EncapsulatedContentInfo, SignedData, SignerIdentifier, SignerInfo,
        SignerInfos,
    };
    use const_oid::db::rfc5911::{ID_DATA, ID_SIGNED_DATA};
    let parsed: Vec<Certificate> = certificates
        .iter()
        .map(|der| Certificate::from_der(der).unwrap())
        .collect();
    let signer = &parsed[0].tbs_certificate;
    let sha256 = spki::AlgorithmIdentifierOwned {
        oid: const_oid::db::rfc5912::ID_SHA_256,
        parameters: None,
    };
    let signer_info = SignerInfo {
        version: CmsVersion::V1,
        sid: SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: signer.issuer.clone(),
            serial_number: signer.serial_number.clone(),
        }),
        digest_alg: sha256.clone(),
        signed_attrs: None,
        signature_algorithm: parsed[0].signature_algorithm.clone(),
        signature: OctetString::new(vec![0x5a; 256]).unwrap(),
        unsigned_attrs: None,
    };
    let signed = SignedData {
        version: CmsVersion::V1,
        digest_algorithms: SetOfVec::try_from(vec![sha256]).unwrap(),
        encap_content_info: EncapsulatedContentInfo {
            econtent_type: ID_DATA,
            econtent: None,
        },
        certificates: Some(CertificateSet(
            SetOfVec::try_from(
                parsed
                    .into_iter()
                    .map(CertificateChoices::Certificate)
                    .collect::<Vec<_>>(),
            )
            .unwrap(),
        )),
        crls: None,
        signer_infos: SignerInfos(SetOfVec::try_from(vec![signer_info]).unwrap()),
    };
    ContentInfo {
        content_type: ID_SIGNED_DATA,
        content: Any::encode_from(&signed).unwrap(),
    }
    .to_der()
    .unwrap()
}

/// What `codesign -s -` writes for code that must also run on old systems: a SHA-1
/// CodeDirectory in slot 0, a SHA-256 one in the first alternate slot.
pub fn dual_hash_signature(cd: &Cd) -> Vec<u8> {
    let requirements = [0xfa, 0xde, 0x0c, 0x01, 0, 0, 0, 12, 0, 0, 0, 0].to_vec();
    let cms = [0xfa, 0xde, 0x0b, 0x01, 0, 0, 0, 8].to_vec();
    super_blob(&[
        (0, code_directory(&cd.clone().hashed(HASH_SHA1))),
        (2, requirements),
        (0x1000, code_directory(&cd.clone().hashed(HASH_SHA256))),
        (0x10000, cms),
    ])
}

/// A thin little-endian Mach-O executable, 64-bit unless `cpu_type` is 32-bit, carrying
/// `signature` (a SuperBlob) or none.
pub fn thin(cpu_type: u32, signature: Option<&[u8]>) -> Vec<u8> {
    let wide = cpu_type & 0x0100_0000 != 0;
    let header_size = if wide { 32 } else { 28 };
    let uuid_cmd = 24;
    let sig_cmd = if signature.is_some() { 16 } else { 0 };
    let sizeofcmds = uuid_cmd + sig_cmd;
    let mut out = Vec::new();
    le(&mut out, if wide { 0xfeed_facf } else { 0xfeed_face });
    le(&mut out, cpu_type);
    le(&mut out, cpu_subtype(cpu_type));
    le(&mut out, 2); // MH_EXECUTE
    le(&mut out, if signature.is_some() { 2 } else { 1 });
    le(&mut out, sizeofcmds);
    le(&mut out, 0x0020_0085); // MH_NOUNDEFS | MH_DYLDLINK | MH_TWOLEVEL | MH_PIE
    if wide {
        le(&mut out, 0); // reserved
    }
    assert_eq!(out.len(), header_size);
    le(&mut out, 0x1b); // LC_UUID
    le(&mut out, uuid_cmd);
    out.extend_from_slice(&[0x5a; 16]);
    let sig_cmd_at = out.len();
    if signature.is_some() {
        le(&mut out, 0x1d);
        le(&mut out, 16);
        le(&mut out, 0); // dataoff, patched below
        le(&mut out, 0); // datasize, patched below
    }
    out.extend_from_slice(&[0xc3; 32]); // stands in for the text and data segments
    if let Some(sig) = signature {
        pad_to(&mut out, 16);
        let dataoff = out.len() as u32;
        out.extend_from_slice(sig);
        pad_to(&mut out, 16);
        let datasize = out.len() as u32 - dataoff;
        out[sig_cmd_at + 8..sig_cmd_at + 12].copy_from_slice(&dataoff.to_le_bytes());
        out[sig_cmd_at + 12..sig_cmd_at + 16].copy_from_slice(&datasize.to_le_bytes());
    }
    out
}

/// A universal binary of `slices` (cpu type, thin file), 2^12-aligned as `lipo` aligns them;
/// `fat64` writes the `0xcafebabf` header with 64-bit offsets.
pub fn universal(slices: &[(u32, Vec<u8>)], fat64: bool) -> Vec<u8> {
    const ALIGN: usize = 1 << 12;
    let mut out = Vec::new();
    be(&mut out, if fat64 { 0xcafe_babf } else { 0xcafe_babe });
    be(&mut out, slices.len() as u32);
    let entries_at = out.len();
    let entry = if fat64 { 32 } else { 20 };
    out.resize(entries_at + entry * slices.len(), 0);
    for (i, (cpu, bytes)) in slices.iter().enumerate() {
        pad_to(&mut out, ALIGN);
        let offset = out.len();
        out.extend_from_slice(bytes);
        let mut e = Vec::new();
        be(&mut e, *cpu);
        be(&mut e, cpu_subtype(*cpu));
        if fat64 {
            e.extend_from_slice(&(offset as u64).to_be_bytes());
            e.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
            be(&mut e, 12);
            be(&mut e, 0);
        } else {
            be(&mut e, offset as u32);
            be(&mut e, bytes.len() as u32);
            be(&mut e, 12);
        }
        let at = entries_at + i * entry;
        out[at..at + entry].copy_from_slice(&e);
    }
    out
}

/// The committed fixtures of `tests/fixtures/macho/`, by file name.
pub fn committed_fixtures() -> Vec<(&'static str, Vec<u8>)> {
    let slack = Cd::team("com.tinyspeck.slackmacgap", "BQR82RBBHL");
    vec![
        ("signed-arm64", thin(CPU_ARM64, Some(&signature(&slack)))),
        (
            "universal-signed",
            universal(
                &[
                    (CPU_X86_64, thin(CPU_X86_64, Some(&signature(&slack)))),
                    (CPU_ARM64, thin(CPU_ARM64, Some(&signature(&slack)))),
                ],
                false,
            ),
        ),
        (
            "adhoc-arm64",
            thin(CPU_ARM64, Some(&signature(&Cd::ad_hoc("a.out")))),
        ),
        ("unsigned-x86_64", thin(CPU_X86_64, None)),
        (
            "adhoc-dual-hash-arm64",
            thin(
                CPU_ARM64,
                Some(&dual_hash_signature(&Cd::ad_hoc("com.devicetrust.agent"))),
            ),
        ),
        (
            "developer-id-arm64",
            thin(
                CPU_ARM64,
                Some(&signature_with(
                    &Cd::team("com.example.agent", "ABCDE12345"),
                    &developer_id_chain("ABCDE12345", APPLE_ROOT_CA, &apple_root_name()),
                )),
            ),
        ),
        (
            "team-not-apple-arm64",
            thin(CPU_ARM64, {
                let (root, root_name) = impostor_root();
                Some(&signature_with(
                    &Cd::team("com.example.agent", "ABCDE12345"),
                    &developer_id_chain("ABCDE12345", &root, &root_name),
                ))
            }),
        ),
    ]
}
