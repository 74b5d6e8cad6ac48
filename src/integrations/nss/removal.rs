//! Taking ours out of the database: which certificates are ours ([`Ours`]), and their
//! deletion by key id, each checked afterwards.

use super::format::{describe, fingerprint, hex_decode, pkcs11_uri};
use super::runner::arg;
use super::{NssCertificate, NssDb, NssError, Ours, Tool, ToolRunner, EMPTY_PASSWORD_FILE};

impl<R: ToolRunner> NssDb<R> {
    /// Removes our certificates and their keys (see [`Ours`]); nothing else. Returns what was
    /// removed.
    pub fn remove_ours(&self, ours: &Ours) -> Result<Vec<NssCertificate>, NssError> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        self.remove(ours, None)
    }

    pub(super) fn remove(
        &self,
        ours: &Ours,
        keep: Option<&NssCertificate>,
    ) -> Result<Vec<NssCertificate>, NssError> {
        let doomed = self.find_ours(ours, keep)?;
        for cert in &doomed {
            self.delete(cert)?;
        }
        Ok(doomed)
    }

    /// The certificates of ours in the database (see [`Ours`]), without removing anything:
    /// what [`NssDb::remove_ours`] would take out. A missing database holds none.
    /// Those sharing the key of `keep` (a certificate, DER) are left out, as a replacement
    /// keeping it leaves them.
    pub fn ours_in(
        &self,
        ours: &Ours,
        keep: Option<&[u8]>,
    ) -> Result<Vec<NssCertificate>, NssError> {
        if !self.exists() {
            return Ok(Vec::new());
        }
        let keep = keep.map(|der| describe(der, &[])).transpose()?;
        self.find_ours(ours, keep.as_ref())
    }

    /// Ours, but for certificates sharing `keep`'s key.
    fn find_ours(
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
}
