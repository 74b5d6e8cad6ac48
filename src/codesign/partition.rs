//! The partition ID securityd gives a process, derived from its code signature as Apple's
//! Security derives it: `teamid:`, `cdhash:` (the code directory hash) or `unsigned:`.

use super::{
    apple_issued, parse, read_limited, AppleIssued, CodesignError, Signature,
    CSSLOT_ALTERNATE_FIRST, CSSLOT_ALTERNATE_LAST, CSSLOT_CODEDIRECTORY, NATIVE_CPU,
};
use crate::partition::Partition;
use std::path::PathBuf;

/// securityd names ad-hoc code by the first 20 bytes of its CodeDirectory's hash
/// (`kSecCodeCDHashLength`).
const CDHASH_LEN: usize = 20;

/// The partition ID securityd gives code signed with `signature` (`clientid.cpp`,
/// `partitionIdForProcess`): `unsigned:` only for code without a signature; `teamid:<T>` only
/// for code whose embedded chain Apple issued ([`apple_issued`]: the CodeDirectory's team for
/// the App Store and TestFlight, the leaf certificate's OU for Developer ID and development
/// certificates); `cdhash:<hex>` for ad-hoc code and any other signature, with a team field or
/// not. (Apple's own code, which securityd calls `apple:` or `apple-tool:`, is not told apart
/// here: the agent is never Apple's.)
pub fn partition_of(signature: Option<&Signature>) -> Result<Partition, CodesignError> {
    let Some(signature) = signature else {
        return Ok(Partition::unsigned());
    };
    let team = match apple_issued(&signature.certificates) {
        _ if signature.ad_hoc => None,
        Some(AppleIssued::StoreTeam) => signature.team_id.clone(),
        Some(AppleIssued::LeafTeam(ou)) => ou,
        None => None,
    };
    match team {
        Some(team) => Partition::team_id(&team).map_err(|_| CodesignError::BadTeamId(team)),
        None => signature
            .cdhash
            .as_deref()
            .map(Partition::cdhash)
            .ok_or_else(|| CodesignError::Corrupt {
                what: "code signature",
                offset: 0,
                problem: "no CodeDirectory uses a hash type Security knows".to_owned(),
            }),
    }
}

/// The running agent's own partition ID, from the signature of its executable's slice for
/// this architecture: what the key's and the password item's lists must keep.
pub fn own_partition() -> Result<Partition, CodesignError> {
    let exe = std::env::current_exe().map_err(|source| CodesignError::Read {
        path: PathBuf::from("the running executable"),
        source,
    })?;
    let macho = parse(&read_limited(&exe)?)?;
    partition_of(
        macho
            .slice_for(NATIVE_CPU)
            .and_then(|s| s.signature.as_ref()),
    )
}

/// The code directory hash securityd gives ad-hoc and other unclassified signed code as its
/// partition ID (`cdhash:<hex>`), computed as Apple's Security does it:
///
/// * securityd's `ClientIdentification::partitionIdForProcess` (`securityd/src/clientid.cpp`)
///   returns `"cdhash:" + hex(kSecCodeInfoUnique)` for signed code that is neither Apple's,
///   nor Mac App Store / TestFlight, nor Developer ID or development signed; `unsigned:` only
///   for `errSecCSUnsigned`.
/// * `kSecCodeInfoUnique` is `SecStaticCode::cdHash()` (`libsecurity_codesigning/lib/
///   StaticCode.cpp`): the hash of the CodeDirectory `codeDirectory()` picks, which is the one
///   whose hash type ranks first in `hashPriorities` (`codedirectory.cpp`: SHA-384, SHA-256,
///   SHA-256 truncated, SHA-1) among slot 0 and the alternates from 0x1000 up to the first
///   empty slot (`loadCodeDirectories`).
/// * `CodeDirectory::cdhash()` hashes the whole blob (`length` bytes) with that directory's
///   own hash type and truncates to `kSecCodeCDHashLength`, 20 bytes: so a signature with a
///   SHA-1 primary and a SHA-256 alternate (what `codesign -s -` writes for older
///   deployment targets) is named by the first 20 bytes of the SHA-256 of the alternate, and
///   the linker's SHA-256-only signature by those of its one directory.
///
/// `None` when no directory uses a hash type Security knows (it then refuses the code).
pub(super) fn cdhash<'a>(
    directories: impl Iterator<Item = (u32, u8, &'a [u8])>,
) -> Option<[u8; CDHASH_LEN]> {
    const SHA1: u8 = 1;
    const SHA256: u8 = 2;
    const SHA256_TRUNCATED: u8 = 3;
    const SHA384: u8 = 4;
    const PRIORITY: [u8; 4] = [SHA384, SHA256, SHA256_TRUNCATED, SHA1];
    let directories: Vec<(u32, u8, &[u8])> = directories.collect();
    // Slot 0, then the alternates in order until the first one missing.
    let mut candidates: Vec<(u8, &[u8])> = Vec::new();
    for slot in
        std::iter::once(CSSLOT_CODEDIRECTORY).chain(CSSLOT_ALTERNATE_FIRST..=CSSLOT_ALTERNATE_LAST)
    {
        match directories.iter().find(|(s, _, _)| *s == slot) {
            Some((_, kind, bytes)) => candidates.push((*kind, bytes)),
            None => break,
        }
    }
    let (kind, bytes) = PRIORITY
        .iter()
        .find_map(|want| candidates.iter().find(|(kind, _)| kind == want))?;
    use sha2::Digest;
    let digest: Vec<u8> = match *kind {
        SHA1 => sha1::Sha1::digest(bytes).to_vec(),
        SHA384 => sha2::Sha384::digest(bytes).to_vec(),
        _ => sha2::Sha256::digest(bytes).to_vec(),
    };
    digest.get(..CDHASH_LEN)?.try_into().ok()
}
