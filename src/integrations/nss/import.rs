//! Putting things into the database: our identity (as a PKCS#12 that `pk12util` imports, the
//! database created on the way as Chrome creates it), and a trusted CA.
//!
//! An import is two runs of the tools: `pk12util`, then one `certutil -L` that checks the
//! certificate and its key are there. The folders are made here without following a link;
//! the database itself is made by the tools, as the user.

use super::format::{describe, hex_decode};
use super::runner::arg;
use super::{
    pfx, NssCertificate, NssDb, NssError, Ours, SecretDir, Tool, ToolRunner, EMPTY_PASSWORD_FILE,
};
use zeroize::Zeroizing;

impl<R: ToolRunner> NssDb<R> {
    /// Creates the database if it is missing, as Chrome does (folders 0700, SQL format, empty
    /// password); returns whether it was created.
    pub fn ensure(&self) -> Result<bool, NssError> {
        self.create_folders()?;
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

    /// Makes the database's folders where they are missing, 0700 and the home's owner's as
    /// Chrome makes them, never through a link. Behind a link the folder is the user's own
    /// arrangement: nothing is made here, and the tools, which run as the user, follow it with
    /// the user's rights.
    fn create_folders(&self) -> Result<(), NssError> {
        match self.place.create(0o700) {
            Ok(_) => Ok(()),
            Err(e) if e.is_planted() => {
                tracing::debug!("{e}; the NSS tools follow it as the user");
                Ok(())
            }
            Err(e) => Err(NssError::Io {
                action: "creating the database folder",
                path: self.dir.clone(),
                reason: e.to_string(),
            }),
        }
    }

    /// Adds the identity (certificate DER, PKCS#8 private key DER) under our nickname; returns
    /// `false` when it was already there with its key. Nothing else in the database changes.
    ///
    /// Creates the database first if it is missing.
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

    /// Imports the identity and checks that the database then holds it with its key. Returns
    /// whether the database had to be created first (then it holds nothing else).
    ///
    /// `pk12util` creates a missing database exactly as `certutil -N --empty-password` does:
    /// a new database's key slot needs a password set first, and `P12U_InitSlot` (NSS's
    /// cmd/pk12util/pk12util.c) sets the one in the slot password file, empty here.
    fn import(&self, cert_der: &[u8], key_der: &Zeroizing<Vec<u8>>) -> Result<bool, NssError> {
        let cert = describe(cert_der, &[])?;
        self.check_tools()?;
        self.create_folders()?;
        let created = !self.exists();
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
        match self.presence(cert_der)? {
            (true, true) => Ok(created),
            (true, false) => Err(self.unexpected(
                "holds the certificate without its key after importing the identity".into(),
            )),
            (false, _) => Err(self.unexpected(format!(
                "lacks certificate {} after importing it",
                cert.fingerprint_sha256
            ))),
        }
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
}
