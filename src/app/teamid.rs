//! `devicetrust teamid PATH`: the partition ID an app's signature gives it, as the allowlist
//! takes it. stdout carries the ID (and, verbose, the identifier), so a script can paste it.

use super::{fail, EXIT_FAILED, EXIT_OK};
use crate::codesign::{self, CodesignError};
use std::path::Path;

pub fn run(path: &Path, verbose: bool) -> i32 {
    let macho = match codesign::read_macho(path) {
        Ok(macho) => macho,
        Err(e) => {
            fail(&format!("{}: {e}", path.display()));
            return EXIT_FAILED;
        }
    };
    match codesign::team_identity_of(&macho) {
        Ok(id) => {
            if id.slices_differ {
                tracing::warn!(
                    "the {} slices of {} are signed differently; this is the first one's",
                    id.slices,
                    path.display()
                );
            }
            println!("{}", id.partition);
            if verbose {
                println!("identifier: {}", crate::output::one_line(&id.identifier));
            }
            EXIT_OK
        }
        // Ad-hoc code still has a partition ID (securityd's `cdhash:`): printed so an admin
        // can see what the keychain calls this build, with exit 1 because no fleet-wide list
        // can name it.
        Err(e @ CodesignError::AdHoc { .. }) => {
            if let CodesignError::AdHoc {
                identifier,
                cdhash: Some(hash),
            } = &e
            {
                println!("{}", crate::partition::Partition::cdhash(hash));
                if verbose {
                    println!("identifier: {}", crate::output::one_line(identifier));
                    for slice in &macho.slices {
                        if let Some(hash) = slice.signature.as_ref().and_then(|s| s.cdhash.as_ref())
                        {
                            println!("{}: cdhash:{hash}", codesign::cpu_name(slice.cpu_type));
                        }
                    }
                }
            }
            fail(&format!("{}: {e}", path.display()));
            EXIT_FAILED
        }
        Err(e) => {
            fail(&format!("{}: {e}", path.display()));
            EXIT_FAILED
        }
    }
}
