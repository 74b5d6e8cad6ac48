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
mod import;
mod pfx;
mod removal;
mod runner;
mod stamp;

pub use format::Listed;
pub use pfx::PfxError;
pub use runner::{RunAs, SecretDir, SystemRunner, Tool, ToolOutput, ToolRunner, TOOL_TIMEOUT};
pub use stamp::Vouch;

use crate::platform::children::TimedOut;
use crate::securefs::Place;
use format::{describe, fingerprint, hex_decode, is_password_failure, last_line};
pub use format::{key_id, parse_key_list, parse_listing, parse_pem_certificates, pkcs11_uri};
use runner::arg;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The nickname our identity is imported under (the PKCS#12 friendlyName).
pub const NICKNAME: &str = "devicetrust";
/// The database Chrome and Chromium open, relative to the user's home folder.
pub const DATABASE_DIR: &str = ".pki/nssdb";
/// The file that exists once the database does (NSS's SQL format).
const CERT_DB: &str = "cert9.db";

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
    /// A tool hung (a FIFO where the database should be, a module that blocks): nothing to
    /// conclude about the database, and the next run tries again.
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
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
    /// Where root looks and creates folders, never through a link.
    place: Place,
    /// The same folder as the tools are told it (they follow links with the user's rights).
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
        NssDb::at(Place::new(home, DATABASE_DIR), runner)
    }

    /// The database in the folder `place` names (for a user, `UserHome::place(DATABASE_DIR)`).
    pub fn at(place: Place, runner: R) -> NssDb<R> {
        NssDb {
            dir: place.path(),
            place,
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

    /// The database has been created (Chrome's SQL format). Root looks without following a
    /// link: where one stands in the way (or the folder cannot be looked at), the answer is
    /// yes, and the tools, which follow it with the user's rights, find out.
    pub fn exists(&self) -> bool {
        match self.place.open() {
            Ok(Some(dir)) => !matches!(dir.metadata(CERT_DB), Ok(None)),
            Ok(None) => false,
            Err(_) => true,
        }
    }

    /// What a check of the database just made is worth to later read-only runs: the vouch for
    /// `cert_der` in the database as its files are now, read without following any link.
    pub fn vouch(&self, cert_der: &[u8]) -> Option<Vouch> {
        Vouch::now(&self.place, cert_der)
    }

    /// Whether `vouch` still answers for `cert_der` in this database.
    pub fn vouched(&self, vouch: &Vouch, cert_der: &[u8]) -> bool {
        vouch.holds(&self.place, cert_der)
    }

    /// Whether a browser can present the identity whose certificate is `cert_der`: the
    /// certificate and its key are both in the database. One run of `certutil`.
    pub fn is_usable(&self, cert_der: &[u8]) -> Result<bool, NssError> {
        let (present, key_present) = self.presence(cert_der)?;
        Ok(present && key_present)
    }

    /// (certificate present, key present): `certutil -L` by the certificate's key id, which
    /// selects the certificates of that key's subject and marks the ones whose key NSS holds.
    /// A missing database is not asked.
    fn presence(&self, cert_der: &[u8]) -> Result<(bool, bool), NssError> {
        if !self.exists() {
            return Ok((false, false));
        }
        let ours = describe(cert_der, &[])?;
        let selector = pkcs11_uri(None, Some(&hex_decode(&ours.key_id)));
        let out = self.run(
            Tool::Certutil,
            &[
                arg("-L"),
                arg("-d"),
                self.db_arg(),
                arg("-n"),
                arg(&selector),
            ],
        )?;
        if !out.success {
            if out.stderr.contains("Could not find cert") {
                return Ok((false, false));
            }
            return Err(self.failure(Tool::Certutil, "listing certificates", &out));
        }
        Ok(parse_listing(&out.stdout)
            .into_iter()
            .find(|listed| listed.fingerprint_sha256 == ours.fingerprint_sha256)
            .map_or((false, false), |listed| (true, listed.has_key)))
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

    /// Whether a certificate with key id `id` is filed under our nickname.
    fn labelled_ours(&self, id: &[u8]) -> Result<bool, NssError> {
        Ok(!self
            .group(&pkcs11_uri(Some(&self.nickname), Some(id)))?
            .is_empty())
    }

    /// The certificates `certutil -L -n <name> -a` prints: the one `name` selects and every
    /// other certificate of its subject. Empty when `name` selects nothing.
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
