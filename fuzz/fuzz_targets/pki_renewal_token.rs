//! CMS renewal tokens as the simulator receives them: SignedData over the renewal claims.
//!
//! First byte even: the rest is a token. Odd: the rest is claims (`iat`, `exp`, `nbf` as three
//! little-endian i64, then the UUID and the display name as two fields), which the agent's signer
//! turns into a token with the fixture device key; the verifier must give back exactly those
//! claims (the signer writes Python-style JSON by hand, escapes included).
#![no_main]

use devicetrust::pki::{sign_renewal_token, verify_renewal_token, RenewalClaims, TokenDevice};
use devicetrust_fuzz::{device_certificate_der, device_key, fields};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        check(rest);
        return;
    }
    let Some((numbers, text)) = rest.split_first_chunk::<24>() else {
        return;
    };
    let number = |i: usize| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(&numbers[i * 8..i * 8 + 8]);
        i64::from_le_bytes(bytes)
    };
    let [uuid, display_name] = fields::<2>(text);
    let claims = RenewalClaims {
        device: TokenDevice {
            uuid: String::from_utf8_lossy(uuid).into_owned(),
            display_name: String::from_utf8_lossy(display_name).into_owned(),
        },
        iat: number(0),
        exp: number(1),
        nbf: number(2),
    };
    let token = match sign_renewal_token(&claims, device_certificate_der(), device_key()) {
        Ok(token) => token,
        Err(e) => return drop(e.to_string()),
    };
    match verify_renewal_token(&token) {
        Ok(verified) => assert_eq!(verified.claims, claims, "claims changed in a round trip"),
        Err(e) => panic!("a token the agent signed does not verify: {e}"),
    }
});

fn check(token: &[u8]) {
    match verify_renewal_token(token) {
        Ok(verified) => {
            let _ = format!("{:?}", verified.claims);
        }
        Err(e) => drop(e.to_string()),
    }
}
