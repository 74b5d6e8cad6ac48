//! The module against a model of NSS (argv, secrets, which certificates are chosen) and against
//! the real `certutil`/`pk12util` (what NSS actually does with our files and selectors).

use super::*;
use crate::fsutil::hex;
use crate::pki::CertificateInfo;
use crate::pki::{Authority, IssueProfile, IssueRequest, PrivateKey};
use crate::platform::children::tests::make_fifo;
use std::cell::RefCell;
use std::os::unix::fs::PermissionsExt;
use time::OffsetDateTime;
use zeroize::Zeroizing;

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("pki-fixtures")
            .join(name),
    )
    .unwrap()
}

fn fixture_key(name: &str) -> PrivateKey {
    PrivateKey::from_pkcs8_pem(&fixture(name)).unwrap()
}

/// An identity: certificate DER and PKCS#8 key DER.
struct Identity {
    cert: Vec<u8>,
    key: Zeroizing<Vec<u8>>,
}

impl Identity {
    fn info(&self) -> CertificateInfo {
        CertificateInfo::parse(&self.cert).unwrap()
    }
}

fn okta_ca() -> Authority {
    Authority::from_pem(&fixture("mtls-ca.pem"), &fixture("mtls-ca.key")).unwrap()
}

/// A CA named like no Okta CA, reusing a fixture key (generation is the slow part).
fn decoy_ca() -> Authority {
    Authority::self_signed_with_key(
        fixture_key("tls-ca.key"),
        "Decoy Certificate Authority",
        std::time::Duration::from_secs(3600),
    )
    .unwrap()
}

/// `CN=Okta MTLS` issued by `ca` for the fixture key `key`.
fn identity(ca: &Authority, key: &str) -> Identity {
    let key = fixture_key(key);
    let now = OffsetDateTime::now_utc();
    let cert = ca
        .issue(IssueRequest {
            subject: "CN=Okta MTLS".into(),
            public_key_der: key.public_key_der().unwrap(),
            not_before: now - time::Duration::hours(1),
            not_after: now + time::Duration::days(30),
            serial: None,
            profile: IssueProfile::ClientAuth,
        })
        .unwrap();
    Identity {
        cert,
        key: key.to_pkcs8_der().unwrap(),
    }
}

// ---------------------------------------------------------------------------------------------
// Pure parts

#[test]
fn key_ids_are_what_nss_computes() {
    // SHA-1 of the modulus, as `openssl x509 -modulus | xxd -r -p | sha1sum` gives it and as
    // `certutil -K` lists the key after an import.
    let ca = CertificateInfo::from_pem(&fixture("mtls-ca.pem")).unwrap();
    assert_eq!(
        hex(&key_id(&ca.public_key_der).unwrap()),
        "1c598b45907ce4cdd77b0c266cd3da400234df67"
    );
    assert!(matches!(key_id(b"not der"), Err(NssError::Certificate(_))));
}

#[test]
fn pkcs11_uris_select_by_nickname_and_key_id_and_escape_the_nickname() {
    assert_eq!(
        pkcs11_uri(Some("devicetrust"), Some(&[0xfc, 0x40, 0x0a])),
        "pkcs11:object=devicetrust;id=%fc%40%0a;type=cert"
    );
    assert_eq!(pkcs11_uri(None, Some(&[1])), "pkcs11:id=%01;type=cert");
    assert_eq!(
        pkcs11_uri(Some("a b;id=%00"), None),
        "pkcs11:object=a%20b%3Bid%3D%2500;type=cert"
    );
}

#[test]
fn key_listings_parse_with_odd_nicknames() {
    let out = "< 0> rsa      af1801008c8b3fe99d332b3a705165deee7a8356   decoy\n\
               < 1> rsa      FC40C6D41E35402C650DA9C33EE0043E3FCDDDE8   My Key: personal\n\
               <10> ec       0123456789abcdef0123456789abcdef01234567   (orphan)\n\
               certutil: Checking token \"NSS Certificate DB\"\n";
    assert_eq!(
        parse_key_list(out),
        vec![
            KeyEntry {
                key_id: "af1801008c8b3fe99d332b3a705165deee7a8356".into(),
                nickname: "decoy".into()
            },
            KeyEntry {
                key_id: "fc40c6d41e35402c650da9c33ee0043e3fcddde8".into(),
                nickname: "My Key: personal".into()
            },
            KeyEntry {
                key_id: "0123456789abcdef0123456789abcdef01234567".into(),
                nickname: "(orphan)".into()
            },
        ]
    );
    assert_eq!(parse_key_list(""), vec![]);
}

#[test]
fn pem_output_parses_to_each_certificate() {
    let a = identity(&okta_ca(), "device.key");
    let text = format!(
        "{}\n{}",
        crate::pki::pem_encode("CERTIFICATE", &a.cert),
        crate::pki::pem_encode("CERTIFICATE", &a.cert)
    );
    assert_eq!(
        parse_pem_certificates(&text).unwrap(),
        vec![a.cert.clone(), a.cert]
    );
    assert_eq!(parse_pem_certificates("").unwrap(), Vec::<Vec<u8>>::new());
}

#[test]
fn errors_name_the_cause_without_the_command_line() {
    assert!(is_password_failure(
        "pk12util: Failed to authenticate: SEC_ERROR_BAD_PASSWORD: The security password"
    ));
    assert_eq!(last_line("first\nsecond\n\n", Some(255)), "second");
    assert_eq!(last_line("", Some(3)), "exit status 3");
}

// ---------------------------------------------------------------------------------------------
// A model of NSS: enough of its behaviour to check what the module asks for and chooses.

#[derive(Clone)]
struct Entry {
    label: String,
    der: Vec<u8>,
    key_id: String,
    subject: String,
}

#[derive(Default)]
struct Model {
    certs: Vec<Entry>,
    keys: Vec<KeyEntry>,
    /// What the next pk12util import adds: (certificate, friendlyName).
    imports: Vec<(Vec<u8>, String)>,
    password_protected: bool,
}

#[derive(Default)]
struct Fake {
    model: RefCell<Model>,
    log: RefCell<Vec<(Tool, Vec<String>)>>,
    /// Each secret file pk12util was handed, read while it existed: (path, mode, contents).
    seen_files: RefCell<Vec<(PathBuf, u32, Vec<u8>)>>,
    /// Tools this device lacks.
    missing: Vec<Tool>,
}

fn ok(stdout: String) -> ToolOutput {
    ToolOutput {
        success: true,
        code: Some(0),
        stdout,
        stderr: String::new(),
    }
}

fn fail(stderr: &str) -> ToolOutput {
    ToolOutput {
        success: false,
        code: Some(255),
        stdout: String::new(),
        stderr: stderr.to_owned(),
    }
}

/// One certificate as `certutil -L -n <name>` prints it (the lines this module reads, in the
/// layout of NSS 3.x), `User` among its trust flags when its key is in the database.
pub(crate) fn printout(der: &[u8], key: bool) -> String {
    let colons = fingerprint(der)
        .to_ascii_uppercase()
        .as_bytes()
        .chunks(2)
        .map(|pair| String::from_utf8_lossy(pair).into_owned())
        .collect::<Vec<_>>()
        .join(":");
    let user = if key { "            User\n" } else { "" };
    format!(
        "Certificate:\n    Data:\n        Version: 3 (0x2)\n    Fingerprint (SHA-256):\n        \
         {colons}\n    Fingerprint (SHA1):\n        00:11\n\n    Mozilla-CA-Policy: false \
         (attribute missing)\n    Certificate Trust Flags:\n        SSL Flags:\n{user}        \
         Email Flags:\n{user}        Object Signing Flags:\n{user}\n"
    )
}

fn value_after<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

/// (object, key id hex) of a `-n` argument: a PKCS#11 URI, or a plain nickname.
fn selector(name: &str) -> (Option<String>, Option<String>) {
    let Some(attrs) = name.strip_prefix("pkcs11:") else {
        return (Some(name.to_owned()), None);
    };
    let mut object = None;
    let mut id = None;
    for attr in attrs.split(';') {
        let decode = |v: &str| {
            let mut out = Vec::new();
            let bytes = v.as_bytes();
            let mut i = 0;
            while i < bytes.len() {
                if bytes[i] == b'%' {
                    out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(bytes[i]);
                    i += 1;
                }
            }
            out
        };
        if let Some(v) = attr.strip_prefix("object=") {
            object = Some(String::from_utf8(decode(v)).unwrap());
        } else if let Some(v) = attr.strip_prefix("id=") {
            id = Some(hex(&decode(v)));
        }
    }
    (object, id)
}

impl Model {
    fn matching(&self, name: &str) -> Option<Entry> {
        let (object, id) = selector(name);
        self.certs
            .iter()
            .find(|e| {
                object.as_ref().is_none_or(|o| *o == e.label)
                    && id.as_ref().is_none_or(|i| *i == e.key_id)
            })
            .cloned()
    }

    fn add(&mut self, der: Vec<u8>, label: &str, with_key: bool) {
        let cert = describe(&der, &[]).unwrap();
        if self
            .certs
            .iter()
            .any(|e| fingerprint(&e.der) == cert.fingerprint_sha256)
        {
            return;
        }
        // NSS files a certificate under the nickname its subject already has.
        let label = self
            .certs
            .iter()
            .find(|e| e.subject == cert.subject)
            .map(|e| e.label.clone())
            .unwrap_or_else(|| label.to_owned());
        if with_key && !self.keys.iter().any(|k| k.key_id == cert.key_id) {
            self.keys.push(KeyEntry {
                key_id: cert.key_id.clone(),
                nickname: label.clone(),
            });
        }
        self.certs.push(Entry {
            label,
            der,
            key_id: cert.key_id,
            subject: cert.subject,
        });
    }

    fn fingerprints(&self) -> Vec<String> {
        self.certs.iter().map(|e| fingerprint(&e.der)).collect()
    }
}

impl ToolRunner for Fake {
    fn run(&self, tool: Tool, args: &[OsString]) -> Result<ToolOutput, NssError> {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        self.log.borrow_mut().push((tool, args.clone()));
        let mut model = self.model.borrow_mut();
        let db = value_after(&args, "-d").map(|d| d.trim_start_matches("sql:").to_owned());
        let out = match (tool, args[0].as_str()) {
            (Tool::Certutil, "-N") => {
                std::fs::write(Path::new(&db.unwrap()).join("cert9.db"), b"").unwrap();
                ok(String::new())
            }
            _ if model.password_protected => fail(
                "password file contains no data\ncertutil: could not authenticate: SEC_ERROR_BAD_PASSWORD",
            ),
            (Tool::Certutil, "-K") => {
                if model.keys.is_empty() {
                    fail("certutil: no keys found")
                } else {
                    ok(model
                        .keys
                        .iter()
                        .enumerate()
                        .map(|(i, k)| format!("<{i:2}> rsa      {}   {}\n", k.key_id, k.nickname))
                        .collect())
                }
            }
            (Tool::Certutil, "-L") => {
                let name = value_after(&args, "-n").unwrap();
                let pem = args.iter().any(|a| a == "-a");
                match model.matching(name) {
                    None => fail(&format!("certutil: Could not find cert: {name}")),
                    Some(first) => ok(model
                        .certs
                        .iter()
                        .filter(|e| e.subject == first.subject)
                        .map(|e| {
                            if pem {
                                crate::pki::pem_encode("CERTIFICATE", &e.der)
                            } else {
                                let key = model.keys.iter().any(|k| k.key_id == e.key_id);
                                printout(&e.der, key)
                            }
                        })
                        .collect()),
                }
            }
            (Tool::Certutil, flag @ ("-D" | "-F")) => {
                if let Some(id) = value_after(&args, "-k") {
                    model.keys.retain(|k| k.key_id != id);
                    ok(String::new())
                } else {
                    let name = value_after(&args, "-n").unwrap();
                    match model.matching(name) {
                        None => fail("certutil: Could not find cert"),
                        Some(found) => {
                            let fp = fingerprint(&found.der);
                            model.certs.retain(|e| fingerprint(&e.der) != fp);
                            if flag == "-F" {
                                model.keys.retain(|k| k.key_id != found.key_id);
                            }
                            ok(String::new())
                        }
                    }
                }
            }
            (Tool::Certutil, "-A") => {
                let der = std::fs::read(value_after(&args, "-i").unwrap()).unwrap();
                let label = value_after(&args, "-n").unwrap().to_owned();
                model.add(der, &label, false);
                ok(String::new())
            }
            (Tool::Pk12util, "-i") => {
                // pk12util creates a missing database, as `certutil -N` would.
                let cert_db = Path::new(db.as_deref().unwrap()).join("cert9.db");
                if !cert_db.exists() {
                    std::fs::write(cert_db, b"").unwrap();
                }
                for flag in ["-i", "-w"] {
                    let path = PathBuf::from(value_after(&args, flag).unwrap());
                    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                    let contents = std::fs::read(&path).unwrap();
                    self.seen_files.borrow_mut().push((path, mode, contents));
                }
                let (der, label) = model.imports.remove(0);
                model.add(der, &label, true);
                ok("pk12util: PKCS12 IMPORT SUCCESSFUL\n".into())
            }
            other => panic!("unexpected tool call {other:?}: {args:?}"),
        };
        Ok(out)
    }

    fn run_as(&self) -> Option<RunAs> {
        None
    }

    fn has(&self, tool: Tool) -> bool {
        !self.missing.contains(&tool)
    }
}

struct ModelDb {
    _home: tempfile::TempDir,
    db: NssDb<Fake>,
}

fn model_db() -> ModelDb {
    let home = tempfile::tempdir().unwrap();
    ModelDb {
        db: NssDb::in_home(home.path(), Fake::default()),
        _home: home,
    }
}

impl ModelDb {
    fn fake(&self) -> &Fake {
        &self.db.runner
    }

    fn add(&self, id: &Identity, label: &str) {
        self.fake()
            .model
            .borrow_mut()
            .imports
            .push((id.cert.clone(), label.to_owned()));
        self.db.add_identity(&id.cert, &id.key).unwrap();
    }

    fn has(&self, id: &Identity) -> bool {
        self.fake()
            .model
            .borrow()
            .fingerprints()
            .contains(&id.info().fingerprint_sha256)
    }
}

#[test]
fn add_creates_the_database_like_chrome_and_imports_through_files_only() {
    let m = model_db();
    let ours = identity(&okta_ca(), "device.key");
    m.add(&ours, NICKNAME);

    let log = m.fake().log.borrow().clone();
    let dir = m.db.dir().to_string_lossy().into_owned();
    // The folders are made as Chrome makes them (0700), without a tool; pk12util makes the
    // database itself, as `certutil -N --empty-password` would.
    for folder in [m.db.dir().parent().unwrap(), m.db.dir()] {
        let mode = std::fs::metadata(folder).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{}", folder.display());
    }
    assert_eq!(log[0].0, Tool::Pk12util);
    let import = &log[0];
    let seen = m.fake().seen_files.borrow().clone();
    let (p12_path, p12_mode, _) = &seen[0];
    let (pw_path, pw_mode, password) = &seen[1];
    assert_eq!(
        import.1,
        vec![
            "-i".to_owned(),
            p12_path.to_string_lossy().into_owned(),
            "-d".into(),
            format!("sql:{dir}"),
            "-w".into(),
            pw_path.to_string_lossy().into_owned(),
            "-k".into(),
            "/dev/null".into()
        ]
    );
    assert_eq!((*p12_mode, *pw_mode), (0o600, 0o600));
    assert_eq!(password.len(), 64);

    // No argv of any call carries the password, the key or anything of the PKCS#12.
    let password = String::from_utf8(password.clone()).unwrap();
    let key_b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &*ours.key);
    for (_, args) in &log {
        for a in args {
            assert!(!a.contains(&password), "{a}");
            assert!(!key_b64.contains(a.as_str()) || a.len() < 8, "{a}");
        }
    }
    // The private directory is gone once the import is over.
    assert!(!p12_path.parent().unwrap().exists());

    let seen = m.db.observe(&ours.cert).unwrap();
    assert!(seen.is_usable());
    assert!(seen.under_our_nickname);
    assert_eq!(seen.key_nickname.as_deref(), Some(NICKNAME));
    assert!(seen.others_under_our_nickname.is_empty());
    // Adding it again changes nothing.
    assert!(!m.db.add_identity(&ours.cert, &ours.key).unwrap());
}

#[test]
fn a_first_enrollment_creates_imports_and_checks_once_without_listing_what_to_remove() {
    let m = model_db();
    let ours = identity(&okta_ca(), "device.key");
    m.fake()
        .model
        .borrow_mut()
        .imports
        .push((ours.cert.clone(), NICKNAME.into()));
    let usable = m.db.is_usable(&ours.cert).unwrap();
    assert!(!usable);
    assert!(
        m.fake().log.borrow().is_empty(),
        "a missing database is not asked"
    );

    let removed =
        m.db.replace_identity(
            &ours.cert,
            &ours.key,
            &Ours::issued_by(crate::integrations::chrome::OKTA_ISSUER_CN, Vec::new()),
            usable,
        )
        .unwrap();
    assert!(removed.is_empty());
    assert!(m.has(&ours));
    // Import (which creates the database), one check; a database made by this call holds
    // nothing else.
    let calls: Vec<(Tool, String)> = m
        .fake()
        .log
        .borrow()
        .iter()
        .map(|(t, a)| (*t, a[0].clone()))
        .collect();
    let expected: Vec<(Tool, String)> = [(Tool::Pk12util, "-i"), (Tool::Certutil, "-L")]
        .into_iter()
        .map(|(t, a)| (t, a.to_owned()))
        .collect();
    assert_eq!(calls, expected);
}

#[test]
fn without_the_tools_nothing_is_created_and_the_package_is_named() {
    for tool in [Tool::Certutil, Tool::Pk12util] {
        let home = tempfile::tempdir().unwrap();
        let fake = Fake {
            missing: vec![tool],
            ..Fake::default()
        };
        let db = NssDb::in_home(home.path(), fake);
        let ours = identity(&okta_ca(), "device.key");
        let err = db
            .replace_identity(&ours.cert, &ours.key, &Ours::default(), false)
            .unwrap_err();
        assert!(
            matches!(&err, NssError::ToolMissing { package, .. } if package.contains("libnss3-tools")),
            "{err}"
        );
        assert!(db.runner.log.borrow().is_empty(), "{tool:?}");
        assert!(!home.path().join(".pki").exists(), "{tool:?}");
    }
}

#[test]
fn renewal_adds_the_new_identity_before_removing_exactly_the_old_one() {
    let m = model_db();
    let okta = okta_ca();
    let old = identity(&okta, "device.key");
    let new = identity(&okta, "mtls-ca.key");
    m.add(&old, NICKNAME);
    m.fake()
        .model
        .borrow_mut()
        .imports
        .push((new.cert.clone(), NICKNAME.into()));
    let usable = m.db.is_usable(&new.cert).unwrap();
    let start = m.fake().log.borrow().len();

    let removed =
        m.db.replace_identity(
            &new.cert,
            &new.key,
            &Ours::issued_by(
                crate::integrations::chrome::OKTA_ISSUER_CN,
                vec![old.cert.clone()],
            ),
            usable,
        )
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].fingerprint_sha256, old.info().fingerprint_sha256);
    assert!(m.has(&new) && !m.has(&old));

    let log = m.fake().log.borrow();
    let calls = &log[start..];
    let import = calls
        .iter()
        .position(|(t, _)| *t == Tool::Pk12util)
        .unwrap();
    let delete = calls
        .iter()
        .position(|(_, a)| a[0] == "-F" || a[0] == "-D")
        .unwrap();
    assert!(import < delete, "new before old: {calls:?}");
    // The old one is selected by its key id, which the new identity does not share.
    let old_id = hex_decode(&old_cert_key_id(&old));
    assert_eq!(
        value_after(&calls[delete].1, "-n"),
        Some(pkcs11_uri(None, Some(&old_id)).as_str())
    );
}

fn old_cert_key_id(id: &Identity) -> String {
    describe(&id.cert, &[]).unwrap().key_id
}

#[test]
fn a_foreign_certificate_of_our_subject_is_never_taken_for_ours() {
    let m = model_db();
    let okta = okta_ca();
    let decoy = identity(&decoy_ca(), "tls-ca.key");
    let ours = identity(&okta, "device.key");
    // The decoy came first, so NSS files ours under the decoy's nickname.
    m.add(&decoy, "decoy");
    m.add(&ours, NICKNAME);
    let seen = m.db.observe(&ours.cert).unwrap();
    assert!(seen.is_usable());
    assert!(!seen.under_our_nickname);
    assert_eq!(seen.key_nickname.as_deref(), Some("decoy"));

    // Known by fingerprint, ours goes wherever it is filed; the decoy stays.
    let removed =
        m.db.remove_ours(&Ours::issued_by(
            crate::integrations::chrome::OKTA_ISSUER_CN,
            vec![ours.cert.clone()],
        ))
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(m.has(&decoy) && !m.has(&ours));
    assert!(m
        .fake()
        .model
        .borrow()
        .keys
        .iter()
        .all(|k| k.nickname == "decoy"));
}

#[test]
fn under_our_nickname_only_our_issuer_counts_as_ours() {
    let m = model_db();
    let okta = okta_ca();
    let ours = identity(&okta, "device.key");
    let decoy = identity(&decoy_ca(), "tls-ca.key");
    // Ours first: the decoy, same subject, is filed under our nickname by NSS.
    m.add(&ours, NICKNAME);
    m.add(&decoy, "decoy");
    let seen = m.db.observe(&ours.cert).unwrap();
    assert_eq!(seen.others_under_our_nickname.len(), 1);
    assert_eq!(
        seen.others_under_our_nickname[0].issuer_cn.as_deref(),
        Some("Decoy Certificate Authority")
    );

    // The agent no longer knows its certificate: the nickname and the issuer decide.
    let removed =
        m.db.remove_ours(&Ours::issued_by(
            crate::integrations::chrome::OKTA_ISSUER_CN,
            vec![],
        ))
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!m.has(&ours) && m.has(&decoy));
    // Without an issuer rule, only known certificates are ours.
    assert_eq!(m.db.remove_ours(&Ours::default()).unwrap(), vec![]);
    assert!(m.has(&decoy));
}

#[test]
fn a_password_protected_database_is_reported_as_such() {
    let m = model_db();
    let ours = identity(&okta_ca(), "device.key");
    m.db.ensure().unwrap();
    m.fake().model.borrow_mut().password_protected = true;
    let err = m.db.observe(&ours.cert).unwrap_err();
    assert!(matches!(err, NssError::PasswordProtected { .. }), "{err}");
}

#[test]
fn a_missing_database_holds_nothing_and_has_nothing_to_remove() {
    let m = model_db();
    let ours = identity(&okta_ca(), "device.key");
    let seen = m.db.observe(&ours.cert).unwrap();
    assert!(!seen.present && !seen.key_present);
    assert_eq!(m.db.remove_ours(&Ours::default()).unwrap(), vec![]);
    assert!(m.fake().log.borrow().is_empty(), "no tool started");
}

// ---------------------------------------------------------------------------------------------
// The real tools

/// The real tools, or `None` (with a message) where they are not installed. Under CI they must
/// be: `scripts/test.sh` installs them.
pub(crate) fn real_tools() -> Option<()> {
    let installed = ["/usr/bin/certutil", "/usr/bin/pk12util"]
        .iter()
        .all(|p| Path::new(p).exists());
    if installed {
        return Some(());
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "certutil/pk12util missing under CI; scripts/test.sh installs libnss3-tools"
    );
    eprintln!("skipped: certutil/pk12util not installed (libnss3-tools)");
    None
}

/// Records every argv and passes the call on to the real tools.
struct Recording {
    inner: SystemRunner,
    log: RefCell<Vec<Vec<String>>>,
    secrets: RefCell<Vec<Vec<u8>>>,
}

impl Recording {
    fn new(inner: SystemRunner) -> Recording {
        Recording {
            inner,
            log: RefCell::default(),
            secrets: RefCell::default(),
        }
    }
}

impl ToolRunner for Recording {
    fn run(&self, tool: Tool, args: &[OsString]) -> Result<ToolOutput, NssError> {
        let args_text: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if let Some(pw) = value_after(&args_text, "-w") {
            self.secrets.borrow_mut().push(std::fs::read(pw).unwrap());
        }
        self.log
            .borrow_mut()
            .push([vec![tool.name().to_owned()], args_text].concat());
        self.inner.run(tool, args)
    }

    fn run_as(&self) -> Option<RunAs> {
        self.inner.run_as()
    }

    fn has(&self, tool: Tool) -> bool {
        self.inner.has(tool)
    }
}

fn real_db(home: &Path, runner: SystemRunner) -> NssDb<Recording> {
    NssDb::in_home(home, Recording::new(runner))
}

fn assert_no_secret_in_argv(db: &NssDb<Recording>, keys: &[&Identity]) {
    let log = db.runner.log.borrow();
    let secrets = db.runner.secrets.borrow();
    assert!(!secrets.is_empty());
    for argv in log.iter() {
        for a in argv {
            for s in secrets.iter() {
                assert!(
                    !a.as_bytes().windows(s.len()).any(|w| w == s.as_slice()),
                    "{a}"
                );
            }
            for id in keys {
                let b64 =
                    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &*id.key);
                assert!(a.len() < 16 || !b64.contains(a.as_str()), "{a}");
            }
        }
    }
}

#[test]
fn real_nss_add_observe_renew_and_remove_leave_the_foreign_certificate() {
    let Some(()) = real_tools() else { return };
    let home = tempfile::tempdir().unwrap();
    let db = real_db(home.path(), SystemRunner::current_user());
    let okta = okta_ca();
    let decoy = identity(&decoy_ca(), "tls-ca.key");
    let old = identity(&okta, "device.key");
    let new = identity(&okta, "mtls-ca.key");

    assert!(db.ensure().unwrap());
    assert!(!db.ensure().unwrap(), "created once");
    let mode = std::fs::metadata(db.dir()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    // A foreign identity of the same subject, imported first under its own nickname.
    let foreign = real_db(home.path(), SystemRunner::current_user()).with_nickname("decoy");
    assert!(foreign.add_identity(&decoy.cert, &decoy.key).unwrap());

    assert!(db.add_identity(&old.cert, &old.key).unwrap());
    assert!(!db.add_identity(&old.cert, &old.key).unwrap());
    let seen = db.observe(&old.cert).unwrap();
    assert!(seen.is_usable(), "{seen:?}");
    // NSS filed ours under the nickname the subject already had.
    assert!(!seen.under_our_nickname, "{seen:?}");
    assert_eq!(seen.key_nickname.as_deref(), Some("decoy"));

    // Renewal: new first, then exactly the old one goes.
    let usable = db.is_usable(&new.cert).unwrap();
    assert!(!usable);
    let removed = db
        .replace_identity(
            &new.cert,
            &new.key,
            &Ours::issued_by(
                crate::integrations::chrome::OKTA_ISSUER_CN,
                vec![old.cert.clone()],
            ),
            usable,
        )
        .unwrap();
    assert_eq!(
        removed
            .iter()
            .map(|c| c.serial_hex.clone())
            .collect::<Vec<_>>(),
        vec![old.info().serial_hex]
    );
    assert!(db.observe(&new.cert).unwrap().is_usable());
    let gone = db.observe(&old.cert).unwrap();
    assert!(!gone.present && !gone.key_present, "{gone:?}");
    assert!(foreign.observe(&decoy.cert).unwrap().is_usable());

    // Uninstall: ours goes, the foreign identity stays with its key.
    let removed = db
        .remove_ours(&Ours::issued_by(
            crate::integrations::chrome::OKTA_ISSUER_CN,
            vec![new.cert.clone()],
        ))
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!db.observe(&new.cert).unwrap().present);
    assert!(foreign.observe(&decoy.cert).unwrap().is_usable());
    let keys = db.keys().unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(keys[0].key_id, describe(&decoy.cert, &[]).unwrap().key_id);

    assert_no_secret_in_argv(&db, &[&old, &new]);
    assert_no_secret_in_argv(&foreign, &[&decoy]);
}

#[test]
fn real_nss_under_our_nickname_the_issuer_decides() {
    let Some(()) = real_tools() else { return };
    let home = tempfile::tempdir().unwrap();
    let db = real_db(home.path(), SystemRunner::current_user());
    let ours = identity(&okta_ca(), "device.key");
    let decoy = identity(&decoy_ca(), "tls-ca.key");
    db.add_identity(&ours.cert, &ours.key).unwrap();
    let foreign = real_db(home.path(), SystemRunner::current_user()).with_nickname("decoy");
    foreign.add_identity(&decoy.cert, &decoy.key).unwrap();

    let seen = db.observe(&ours.cert).unwrap();
    assert!(seen.under_our_nickname);
    // NSS filed the later foreign certificate of our subject under our nickname.
    assert_eq!(seen.others_under_our_nickname.len(), 1, "{seen:?}");
    assert!(seen.others_under_our_nickname[0].key_present);

    // Without knowing its certificate, the agent still removes only the Okta-issued one.
    let removed = db
        .remove_ours(&Ours::issued_by(
            crate::integrations::chrome::OKTA_ISSUER_CN,
            vec![],
        ))
        .unwrap();
    assert_eq!(removed.len(), 1);
    assert!(!db.observe(&ours.cert).unwrap().present);
    assert!(foreign.observe(&decoy.cert).unwrap().is_usable());
}

#[test]
fn real_nss_trusted_ca_and_password_protected_database() {
    let Some(()) = real_tools() else { return };
    let home = tempfile::tempdir().unwrap();
    let db = real_db(home.path(), SystemRunner::current_user());
    db.ensure().unwrap();
    let ca = CertificateInfo::from_pem(&fixture("tls-ca.pem")).unwrap();
    db.add_trusted_ca("devicetrust test TLS CA", &ca.der)
        .unwrap();
    let group = db
        .group(&pkcs11_uri(Some("devicetrust test TLS CA"), None))
        .unwrap();
    assert_eq!(group, vec![ca.der.clone()]);

    // A database someone protected with a password: an error, never a prompt.
    let locked = tempfile::tempdir().unwrap();
    let dir = locked.path().join(DATABASE_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    let pw = locked.path().join("pw");
    std::fs::write(&pw, "a password\n").unwrap();
    let status = std::process::Command::new("certutil")
        .arg("-N")
        .arg("-d")
        .arg(format!("sql:{}", dir.display()))
        .arg("-f")
        .arg(&pw)
        .status()
        .unwrap();
    assert!(status.success());
    let db = NssDb::in_home(locked.path(), SystemRunner::current_user());
    let ours = identity(&okta_ca(), "device.key");
    let err = db.add_identity(&ours.cert, &ours.key).unwrap_err();
    assert!(matches!(err, NssError::PasswordProtected { .. }), "{err}");
}

/// As root, a home folder owned by a user (here a uid with no password-database entry): the
/// tools run as that uid, and everything they create belongs to it.
#[test]
fn real_nss_as_root_works_as_the_home_folders_owner() {
    let Some(()) = real_tools() else { return };
    if !crate::platform::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    const UID: u32 = 3_999_999_001;
    const GID: u32 = 3_999_999_002;
    let base = tempfile::tempdir().unwrap();
    // The temporary base is root's 0700; the user must be able to reach its home.
    std::fs::set_permissions(base.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = base.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::chown(&home, Some(UID), Some(GID)).unwrap();

    let runner = SystemRunner::for_home(&home).unwrap();
    assert_eq!(
        runner.run_as(),
        Some(RunAs {
            uid: UID,
            gid: GID,
            init_groups: false
        })
    );
    let db = real_db(&home, runner);
    let ours = identity(&okta_ca(), "device.key");
    assert!(db.add_identity(&ours.cert, &ours.key).unwrap());
    assert!(db.observe(&ours.cert).unwrap().is_usable());
    for path in [
        home.join(".pki"),
        db.dir().to_owned(),
        db.dir().join("cert9.db"),
        db.dir().join("key4.db"),
    ] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            (
                std::os::unix::fs::MetadataExt::uid(&meta),
                std::os::unix::fs::MetadataExt::gid(&meta)
            ),
            (UID, GID),
            "{}",
            path.display()
        );
    }
    // Every tool ran under setpriv as the user: the argv the recorder saw went to setpriv.
    assert!(db.runner.log.borrow().iter().any(|a| a[0] == "pk12util"));
    assert_no_secret_in_argv(&db, &[&ours]);

    // A link the user planted where the database should be is followed with the user's rights
    // only: pointing it at a root-only folder makes the tools fail, and that folder stays empty.
    let trap_home = base.path().join("trap");
    std::fs::create_dir(&trap_home).unwrap();
    let target = base.path().join("root-only");
    std::fs::create_dir(&target).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&target, trap_home.join(".pki")).unwrap();
    std::os::unix::fs::chown(&trap_home, Some(UID), Some(GID)).unwrap();
    let trapped = NssDb::for_home(&trap_home).unwrap();
    assert!(trapped.add_identity(&ours.cert, &ours.key).is_err());
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn one_listing_says_whether_each_certificate_and_its_key_are_there() {
    let with_key = identity(&okta_ca(), "device.key");
    let without = identity(&decoy_ca(), "tls-ca.key");
    let text = format!(
        "{}{}",
        printout(&with_key.cert, true),
        printout(&without.cert, false)
    );
    assert_eq!(
        parse_listing(&text),
        vec![
            Listed {
                fingerprint_sha256: with_key.info().fingerprint_sha256,
                has_key: true
            },
            Listed {
                fingerprint_sha256: without.info().fingerprint_sha256,
                has_key: false
            },
        ]
    );
    // `User` elsewhere in a certificate (a subject, say) is not its trust flag.
    let text = printout(&without.cert, false).replace("Version: 3", "User");
    assert!(!parse_listing(&text)[0].has_key);
    assert_eq!(parse_listing("certutil: Could not find cert"), vec![]);
}

#[test]
fn real_nss_one_listing_tells_a_certificate_without_its_key() {
    let Some(()) = real_tools() else { return };
    let home = tempfile::tempdir().unwrap();
    let db = real_db(home.path(), SystemRunner::current_user());
    let ours = identity(&okta_ca(), "device.key");
    assert!(db.add_identity(&ours.cert, &ours.key).unwrap());
    assert!(db.is_usable(&ours.cert).unwrap());
    let key_id = describe(&ours.cert, &[]).unwrap().key_id;
    db.checked(
        Tool::Certutil,
        "deleting a key",
        &[
            arg("-F"),
            arg("-d"),
            db.db_arg(),
            arg("-f"),
            arg(EMPTY_PASSWORD_FILE),
            arg("-k"),
            arg(&key_id),
        ],
    )
    .unwrap();
    assert_eq!(db.presence(&ours.cert).unwrap(), (true, false));
    assert!(!db.is_usable(&ours.cert).unwrap());
}

/// A `certutil` of the user's making that starts a helper and stops itself (`kill -STOP $$`):
/// it is stopped with its process group at its timeout (as root, under the user's uid as the
/// real tools run), and the error names it and the time.
#[test]
fn a_certutil_that_stops_itself_is_stopped_with_its_group_at_its_timeout() {
    let tools = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tools.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let fifo = tools.path().join("pids");
    make_fifo(&fifo, 0o666);
    let standin = tools.path().join("certutil");
    std::fs::write(
        &standin,
        format!(
            "#!/bin/sh\nsleep 1000 &\necho $$ $! > '{}'\nkill -STOP $$\n",
            fifo.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&standin, std::fs::Permissions::from_mode(0o755)).unwrap();
    // SAFETY: geteuid has no preconditions.
    let runner = if unsafe { libc::geteuid() } == 0 {
        std::os::unix::fs::chown(&fifo, Some(3_999_999_003), None).unwrap();
        SystemRunner::as_user(RunAs::uid(3_999_999_003, 3_999_999_003))
    } else {
        SystemRunner::current_user()
    };
    let timeout = std::time::Duration::from_millis(300);
    let runner = runner.with_tools_from(tools.path()).with_timeout(timeout);
    let home = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(home.path().join(DATABASE_DIR)).unwrap();
    std::fs::write(home.path().join(DATABASE_DIR).join("cert9.db"), b"").unwrap();
    let db = NssDb::in_home(home.path(), runner);
    let ours = identity(&okta_ca(), "device.key");

    let looking = std::thread::spawn(move || db.is_usable(&ours.cert));
    let pids: Vec<i32> = std::fs::read_to_string(&fifo)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let err = looking.join().unwrap().unwrap_err();
    let NssError::TimedOut(stopped) = &err else {
        panic!("{err}");
    };
    assert_eq!(
        (stopped.program.as_str(), stopped.after),
        ("certutil", timeout)
    );
    assert!(
        err.to_string()
            .starts_with("certutil did not finish within 300 ms"),
        "{err}"
    );
    // The stand-in and its helper went with their group and were reaped here.
    // On Linux the agent reaps its children's orphans itself; on macOS launchd does, later.
    for pid in pids.into_iter().filter(|_| cfg!(target_os = "linux")) {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} is still there"
        );
    }
}

/// A machine without NSS's tools (`libnss3-tools` not installed), for the callers of
/// [`NssDb`] that must behave without them.
pub(crate) struct NoTools;

impl ToolRunner for NoTools {
    fn run(&self, tool: Tool, _: &[OsString]) -> Result<ToolOutput, NssError> {
        Err(NssError::ToolMissing {
            tool: tool.name(),
            package: tool.package(),
        })
    }
    fn run_as(&self) -> Option<RunAs> {
        None
    }
    fn has(&self, _: Tool) -> bool {
        false
    }
}
