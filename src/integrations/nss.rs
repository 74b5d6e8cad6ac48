//! The user's NSS database (`~/.pki/nssdb`), where Chrome and Chromium on Linux look for client
//! identities: created as Chrome creates it, and our identity added, observed and removed there.
//!
//! The work is done by NSS's own tools (`certutil`, `pk12util`), so the database is only ever
//! written by the code that owns its format. Two facts of NSS shape the design:
//!
//! * **Nicknames follow the subject.** NSS files every certificate of one subject DN under the
//!   nickname the first of them got (`pk12util` looks the DN up and reuses its nickname). Our
//!   identity is imported as [`NICKNAME`], but if another certificate with subject `CN=Okta MTLS`
//!   was there first, ours carries that one's nickname, and a later foreign certificate of that
//!   subject carries ours. A nickname alone therefore never identifies our certificate.
//! * **Selectors.** `certutil -D`/`-F -n` take a PKCS#11 URI (RFC 7512) instead of a nickname.
//!   `pkcs11:id=…;type=cert` selects by CKA_ID, which NSS derives from the public key (SHA-1 of
//!   the RSA modulus or of the EC point). Each identity has its own key (a renewal generates a
//!   new one), so the id names exactly one of our certificates; `object=` adds the nickname when
//!   we need to know whether a certificate is filed under ours.
//!
//! So ours is decided by SHA-256 fingerprint (certificates the caller knows) or by our nickname
//! *and* the issuer our browser policy selects; deletion is by key id and checked afterwards.

mod format;
mod pfx;
mod runner;
mod stamp;

pub use pfx::PfxError;
pub use runner::{RunAs, SecretDir, SystemRunner, Tool, ToolOutput, ToolRunner};
pub use stamp::Vouch;

use format::{describe, fingerprint, found, hex_decode, is_password_failure, last_line};
pub use format::{key_id, parse_key_list, parse_pem_certificates, pkcs11_uri};
use runner::arg;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The nickname our identity is imported under (the PKCS#12 friendlyName).
pub const NICKNAME: &str = "devicetrust";
/// The database Chrome and Chromium open, relative to the user's home folder.
pub const DATABASE_DIR: &str = ".pki/nssdb";

/// Passed where NSS asks for the database password: Chrome's database has an empty one, and an
/// empty file makes a database with a real password fail at once instead of prompting.
const EMPTY_PASSWORD_FILE: &str = "/dev/null";

#[derive(Debug, thiserror::Error)]
pub enum NssError {
    #[error("{tool} is not installed (package: {package}); browsers on this device cannot be given the certificate")]
    ToolMissing {
        tool: &'static str,
        package: &'static str,
    },
    #[error("cannot start {tool}: {reason}")]
    Spawn { tool: &'static str, reason: String },
    #[error("{tool} failed {action} in {dir}: {detail}")]
    Failed {
        tool: &'static str,
        action: &'static str,
        dir: PathBuf,
        detail: String,
    },
    #[error("the NSS database {dir} is protected by a password; devicetrust uses the database only as Chrome creates it (empty password)")]
    PasswordProtected { dir: PathBuf },
    #[error("{action} {path}: {reason}")]
    Io {
        action: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("certificate for the NSS database: {0}")]
    Certificate(String),
    #[error(transparent)]
    Pkcs12(#[from] PfxError),
    #[error("the NSS database {dir} {what}")]
    Unexpected { dir: PathBuf, what: String },
}

/// One certificate as found in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NssCertificate {
    /// SHA-256 of the DER, lowercase hex.
    pub fingerprint_sha256: String,
    pub subject: String,
    pub issuer: String,
    pub issuer_cn: Option<String>,
    /// Lowercase hex, as `CertificateInfo` writes it.
    pub serial_hex: String,
    /// NSS's CKA_ID for the certificate's key, lowercase hex (as `certutil -K` prints it).
    pub key_id: String,
    /// A private key with that id is in the database.
    pub key_present: bool,
    pub der: Vec<u8>,
}

/// What the database holds of one identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observation {
    /// This exact certificate (by SHA-256) is in the database.
    pub present: bool,
    /// Its private key is in the database.
    pub key_present: bool,
    /// The certificate is filed under our nickname (not, say, under an older certificate's of
    /// the same subject).
    pub under_our_nickname: bool,
    /// The nickname NSS gave its key, if the key is there.
    pub key_nickname: Option<String>,
    /// The other certificates filed under our nickname.
    pub others_under_our_nickname: Vec<NssCertificate>,
}

impl Observation {
    /// The browser can present this identity: certificate and key are both there.
    pub fn is_usable(&self) -> bool {
        self.present && self.key_present
    }
}

/// Which certificates in the database are ours to remove.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ours {
    /// Certificates (DER) the agent put there and still knows, e.g. the identity a renewal
    /// replaces: removed wherever NSS filed them.
    pub known: Vec<Vec<u8>>,
    /// A certificate filed under our nickname whose issuer CN is this one is ours too (the
    /// issuer the browser policy selects; it covers identities whose certificate the agent no
    /// longer has). `None`: only `known` certificates are ours.
    pub issuer_cn: Option<String>,
}

impl Ours {
    /// Certificates under our nickname issued by `issuer_cn`, plus `known`.
    pub fn issued_by(issuer_cn: &str, known: Vec<Vec<u8>>) -> Ours {
        Ours {
            known,
            issuer_cn: Some(issuer_cn.to_owned()),
        }
    }
}

/// What [`NssDb::find`] learnt of one certificate.
struct Found {
    certificate: NssCertificate,
    keys: Vec<KeyEntry>,
    present: bool,
}

/// One private key as `certutil -K` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEntry {
    pub key_id: String,
    pub nickname: String,
}

/// A user's NSS database and the way its tools are run.
pub struct NssDb<R: ToolRunner = SystemRunner> {
    dir: PathBuf,
    runner: R,
    nickname: String,
}

impl NssDb<SystemRunner> {
    /// The database Chrome uses for the user whose home folder is `home` (`<home>/.pki/nssdb`).
    /// As root, the tools run as the owner of `home`.
    pub fn for_home(home: &Path) -> Result<NssDb<SystemRunner>, NssError> {
        Ok(NssDb::in_home(home, SystemRunner::for_home(home)?))
    }
}

impl<R: ToolRunner> NssDb<R> {
    /// The database Chrome uses under `home`, its tools run by `runner`.
    pub fn in_home(home: &Path, runner: R) -> NssDb<R> {
        NssDb::with_runner(home.join(DATABASE_DIR), runner)
    }

    pub fn with_runner(dir: PathBuf, runner: R) -> NssDb<R> {
        NssDb {
            dir,
            runner,
            nickname: NICKNAME.to_owned(),
        }
    }

    /// Imports identities under `nickname` instead of [`NICKNAME`].
    pub fn with_nickname(mut self, nickname: &str) -> NssDb<R> {
        nickname.clone_into(&mut self.nickname);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn nickname(&self) -> &str {
        &self.nickname
    }

    /// Creates the database if it is missing, as Chrome does (folders 0700, SQL format, empty
    /// password); returns whether it was created.
    pub fn ensure(&self) -> Result<bool, NssError> {
        // The folders are made by the tools' user, so a link planted in the home folder is
        // followed with that user's rights only.
        let mut args = vec![arg("-p"), arg("-m"), arg("0700"), arg("--")];
        if let Some(parent) = self.dir.parent() {
            args.push(arg(parent));
        }
        args.push(arg(&self.dir));
        self.checked(Tool::Mkdir, "creating the database folder", &args)?;
        if self.exists() {
            return Ok(false);
        }
        self.checked(
            Tool::Certutil,
            "creating the database",
            &[arg("-N"), arg("-d"), self.db_arg(), arg("--empty-password")],
        )?;
        Ok(true)
    }

    /// Adds the identity (certificate DER, PKCS#8 private key DER) under our nickname; returns
    /// `false` when it was already there with its key. Nothing else in the database changes.
    ///
    /// Creates the database first if it is missing ([`NssDb::ensure`]).
    pub fn add_identity(
        &self,
        cert_der: &[u8],
        key_der: &Zeroizing<Vec<u8>>,
    ) -> Result<bool, NssError> {
        if self.is_usable(cert_der)? {
            return Ok(false);
        }
        self.import(cert_der, key_der)?;
        Ok(true)
    }

    /// Imports the identity and checks that the database then holds it with its key. Returns
    /// whether the database had to be created first (then it holds nothing else).
    fn import(&self, cert_der: &[u8], key_der: &Zeroizing<Vec<u8>>) -> Result<bool, NssError> {
        let cert = describe(cert_der, &[])?;
        self.check_tools()?;
        let created = self.ensure()?;
        let local_key_id = hex_decode(&cert.key_id);
        let pfx = pfx::build(cert_der, key_der, &self.nickname, &local_key_id)?;
        let secrets = SecretDir::new(self.runner.run_as())?;
        let p12 = secrets.write("identity.p12", &pfx.der)?;
        let password = secrets.write("identity.pw", pfx.password.as_bytes())?;
        self.checked(
            Tool::Pk12util,
            "importing the identity",
            &[
                arg("-i"),
                arg(&p12),
                arg("-d"),
                self.db_arg(),
                arg("-w"),
                arg(&password),
                arg("-k"),
                arg(EMPTY_PASSWORD_FILE),
            ],
        )?;
        drop(secrets);
        let (present, key_present) = self.presence(cert_der)?;
        if !(present && key_present) {
            return Err(self.unexpected(format!(
                "lacks the identity after importing it (certificate {}, key {})",
                found(present),
                found(key_present)
            )));
        }
        Ok(created)
    }

    /// The tools an import runs (`certutil`, `pk12util`) are installed; the error names the
    /// package of the first that is not.
    pub fn check_tools(&self) -> Result<(), NssError> {
        for tool in [Tool::Certutil, Tool::Pk12util] {
            if !self.runner.has(tool) {
                return Err(NssError::ToolMissing {
                    tool: tool.name(),
                    package: tool.package(),
                });
            }
        }
        Ok(())
    }

    /// Whether a browser can present the identity whose certificate is `cert_der`: the
    /// certificate and its key are both in the database. Two runs of `certutil`, where
    /// [`NssDb::observe`] needs four.
    pub fn is_usable(&self, cert_der: &[u8]) -> Result<bool, NssError> {
        let (present, key_present) = self.presence(cert_der)?;
        Ok(present && key_present)
    }

    /// (certificate present, key present).
    fn presence(&self, cert_der: &[u8]) -> Result<(bool, bool), NssError> {
        let found = self.find(cert_der)?;
        Ok((found.present, found.certificate.key_present))
    }

    /// The keys in the database and whether `cert_der` is there: `certutil -K`, then one
    /// `-L` by the certificate's key id. A missing database is not asked.
    fn find(&self, cert_der: &[u8]) -> Result<Found, NssError> {
        if !self.exists() {
            return Ok(Found {
                certificate: describe(cert_der, &[])?,
                keys: Vec::new(),
                present: false,
            });
        }
        let keys = self.keys()?;
        let key_ids: Vec<String> = keys.iter().map(|k| k.key_id.clone()).collect();
        let certificate = describe(cert_der, &key_ids)?;
        let present = self
            .group(&pkcs11_uri(None, Some(&hex_decode(&certificate.key_id))))?
            .iter()
            .any(|der| fingerprint(der) == certificate.fingerprint_sha256);
        Ok(Found {
            certificate,
            keys,
            present,
        })
    }

    /// What the database holds of the identity whose certificate is `cert_der`, and what else
    /// is filed under our nickname.
    /// A missing database holds nothing.
    pub fn observe(&self, cert_der: &[u8]) -> Result<Observation, NssError> {
        let Found {
            certificate: ours,
            keys,
            present,
        } = self.find(cert_der)?;
        if !self.exists() {
            return Ok(Observation::default());
        }
        let key_ids: Vec<String> = keys.iter().map(|k| k.key_id.clone()).collect();
        let under_our_nickname = present && self.labelled_ours(&hex_decode(&ours.key_id))?;
        let mut others = Vec::new();
        for der in self.group(&pkcs11_uri(Some(&self.nickname), None))? {
            // A certificate this module cannot read (an unusual key type) is not ours.
            let Ok(cert) = describe(&der, &key_ids) else {
                continue;
            };
            if cert.fingerprint_sha256 != ours.fingerprint_sha256
                && self.labelled_ours(&hex_decode(&cert.key_id))?
            {
                others.push(cert);
            }
        }
        Ok(Observation {
            present,
            key_present: ours.key_present,
            under_our_nickname,
            key_nickname: keys
                .into_iter()
                .find(|k| k.key_id == ours.key_id)
                .map(|k| k.nickname),
            others_under_our_nickname: others,
        })
    }

    /// Renewal, new before old: adds the new identity unless `usable` (what
    /// [`NssDb::is_usable`] just said of `cert_der`), checks it, then removes every other
    /// certificate that is ours. Returns what was removed.
    ///
    /// Passing the caller's answer spares the tools a second look. A database this call had
    /// to create holds nothing to remove.
    pub fn replace_identity(
        &self,
        cert_der: &[u8],
        key_der: &Zeroizing<Vec<u8>>,
        ours: &Ours,
        usable: bool,
    ) -> Result<Vec<NssCertificate>, NssError> {
        if !usable && self.import(cert_der, key_der)? {
            return Ok(Vec::new());
        }
        let keep = describe(cert_der, &[])?;
        self.remove(ours, Some(&keep))
    }

    /// Removes our certificates and their keys (see [`Ours`]); nothing else. Returns what was
    /// removed.
    pub fn remove_ours(&self, ours: &Ours) -> Result<Vec<NssCertificate>, NssError> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        self.remove(ours, None)
    }

    /// The database has been created (Chrome's SQL format).
    pub fn exists(&self) -> bool {
        self.dir.join("cert9.db").exists()
    }

    /// Adds `ca_der` as a CA trusted to issue TLS server certificates (`C,,`), under
    /// `nickname`. Used for anchors a device needs besides the public ones.
    pub fn add_trusted_ca(&self, nickname: &str, ca_der: &[u8]) -> Result<(), NssError> {
        let files = SecretDir::new(self.runner.run_as())?;
        let path = files.write("ca.der", ca_der)?;
        self.checked(
            Tool::Certutil,
            "adding a trusted CA",
            &[
                arg("-A"),
                arg("-d"),
                self.db_arg(),
                arg("-n"),
                arg(nickname),
                arg("-t"),
                arg("C,,"),
                arg("-i"),
                arg(&path),
            ],
        )?;
        Ok(())
    }

    /// Every private key in the database.
    pub fn keys(&self) -> Result<Vec<KeyEntry>, NssError> {
        let out = self.run(
            Tool::Certutil,
            &[
                arg("-K"),
                arg("-d"),
                self.db_arg(),
                arg("-f"),
                arg(EMPTY_PASSWORD_FILE),
            ],
        )?;
        if !out.success {
            // certutil says this on stdout, with exit status 255.
            if out.stdout.contains("no keys found") || out.stderr.contains("no keys found") {
                return Ok(Vec::new());
            }
            return Err(self.failure(Tool::Certutil, "listing the keys", &out));
        }
        Ok(parse_key_list(&out.stdout))
    }

    fn remove(
        &self,
        ours: &Ours,
        keep: Option<&NssCertificate>,
    ) -> Result<Vec<NssCertificate>, NssError> {
        let keys = self.keys()?;
        let key_ids: Vec<String> = keys.iter().map(|k| k.key_id.clone()).collect();
        let mut doomed: Vec<NssCertificate> = Vec::new();
        let mut add = |cert: NssCertificate| {
            if !doomed
                .iter()
                .any(|d| d.fingerprint_sha256 == cert.fingerprint_sha256)
            {
                doomed.push(cert);
            }
        };
        for known in &ours.known {
            let cert = describe(known, &key_ids)?;
            let group = self.group(&pkcs11_uri(None, Some(&hex_decode(&cert.key_id))))?;
            if group
                .iter()
                .any(|der| fingerprint(der) == cert.fingerprint_sha256)
            {
                add(cert);
            }
        }
        if let Some(issuer_cn) = &ours.issuer_cn {
            for der in self.group(&pkcs11_uri(Some(&self.nickname), None))? {
                let Ok(cert) = describe(&der, &key_ids) else {
                    continue;
                };
                if cert.issuer_cn.as_deref() == Some(issuer_cn.as_str())
                    && self.labelled_ours(&hex_decode(&cert.key_id))?
                {
                    add(cert);
                }
            }
        }
        if let Some(keep) = keep {
            // A certificate sharing the kept identity's key cannot be told apart from it by key
            // id, the only selector NSS offers; it stays rather than risk the new identity.
            doomed.retain(|d| d.key_id != keep.key_id);
        }
        for cert in &doomed {
            self.delete(cert)?;
        }
        Ok(doomed)
    }

    /// Deletes exactly `cert` (and its key, when present), then checks that it is gone.
    fn delete(&self, cert: &NssCertificate) -> Result<(), NssError> {
        let id = hex_decode(&cert.key_id);
        let selector = pkcs11_uri(None, Some(&id));
        let (flag, action) = if cert.key_present {
            ("-F", "deleting a certificate and its key")
        } else {
            ("-D", "deleting a certificate")
        };
        let out = self.run(
            Tool::Certutil,
            &[
                arg(flag),
                arg("-d"),
                self.db_arg(),
                arg("-f"),
                arg(EMPTY_PASSWORD_FILE),
                arg("-n"),
                arg(&selector),
            ],
        )?;
        if !out.success && !out.stderr.contains("Could not find") {
            return Err(self.failure(Tool::Certutil, action, &out));
        }
        let still_there = self
            .group(&selector)?
            .iter()
            .any(|der| fingerprint(der) == cert.fingerprint_sha256);
        if still_there {
            return Err(self.unexpected(format!(
                "still holds certificate {} after deleting it",
                cert.fingerprint_sha256
            )));
        }
        if self.keys()?.iter().any(|k| k.key_id == cert.key_id) {
            // The certificate went but its key stayed (or was left behind by someone else's
            // deletion): remove the key by its id, which is ours.
            self.checked(
                Tool::Certutil,
                "deleting a key",
                &[
                    arg("-F"),
                    arg("-d"),
                    self.db_arg(),
                    arg("-f"),
                    arg(EMPTY_PASSWORD_FILE),
                    arg("-k"),
                    arg(&cert.key_id),
                ],
            )?;
        }
        Ok(())
    }

    /// Whether a certificate with key id `id` is filed under our nickname.
    fn labelled_ours(&self, id: &[u8]) -> Result<bool, NssError> {
        Ok(!self
            .group(&pkcs11_uri(Some(&self.nickname), Some(id)))?
            .is_empty())
    }

    /// The certificates `certutil -L -n <name>` prints: the one `name` selects and every other
    /// certificate of its subject. Empty when `name` selects nothing.
    fn group(&self, name: &str) -> Result<Vec<Vec<u8>>, NssError> {
        let out = self.run(
            Tool::Certutil,
            &[
                arg("-L"),
                arg("-d"),
                self.db_arg(),
                arg("-n"),
                arg(name),
                arg("-a"),
            ],
        )?;
        if !out.success {
            if out.stderr.contains("Could not find cert") {
                return Ok(Vec::new());
            }
            return Err(self.failure(Tool::Certutil, "listing certificates", &out));
        }
        parse_pem_certificates(&out.stdout)
    }

    fn db_arg(&self) -> OsString {
        let mut value = OsString::from("sql:");
        value.push(self.dir.as_os_str());
        value
    }

    fn run(&self, tool: Tool, args: &[OsString]) -> Result<ToolOutput, NssError> {
        self.runner.run(tool, args)
    }

    fn checked(
        &self,
        tool: Tool,
        action: &'static str,
        args: &[OsString],
    ) -> Result<ToolOutput, NssError> {
        let out = self.run(tool, args)?;
        if out.success {
            Ok(out)
        } else {
            Err(self.failure(tool, action, &out))
        }
    }

    fn failure(&self, tool: Tool, action: &'static str, out: &ToolOutput) -> NssError {
        if is_password_failure(&out.stderr) || is_password_failure(&out.stdout) {
            return NssError::PasswordProtected {
                dir: self.dir.clone(),
            };
        }
        NssError::Failed {
            tool: tool.name(),
            action,
            dir: self.dir.clone(),
            detail: last_line(&format!("{}\n{}", out.stdout, out.stderr), out.code),
        }
    }

    fn unexpected(&self, what: String) -> NssError {
        NssError::Unexpected {
            dir: self.dir.clone(),
            what,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
