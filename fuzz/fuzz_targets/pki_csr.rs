//! PKCS#10 requests as the simulator (and a SCEP CA) receives them from clients: parsed and their
//! self-signature verified over the bytes as received.
#![no_main]

use devicetrust::pki::verify_csr;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match verify_csr(data) {
        Ok(info) => {
            let _ = format!("{info:?}");
        }
        Err(e) => drop(e.to_string()),
    }
});
