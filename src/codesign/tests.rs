//! The signature reader against fixtures built byte by byte, their committed copies, and every
//! truncation and single-byte corruption of them (none may panic).

use super::testbuild::*;
use super::*;

const SLACK: &str = "com.tinyspeck.slackmacgap";
const SLACK_TEAM: &str = "BQR82RBBHL";
/// The code directory hashes of the committed fixtures, computed outside this crate: the
/// CodeDirectory blob cut out of the file with `dd` (offsets from `xxd`), hashed with
/// `sha256sum` / `sha1sum`, the first 40 hex digits kept (see tests/fixtures/macho/README.md).
const SIGNED_ARM64_CDHASH: &str = "08a3c75acd0dc0896ed3f2e2ba8e383c01f993ee";
/// `adhoc-arm64`: its one SHA-256 directory.
const ADHOC_ARM64_CDHASH: &str = "bdffcbeb8533f5d80c51f6285fd2ff15af9222a4";
/// `adhoc-dual-hash-arm64`: the SHA-256 alternate's hash. (The SHA-1 primary's SHA-1,
/// `3d4455a80fb95c4796d9b99adb5ab9f3a5547452`, is what securityd does not use.)
const DUAL_HASH_CDHASH: &str = "50dd21e595f78f45cc5256361b5c828a03c1581f";
/// `developer-id-arm64` and `team-not-apple-arm64`: one CodeDirectory, SHA-256.
const EXAMPLE_CDHASH: &str = "63de377b1f398b21267f9e9613b97b6954efc9a9";
/// SHA-256 of Apple Root CA as Security pins it (`SecAppleAnchor.c`, `AppleRootCAHash`).
const APPLE_ROOT_CA_SHA256: &str =
    "b0b1730ecbc7ff4505142c49f1295e6eda6bcaed7e2c68c5be91b5a11001f024";

fn committed(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/macho")
            .join(name),
    )
    .unwrap()
}

fn partition_of_file(name: &str) -> String {
    let macho = parse(&committed(name)).unwrap();
    partition_of(macho.signature()).unwrap().to_string()
}

fn signed(cpu: u32) -> Vec<u8> {
    thin(cpu, Some(&signature(&Cd::team(SLACK, SLACK_TEAM))))
}

fn expect_team(data: &[u8]) -> TeamIdentity {
    team_identity_of(&parse(data).unwrap()).unwrap()
}

#[test]
fn thin_64_bit_signed_gives_team_and_identifier() {
    let macho = parse(&signed(CPU_ARM64)).unwrap();
    assert_eq!(
        macho.slices,
        vec![Slice {
            cpu_type: CPU_ARM64,
            signature: Some(Signature {
                team_id: Some(SLACK_TEAM.into()),
                identifier: SLACK.into(),
                ad_hoc: false,
                cdhash: Some(SIGNED_ARM64_CDHASH.into()),
                certificates: Vec::new(),
            }),
        }]
    );
    let id = team_identity_of(&macho).unwrap();
    assert_eq!(id.partition.to_string(), "teamid:BQR82RBBHL");
    assert_eq!(id.identifier, SLACK);
    assert!(!id.slices_differ);
}

#[test]
fn thin_32_bit_signed_is_read() {
    let data = thin(
        CPU_I386,
        Some(&signature(&Cd::team("com.old.app", "ABCDE12345"))),
    );
    assert_eq!(expect_team(&data).team_id, "ABCDE12345");
}

#[test]
fn universal_binaries_read_every_slice() {
    for fat64 in [false, true] {
        let data = universal(
            &[
                (CPU_X86_64, signed(CPU_X86_64)),
                (CPU_ARM64, signed(CPU_ARM64)),
            ],
            fat64,
        );
        let macho = parse(&data).unwrap();
        assert_eq!(macho.slices.len(), 2, "fat64={fat64}");
        assert_eq!(macho.slices[0].cpu_type, CPU_X86_64);
        assert_eq!(macho.slices[1].cpu_type, CPU_ARM64);
        let id = team_identity_of(&macho).unwrap();
        assert_eq!(
            (id.team_id.as_str(), id.slices, id.slices_differ),
            (SLACK_TEAM, 2, false)
        );
    }
}

#[test]
fn universal_slices_that_disagree_report_the_first_and_say_so() {
    let other = thin(CPU_ARM64, Some(&signature(&Cd::team(SLACK, "ZZZZZ99999"))));
    let data = universal(
        &[(CPU_X86_64, signed(CPU_X86_64)), (CPU_ARM64, other)],
        false,
    );
    let id = expect_team(&data);
    assert_eq!(id.team_id, SLACK_TEAM);
    assert!(id.slices_differ);
}

#[test]
fn a_malformed_later_slice_fails_the_file() {
    let mut broken = signed(CPU_ARM64);
    broken.truncate(broken.len() - 40);
    let data = universal(
        &[(CPU_X86_64, signed(CPU_X86_64)), (CPU_ARM64, broken)],
        false,
    );
    assert!(matches!(parse(&data), Err(CodesignError::Truncated { .. })));
}

#[test]
fn ad_hoc_signature_is_refused_with_its_identifier() {
    let data = thin(CPU_ARM64, Some(&signature(&Cd::ad_hoc("a.out"))));
    let sig = parse(&data).unwrap().slices[0].signature.clone().unwrap();
    assert!(sig.ad_hoc);
    assert_eq!(sig.team_id, None);
    let err = team_identity_of(&parse(&data).unwrap()).unwrap_err();
    assert!(matches!(&err, CodesignError::AdHoc { identifier, .. } if identifier == "a.out"));
}

#[test]
fn ad_hoc_flag_wins_even_with_a_team_string() {
    let cd = Cd {
        flags: 0x2,
        ..Cd::team(SLACK, SLACK_TEAM)
    };
    let data = thin(CPU_ARM64, Some(&signature(&cd)));
    assert!(matches!(
        team_identity_of(&parse(&data).unwrap()),
        Err(CodesignError::AdHoc { .. })
    ));
}

#[test]
fn code_directory_older_than_0x20200_has_no_team() {
    let cd = Cd {
        version: 0x20100,
        ..Cd::team(SLACK, SLACK_TEAM)
    };
    let data = thin(CPU_X86_64, Some(&signature(&cd)));
    let macho = parse(&data).unwrap();
    assert_eq!(macho.signature().unwrap().team_id, None);
    assert!(matches!(
        team_identity_of(&macho),
        Err(CodesignError::NoTeamId { identifier }) if identifier == SLACK
    ));
}

#[test]
fn the_team_is_taken_from_an_alternate_directory_when_the_primary_lacks_it() {
    let old = Cd {
        version: 0x20100,
        ..Cd::team(SLACK, SLACK_TEAM)
    };
    let sig = super_blob(&[
        (0, code_directory(&old)),
        (0x1000, code_directory(&Cd::team(SLACK, SLACK_TEAM))),
    ]);
    assert_eq!(
        expect_team(&thin(CPU_ARM64, Some(&sig))).team_id,
        SLACK_TEAM
    );
}

#[test]
fn a_signature_without_a_primary_code_directory_is_corrupt() {
    let sig = super_blob(&[(0x1000, code_directory(&Cd::team(SLACK, SLACK_TEAM)))]);
    let err = parse(&thin(CPU_ARM64, Some(&sig))).unwrap_err();
    assert!(
        err.to_string().contains("no CodeDirectory in slot 0"),
        "{err}"
    );
}

#[test]
fn unsigned_binary_is_reported_as_unsigned() {
    let macho = parse(&thin(CPU_X86_64, None)).unwrap();
    assert_eq!(macho.signature(), None);
    assert!(matches!(
        team_identity_of(&macho),
        Err(CodesignError::Unsigned)
    ));
}

#[test]
fn a_malformed_team_id_is_refused() {
    let data = thin(CPU_ARM64, Some(&signature(&Cd::team(SLACK, "bad,team"))));
    assert!(matches!(
        team_identity_of(&parse(&data).unwrap()),
        Err(CodesignError::BadTeamId(t)) if t == "bad,team"
    ));
}

#[test]
fn non_mach_o_files_are_named() {
    let err = parse(b"#!/bin/sh\necho hi\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        "not a Mach-O file (it starts with 0x23212f62)"
    );
    // A Java class file shares the universal magic; its version is no slice count.
    let class = [0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 52, 0, 0, 0, 0];
    assert!(matches!(parse(&class), Err(CodesignError::NotMachO(m)) if m.contains("Java")));
    assert!(matches!(
        parse(&[0xfe, 0xed, 0xfa, 0xcf, 0, 0, 0, 0]),
        Err(CodesignError::BigEndian)
    ));
    assert!(matches!(
        parse(b""),
        Err(CodesignError::Truncated { offset: 0, .. })
    ));
}

#[test]
fn errors_name_the_structure_and_the_file_offset() {
    let mut data = signed(CPU_ARM64);
    // Point LC_CODE_SIGNATURE.dataoff far past the end.
    let at = 32 + 24 + 8;
    data[at..at + 4].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
    let err = parse(&data).unwrap_err().to_string();
    assert!(
        err.starts_with("truncated: code signature at offset 2147418112 needs"),
        "{err}"
    );
}

#[test]
fn a_load_command_smaller_than_its_header_is_corrupt() {
    let mut data = signed(CPU_ARM64);
    data[32 + 4..32 + 8].copy_from_slice(&4u32.to_le_bytes()); // LC_UUID.cmdsize
    assert!(matches!(
        parse(&data),
        Err(CodesignError::Corrupt { offset: 32, .. })
    ));
}

#[test]
fn a_team_string_without_its_nul_is_corrupt() {
    let mut data = signed(CPU_ARM64);
    let dataoff = u32::from_le_bytes(data[32 + 24 + 8..32 + 24 + 12].try_into().unwrap());
    let sig_len = signature(&Cd::team(SLACK, SLACK_TEAM)).len();
    // The team ID's NUL is the last byte of the CodeDirectory, which ends before the
    // requirements (12 bytes) and the CMS wrapper (8 bytes).
    let nul = dataoff as usize + sig_len - 12 - 8 - 1;
    assert_eq!(data[nul], 0);
    data[nul] = b'X';
    let err = parse(&data).unwrap_err().to_string();
    assert!(err.contains("team ID") && err.contains("NUL"), "{err}");
}

#[test]
fn every_prefix_is_an_error_or_the_right_answer() {
    let files = [
        signed(CPU_ARM64),
        thin(CPU_I386, Some(&signature(&Cd::team("x", "ABCDE12345")))),
        universal(
            &[
                (CPU_X86_64, signed(CPU_X86_64)),
                (CPU_ARM64, signed(CPU_ARM64)),
            ],
            true,
        ),
    ];
    for data in files {
        let full = parse(&data).unwrap();
        for n in 0..data.len() {
            if let Ok(partial) = parse(&data[..n]) {
                assert_eq!(partial, full, "prefix of {n} bytes gave a different answer");
            }
        }
    }
}

#[test]
fn no_single_byte_corruption_panics() {
    let files = [
        signed(CPU_ARM64),
        thin(CPU_ARM64, Some(&signature(&Cd::ad_hoc("a.out")))),
        universal(
            &[
                (CPU_X86_64, signed(CPU_X86_64)),
                (CPU_ARM64, signed(CPU_ARM64)),
            ],
            false,
        ),
    ];
    for data in files {
        // Headers and the signature are where the parser looks; the universal file's padding
        // is skipped to keep the test quick.
        for i in (0..data.len()).filter(|&i| data[i] != 0 || i < 64 || i % 97 == 0) {
            for v in [0x00, 0xff, 0x80, data[i].wrapping_add(1)] {
                let mut bad = data.clone();
                bad[i] = v;
                let _ = parse(&bad).map(|m| team_identity_of(&m));
            }
        }
    }
}

#[test]
fn committed_fixtures_are_what_the_builder_makes() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/macho");
    let rewrite = std::env::var_os("DEVICETRUST_WRITE_FIXTURES").is_some();
    let mut differ = Vec::new();
    for (name, bytes) in committed_fixtures() {
        let path = dir.join(name);
        // Compared as committed, before any rewrite: a rewriting run passes only when nothing
        // had to change, and the run after it checks what was written.
        if std::fs::read(&path).ok().as_deref() != Some(bytes.as_slice()) {
            differ.push(name);
            if rewrite {
                std::fs::write(&path, &bytes).unwrap();
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{differ:?} differ from the builder's output{}",
        if rewrite {
            "; rewritten, run again to check them"
        } else {
            " (DEVICETRUST_WRITE_FIXTURES=1 rewrites them)"
        }
    );
}

#[test]
fn bundles_resolve_to_their_main_executable() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("Slack.app");
    std::fs::create_dir_all(app.join("Contents/MacOS")).unwrap();
    let mut info = plist::Dictionary::new();
    info.insert("CFBundleExecutable".into(), "Slack".into());
    plist::Value::Dictionary(info)
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    std::fs::write(app.join("Contents/MacOS/Slack"), signed(CPU_ARM64)).unwrap();
    assert_eq!(
        executable_path(&app).unwrap(),
        app.join("Contents/MacOS/Slack")
    );
    assert_eq!(team_identity(&app).unwrap().team_id, SLACK_TEAM);

    let mut evil = plist::Dictionary::new();
    evil.insert("CFBundleExecutable".into(), "../../../etc/passwd".into());
    plist::Value::Dictionary(evil)
        .to_file_xml(app.join("Contents/Info.plist"))
        .unwrap();
    assert!(matches!(
        executable_path(&app),
        Err(CodesignError::BadInfoPlist { .. })
    ));
    assert!(matches!(
        executable_path(dir.path()),
        Err(CodesignError::NotABundle { .. })
    ));
}

#[test]
fn securityd_partitions_team_ad_hoc_and_unsigned_code_apart() {
    // A team field alone, without an Apple-issued chain, is not a team to securityd.
    assert_eq!(
        partition_of_file("signed-arm64"),
        format!("cdhash:{SIGNED_ARM64_CDHASH}")
    );
    assert_eq!(partition_of_file("developer-id-arm64"), "teamid:ABCDE12345");
    assert_eq!(
        partition_of_file("team-not-apple-arm64"),
        format!("cdhash:{EXAMPLE_CDHASH}")
    );
    assert_eq!(
        partition_of_file("adhoc-arm64"),
        format!("cdhash:{ADHOC_ARM64_CDHASH}")
    );
    assert_eq!(partition_of_file("unsigned-x86_64"), "unsigned:");
    // Signed, no team, not ad-hoc (a certificate no Apple CA issued): also cdhash:.
    let no_team = Cd {
        version: 0x20100,
        ..Cd::team(SLACK, SLACK_TEAM)
    };
    let macho = parse(&thin(CPU_ARM64, Some(&signature(&no_team)))).unwrap();
    let partition = partition_of(macho.signature()).unwrap().to_string();
    assert!(partition.starts_with("cdhash:"), "{partition}");
    assert_eq!(partition.len(), "cdhash:".len() + 40);
}

#[test]
fn the_cdhash_is_the_best_directorys_hash_truncated_to_20_bytes() {
    assert_eq!(
        partition_of_file("adhoc-dual-hash-arm64"),
        format!("cdhash:{DUAL_HASH_CDHASH}")
    );
    // Order in the index does not matter; only slot numbers do.
    let cd = Cd::ad_hoc("com.devicetrust.agent");
    let swapped = super_blob(&[
        (0x1000, code_directory(&cd.clone().hashed(HASH_SHA256))),
        (0, code_directory(&cd.clone().hashed(HASH_SHA1))),
    ]);
    let macho = parse(&thin(CPU_ARM64, Some(&swapped))).unwrap();
    assert_eq!(
        macho.signature().unwrap().cdhash.as_deref(),
        Some(DUAL_HASH_CDHASH)
    );
    // An alternate after a gap is not looked at, as Security stops at the first empty slot.
    let gap = super_blob(&[
        (0, code_directory(&cd.clone().hashed(HASH_SHA1))),
        (0x1001, code_directory(&cd.clone().hashed(HASH_SHA256))),
    ]);
    let macho = parse(&thin(CPU_ARM64, Some(&gap))).unwrap();
    let sha1_only = macho.signature().unwrap().cdhash.clone().unwrap();
    assert_ne!(sha1_only, DUAL_HASH_CDHASH);
    assert_eq!(sha1_only.len(), 40);
}

#[test]
fn ad_hoc_code_is_reported_with_its_cdhash() {
    let macho = parse(&committed("adhoc-arm64")).unwrap();
    match team_identity_of(&macho) {
        Err(CodesignError::AdHoc { identifier, cdhash }) => {
            assert_eq!(identifier, "a.out");
            assert_eq!(cdhash.as_deref(), Some(ADHOC_ARM64_CDHASH));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_slice_that_runs_here_is_chosen_by_cpu_type() {
    let data = universal(
        &[
            (CPU_X86_64, signed(CPU_X86_64)),
            (
                CPU_ARM64,
                thin(CPU_ARM64, Some(&signature(&Cd::ad_hoc("a")))),
            ),
        ],
        false,
    );
    let macho = parse(&data).unwrap();
    assert_eq!(
        macho.slice_for(Some(CPU_ARM64)).unwrap().cpu_type,
        CPU_ARM64
    );
    assert_eq!(
        macho.slice_for(Some(CPU_X86_64)).unwrap().cpu_type,
        CPU_X86_64
    );
    assert_eq!(macho.slice_for(Some(7)).unwrap().cpu_type, CPU_X86_64);
}

#[test]
fn the_apple_root_of_the_fixtures_is_the_one_security_pins() {
    use sha2::Digest;
    assert_eq!(
        crate::fsutil::hex(&sha2::Sha256::digest(APPLE_ROOT_CA)),
        APPLE_ROOT_CA_SHA256
    );
    assert_eq!(committed("apple-root-ca.cer"), APPLE_ROOT_CA);
}

/// The partition of an arm64 binary signed for `cd` with `certificates` embedded.
fn partition_with(cd: &Cd, certificates: &[Vec<u8>]) -> String {
    let macho = parse(&thin(CPU_ARM64, Some(&signature_with(cd, certificates)))).unwrap();
    partition_of(macho.signature()).unwrap().to_string()
}

#[test]
fn a_team_counts_only_under_a_chain_apple_issued() {
    let cd = Cd::team("com.example.agent", "ABCDE12345");
    let apple = apple_root_name();
    let chain = developer_id_chain("ABCDE12345", APPLE_ROOT_CA, &apple);
    assert_eq!(partition_with(&cd, &chain), "teamid:ABCDE12345");
    let cdhash = format!("cdhash:{EXAMPLE_CDHASH}");
    // The chain without its root: the anchor cannot be seen to be Apple's.
    assert_eq!(partition_with(&cd, &chain[..2]), cdhash);
    // Apple's root, but a leaf without the Developer ID marker.
    let ca = name("CN=Developer ID Certification Authority,OU=G2,O=Apple Inc.,C=US");
    let plain_leaf = certificate(&name("CN=x,OU=ABCDE12345"), &ca, 3, &[]);
    let unmarked = vec![plain_leaf, chain[1].clone(), chain[2].clone()];
    assert_eq!(partition_with(&cd, &unmarked), cdhash);
    // A Developer ID leaf under a CA without the Developer ID CA marker.
    let unmarked_ca = certificate(&ca, &apple, 2, &[]);
    let chain_without = vec![chain[0].clone(), unmarked_ca, chain[2].clone()];
    assert_eq!(partition_with(&cd, &chain_without), cdhash);
    // Ad-hoc code is cdhash: whatever it carries.
    let ad_hoc = Cd {
        flags: 0x2,
        ..cd.clone()
    };
    assert!(partition_with(&ad_hoc, &chain).starts_with("cdhash:"));
}

#[test]
fn developer_id_code_is_named_by_its_leaf_and_app_store_code_by_its_directory() {
    // securityd takes a Developer ID team from the leaf's OU, not the CodeDirectory.
    let cd = Cd::team("com.example.agent", "ZZZZZ99999");
    let chain = developer_id_chain("ABCDE12345", APPLE_ROOT_CA, &apple_root_name());
    assert_eq!(partition_with(&cd, &chain), "teamid:ABCDE12345");
    // The Mac App Store's leaf marker: the CodeDirectory's team.
    let wwdr =
        name("CN=Apple Worldwide Developer Relations Certification Authority,O=Apple Inc.,C=US");
    let store_leaf = certificate(
        &name("CN=Apple Mac OS Application Signing"),
        &wwdr,
        4,
        &[MAC_APP_STORE_LEAF],
    );
    let store_ca = certificate(&wwdr, &apple_root_name(), 5, &["2.1"]);
    let store = vec![store_leaf, store_ca, APPLE_ROOT_CA.to_vec()];
    assert_eq!(partition_with(&cd, &store), "teamid:ZZZZZ99999");
    // WWDR development and distribution leaves: the leaf's OU.
    for marker in ["1.12", "1.7"] {
        let leaf = certificate(
            &name("CN=Apple Development: x,OU=QWERT12345"),
            &wwdr,
            6,
            &[marker],
        );
        let chain = vec![leaf, store[1].clone(), APPLE_ROOT_CA.to_vec()];
        assert_eq!(partition_with(&cd, &chain), "teamid:QWERT12345", "{marker}");
    }
}

#[test]
fn the_signer_comes_first_whatever_order_the_set_keeps() {
    // DER sorts a SET OF, so the blob keeps the certificates in another order; the signer
    // info names the leaf.
    let chain = developer_id_chain("ABCDE12345", APPLE_ROOT_CA, &apple_root_name());
    let embedded = chain::embedded_certificates(&signed_data(&chain));
    assert_eq!(embedded.len(), 3);
    assert_eq!(embedded[0], chain[0]);
    // Signed by the root instead: the root comes first, and no Apple-issued leaf follows.
    let by_root: Vec<Vec<u8>> = chain.iter().rev().cloned().collect();
    let embedded = chain::embedded_certificates(&signed_data(&by_root));
    assert_eq!(embedded[0], chain[2]);
    assert_eq!(apple_issued(&embedded), None);
    assert_eq!(
        chain::embedded_certificates(b"not cms"),
        Vec::<Vec<u8>>::new()
    );
}
