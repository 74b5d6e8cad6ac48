//! The Mach-O code-signature reader (`devicetrust teamid`): any file an admin points it at.
#![no_main]

use devicetrust::codesign;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match codesign::parse(data) {
        Ok(macho) => {
            let _ = macho.slices_differ();
            match codesign::team_identity_of(&macho) {
                Ok(identity) => {
                    let _ = identity.partition.to_string();
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        // Error messages format offsets and byte excerpts: they must not panic either.
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
