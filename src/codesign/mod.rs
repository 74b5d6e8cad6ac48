//! An app's TeamIdentifier, read from its embedded code signature: the `teamid:` partition the
//! key's allowlist needs, without `codesign -dv` (a Linux admin box or CI can run it too).
//!
//! Only the few structures on the path to the CodeDirectory are read, by hand and bounds-checked:
//! Mach-O headers (thin 32/64-bit little-endian, universal `0xcafebabe`/`0xcafebabf`), the
//! `LC_CODE_SIGNATURE` load command, the signature SuperBlob and its CodeDirectory blobs. No
//! crate in the tree reads code signatures (`object` and `goblin` stop at the load command and
//! would add a sizeable dependency for 20 lines of offsets), so the parser is ours. It works on a
//! byte slice, never panics and never indexes unchecked: a truncated or hostile file is an
//! error naming the structure and offset, so the parser can be fuzzed as is.

mod chain;
mod partition;
#[cfg(test)]
pub(crate) mod testbuild;

pub use chain::{apple_issued, AppleIssued};
pub use partition::{own_partition, partition_of};

use crate::partition::Partition;
use std::path::{Path, PathBuf};

const MH_MAGIC: u32 = 0xfeed_face;
const MH_MAGIC_64: u32 = 0xfeed_facf;
/// The byte-swapped magics: a big-endian (PowerPC-era) thin file.
const MH_CIGAM: u32 = 0xcefa_edfe;
const MH_CIGAM_64: u32 = 0xcffa_edfe;
const FAT_MAGIC: u32 = 0xcafe_babe;
const FAT_MAGIC_64: u32 = 0xcafe_babf;
const LC_CODE_SIGNATURE: u32 = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE: u32 = 0xfade_0cc0;
const CSMAGIC_CODEDIRECTORY: u32 = 0xfade_0c02;
const CSSLOT_CODEDIRECTORY: u32 = 0;
const CSSLOT_SIGNATURESLOT: u32 = 0x10000;
/// Alternate CodeDirectories (other hash types) sit in slots 0x1000..0x1005.
const CSSLOT_ALTERNATE_FIRST: u32 = 0x1000;
const CSSLOT_ALTERNATE_LAST: u32 = 0x1004;
const CS_ADHOC: u32 = 0x2;
/// The first CodeDirectory version with a `teamOffset` field (at byte 48).
const CD_VERSION_TEAM: u32 = 0x20200;
const CD_TEAM_OFFSET_FIELD: usize = 48;
/// `CodeDirectory.hashType`, the byte after `hashSize` (`cs_blobs.h`).
const CD_HASH_TYPE_FIELD: usize = 37;
/// `fat_header.nfat_arch` above this is not a universal binary: a Java class file shares the
/// magic and has its class-file version (45 and up) there.
const MAX_FAT_SLICES: u32 = 30;
/// Executables are megabytes; refuse to load something absurd into memory.
const MAX_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub enum CodesignError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is a directory but not an app bundle (no Contents/Info.plist)")]
    NotABundle { path: PathBuf },
    #[error("{path}: {problem}")]
    BadInfoPlist { path: PathBuf, problem: String },
    #[error("{path} is {size} bytes, too large to be an app executable")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("not a Mach-O file (it starts with {0})")]
    NotMachO(String),
    #[error("a big-endian (PowerPC) Mach-O file; only little-endian slices are supported")]
    BigEndian,
    #[error(
        "truncated: {what} at offset {offset} needs {needed} bytes, the file has {available} there"
    )]
    Truncated {
        what: &'static str,
        offset: u64,
        needed: u64,
        available: u64,
    },
    #[error("corrupt {what} at offset {offset}: {problem}")]
    Corrupt {
        what: &'static str,
        offset: u64,
        problem: String,
    },
    #[error("the code is not signed (no LC_CODE_SIGNATURE)")]
    Unsigned,
    /// Ad-hoc code has no team; securityd knows it by its code directory hash, which changes
    /// with every build.
    #[error(
        "the code is ad-hoc signed ({identifier}): it has no TeamIdentifier to allow; securityd \
         knows it as {}, which changes with every build, so it cannot be allowed fleet-wide",
        cdhash.as_deref().map_or_else(|| "cdhash:(unknown hash type)".to_owned(), |h| format!("cdhash:{h}"))
    )]
    AdHoc {
        identifier: String,
        cdhash: Option<String>,
    },
    #[error(
        "the signature of {identifier} has no TeamIdentifier (Apple's own apps have none: \
         allow them with apple:)"
    )]
    NoTeamId { identifier: String },
    #[error("the signature's TeamIdentifier {0:?} is not 10 characters A-Z or 0-9")]
    BadTeamId(String),
}

/// What the primary CodeDirectory of one slice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `teamOffset`'s string; `None` before CodeDirectory version 0x20200 or when unset.
    pub team_id: Option<String>,
    /// The signing identifier (`identOffset`), e.g. `com.tinyspeck.slackmacgap`.
    pub identifier: String,
    /// `CS_ADHOC`: signed without a certificate, so no team vouches for it.
    pub ad_hoc: bool,
    /// The code directory hash securityd names this code by (40 lowercase hex; see [`cdhash`]);
    /// `None` when no CodeDirectory uses a hash type Security knows.
    pub cdhash: Option<String>,
    /// The certificates the CMS signature embeds (DER), the signer's first: what tells
    /// Apple-issued code from the rest ([`apple_issued`]). Empty for ad-hoc code.
    pub certificates: Vec<Vec<u8>>,
}

/// One architecture of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slice {
    /// `cputype` of the Mach-O header (0x0100000c arm64, 0x01000007 x86_64).
    pub cpu_type: u32,
    /// `None` when the slice has no `LC_CODE_SIGNATURE`.
    pub signature: Option<Signature>,
}

/// `cputype` of arm64 and x86_64 slices.
pub const CPU_ARM64: u32 = 0x0100_000c;
pub const CPU_X86_64: u32 = 0x0100_0007;

/// The `cputype` of the slice that runs in this process: the architecture it was built for.
pub const NATIVE_CPU: Option<u32> = if cfg!(target_arch = "aarch64") {
    Some(CPU_ARM64)
} else if cfg!(target_arch = "x86_64") {
    Some(CPU_X86_64)
} else {
    None
};

/// A slice's architecture as `lipo` names it.
pub fn cpu_name(cpu_type: u32) -> String {
    match cpu_type {
        CPU_ARM64 => "arm64".to_owned(),
        CPU_X86_64 => "x86_64".to_owned(),
        7 => "i386".to_owned(),
        other => format!("cputype {other:#x}"),
    }
}

/// Every slice of a thin or universal Mach-O file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MachO {
    pub slices: Vec<Slice>,
}

impl MachO {
    /// The first slice's signature, the one reported.
    pub fn signature(&self) -> Option<&Signature> {
        self.slices.first().and_then(|s| s.signature.as_ref())
    }

    /// The slice the kernel runs on a machine of `cpu_type` (the first when none matches, as
    /// for a thin file).
    pub fn slice_for(&self, cpu_type: Option<u32>) -> Option<&Slice> {
        self.slices
            .iter()
            .find(|s| Some(s.cpu_type) == cpu_type)
            .or_else(|| self.slices.first())
    }

    /// Whether the slices of a universal binary disagree (they should all carry one signer).
    pub fn slices_differ(&self) -> bool {
        self.slices
            .windows(2)
            .any(|pair| pair[0].signature != pair[1].signature)
    }
}

/// The answer of `devicetrust teamid`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamIdentity {
    /// `teamid:XXXXXXXXXX`, the form the allowlist takes.
    pub partition: Partition,
    pub team_id: String,
    pub identifier: String,
    pub slices: usize,
    pub slices_differ: bool,
}

/// The TeamIdentifier of the app bundle or Mach-O file at `path`.
pub fn team_identity(path: &Path) -> Result<TeamIdentity, CodesignError> {
    team_identity_of(&read_macho(path)?)
}

/// The parsed executable of the app bundle or Mach-O file at `path`.
pub fn read_macho(path: &Path) -> Result<MachO, CodesignError> {
    let executable = executable_path(path)?;
    parse(&read_limited(&executable)?)
}

/// Decides what a parsed file means for the allowlist: a real signature with a team, or why not.
pub fn team_identity_of(macho: &MachO) -> Result<TeamIdentity, CodesignError> {
    let signature = macho.signature().ok_or(CodesignError::Unsigned)?;
    if signature.ad_hoc {
        // Named by the slice that would run here: each slice has its own hash.
        let native = macho
            .slice_for(NATIVE_CPU)
            .and_then(|s| s.signature.as_ref())
            .unwrap_or(signature);
        return Err(CodesignError::AdHoc {
            identifier: signature.identifier.clone(),
            cdhash: native.cdhash.clone(),
        });
    }
    let team_id = signature
        .team_id
        .clone()
        .ok_or_else(|| CodesignError::NoTeamId {
            identifier: signature.identifier.clone(),
        })?;
    let partition =
        Partition::team_id(&team_id).map_err(|_| CodesignError::BadTeamId(team_id.clone()))?;
    Ok(TeamIdentity {
        partition,
        team_id,
        identifier: signature.identifier.clone(),
        slices: macho.slices.len(),
        slices_differ: macho.slices_differ(),
    })
}

/// The main executable of an `.app` bundle (`Contents/MacOS/<CFBundleExecutable>`), or `path`
/// itself when it is a file.
pub fn executable_path(path: &Path) -> Result<PathBuf, CodesignError> {
    let meta = std::fs::metadata(path).map_err(|source| CodesignError::Read {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(path.to_owned());
    }
    let info = path.join("Contents").join("Info.plist");
    if !info.is_file() {
        return Err(CodesignError::NotABundle {
            path: path.to_owned(),
        });
    }
    let bad = |problem: String| CodesignError::BadInfoPlist {
        path: info.clone(),
        problem,
    };
    let value = plist::Value::from_file(&info).map_err(|e| bad(e.to_string()))?;
    let exe = value
        .as_dictionary()
        .and_then(|d| d.get("CFBundleExecutable"))
        .and_then(plist::Value::as_string)
        .ok_or_else(|| bad("no CFBundleExecutable string".into()))?;
    // The name is a file in Contents/MacOS; anything else would let the plist point elsewhere.
    if exe.is_empty() || exe.contains('/') || exe == "." || exe == ".." {
        return Err(bad(format!(
            "CFBundleExecutable {exe:?} is not a file name"
        )));
    }
    Ok(path.join("Contents").join("MacOS").join(exe))
}

fn read_limited(path: &Path) -> Result<Vec<u8>, CodesignError> {
    let read_err = |source| CodesignError::Read {
        path: path.to_owned(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_err)?.len();
    if size > MAX_FILE_BYTES {
        return Err(CodesignError::TooLarge {
            path: path.to_owned(),
            size,
        });
    }
    std::fs::read(path).map_err(read_err)
}

/// Parses a thin or universal Mach-O file and the signature of each slice.
pub fn parse(data: &[u8]) -> Result<MachO, CodesignError> {
    let file = Region::new(data, 0);
    let magic_be = file.u32_be(0, "magic")?;
    if magic_be == FAT_MAGIC || magic_be == FAT_MAGIC_64 {
        return parse_fat(file, magic_be == FAT_MAGIC_64);
    }
    Ok(MachO {
        slices: vec![parse_thin(file)?],
    })
}

fn parse_fat(file: Region<'_>, wide: bool) -> Result<MachO, CodesignError> {
    let count = file.u32_be(4, "fat_header.nfat_arch")?;
    if count == 0 || count > MAX_FAT_SLICES {
        return Err(CodesignError::NotMachO(format!(
            "0xcafebabe but {count} architectures: a Java class file or not a universal binary"
        )));
    }
    let entry_size = if wide { 32 } else { 20 };
    let mut slices = Vec::with_capacity(count as usize);
    for i in 0..count as usize {
        let at = 8 + i * entry_size;
        let (offset, size) = if wide {
            (
                file.u64_be(at + 8, "fat_arch_64.offset")?,
                file.u64_be(at + 16, "fat_arch_64.size")?,
            )
        } else {
            (
                u64::from(file.u32_be(at + 8, "fat_arch.offset")?),
                u64::from(file.u32_be(at + 12, "fat_arch.size")?),
            )
        };
        let slice = file.sub(offset, size, "universal binary slice")?;
        slices.push(parse_thin(slice)?);
    }
    Ok(MachO { slices })
}

fn parse_thin(slice: Region<'_>) -> Result<Slice, CodesignError> {
    let magic = slice.u32_le(0, "mach_header.magic")?;
    let header_size = match magic {
        MH_MAGIC => 28,
        MH_MAGIC_64 => 32,
        MH_CIGAM | MH_CIGAM_64 => return Err(CodesignError::BigEndian),
        _ => {
            let head = slice.bytes.get(..4).unwrap_or(slice.bytes);
            let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
            return Err(CodesignError::NotMachO(format!("0x{hex}")));
        }
    };
    let cpu_type = slice.u32_le(4, "mach_header.cputype")?;
    let ncmds = slice.u32_le(16, "mach_header.ncmds")?;
    let sizeofcmds = slice.u32_le(20, "mach_header.sizeofcmds")?;
    let commands = slice.sub(header_size, u64::from(sizeofcmds), "load commands")?;

    let mut at = 0usize;
    let mut code_signature = None;
    for _ in 0..ncmds {
        let cmd = commands.u32_le(at, "load_command.cmd")?;
        let cmdsize = commands.u32_le(at + 4, "load_command.cmdsize")? as usize;
        if cmdsize < 8 {
            return Err(commands.corrupt(at, "load command", format!("cmdsize {cmdsize} < 8")));
        }
        let command = commands.sub(at as u64, cmdsize as u64, "load command")?;
        if cmd == LC_CODE_SIGNATURE {
            let dataoff = command.u32_le(8, "LC_CODE_SIGNATURE.dataoff")?;
            let datasize = command.u32_le(12, "LC_CODE_SIGNATURE.datasize")?;
            code_signature = Some((dataoff, datasize));
            break;
        }
        at += cmdsize;
    }
    let signature = match code_signature {
        None => None,
        Some((dataoff, datasize)) => Some(parse_signature(slice.sub(
            u64::from(dataoff),
            u64::from(datasize),
            "code signature",
        )?)?),
    };
    Ok(Slice {
        cpu_type,
        signature,
    })
}

fn parse_signature(data: Region<'_>) -> Result<Signature, CodesignError> {
    let magic = data.u32_be(0, "SuperBlob.magic")?;
    if magic != CSMAGIC_EMBEDDED_SIGNATURE {
        return Err(data.corrupt(
            0,
            "code signature",
            format!("SuperBlob magic {magic:#010x}, expected {CSMAGIC_EMBEDDED_SIGNATURE:#010x}"),
        ));
    }
    let length = data.u32_be(4, "SuperBlob.length")?;
    let blob = data.sub(0, u64::from(length), "SuperBlob")?;
    let count = blob.u32_be(8, "SuperBlob.count")?;

    let mut directories = Vec::new();
    let mut certificates = Vec::new();
    for i in 0..count as usize {
        let at = 12 + i * 8;
        let slot = blob.u32_be(at, "BlobIndex.type")?;
        let is_alternate = (CSSLOT_ALTERNATE_FIRST..=CSSLOT_ALTERNATE_LAST).contains(&slot);
        if slot == CSSLOT_SIGNATURESLOT {
            let offset = blob.u32_be(at + 4, "BlobIndex.offset")?;
            certificates = chain::parse_cms_wrapper(blob.rest(u64::from(offset), "CMS blob")?)?;
            continue;
        }
        if slot != CSSLOT_CODEDIRECTORY && !is_alternate {
            continue;
        }
        let offset = blob.u32_be(at + 4, "BlobIndex.offset")?;
        let directory = parse_code_directory(blob.rest(u64::from(offset), "CodeDirectory")?)?;
        directories.push((slot, directory));
    }
    let primary = directories
        .iter()
        .find(|(slot, _)| *slot == CSSLOT_CODEDIRECTORY)
        .map(|(_, d)| d)
        .ok_or_else(|| {
            data.corrupt(
                0,
                "code signature",
                "no CodeDirectory in slot 0".to_string(),
            )
        })?;
    // Every CodeDirectory of one signature names the same team; take it from an alternate
    // only if the primary is too old to carry it.
    let team_id = primary.team_id.clone().or_else(|| {
        directories
            .iter()
            .filter(|(slot, _)| *slot != CSSLOT_CODEDIRECTORY)
            .find_map(|(_, d)| d.team_id.clone())
    });
    Ok(Signature {
        team_id,
        identifier: primary.identifier.clone(),
        ad_hoc: primary.ad_hoc,
        cdhash: partition::cdhash(
            directories
                .iter()
                .map(|(slot, d)| (*slot, d.hash_type, d.bytes)),
        )
        .map(|h| crate::fsutil::hex(&h)),
        certificates,
    })
}

/// One CodeDirectory blob: what it says, its hash type and its bytes.
struct Directory<'a> {
    team_id: Option<String>,
    identifier: String,
    ad_hoc: bool,
    hash_type: u8,
    bytes: &'a [u8],
}

fn parse_code_directory(data: Region<'_>) -> Result<Directory<'_>, CodesignError> {
    let magic = data.u32_be(0, "CodeDirectory.magic")?;
    if magic != CSMAGIC_CODEDIRECTORY {
        return Err(data.corrupt(
            0,
            "CodeDirectory",
            format!("magic {magic:#010x}, expected {CSMAGIC_CODEDIRECTORY:#010x}"),
        ));
    }
    let length = data.u32_be(4, "CodeDirectory.length")?;
    let cd = data.sub(0, u64::from(length), "CodeDirectory")?;
    let version = cd.u32_be(8, "CodeDirectory.version")?;
    let flags = cd.u32_be(12, "CodeDirectory.flags")?;
    let ident_offset = cd.u32_be(20, "CodeDirectory.identOffset")?;
    let [hash_type] = cd.array::<1>(CD_HASH_TYPE_FIELD, "CodeDirectory.hashType")?;
    let identifier = cd.c_string(u64::from(ident_offset), "CodeDirectory identifier")?;
    let team_id = if version >= CD_VERSION_TEAM {
        match cd.u32_be(CD_TEAM_OFFSET_FIELD, "CodeDirectory.teamOffset")? {
            0 => None,
            offset => Some(cd.c_string(u64::from(offset), "CodeDirectory team ID")?),
        }
    } else {
        None
    };
    Ok(Directory {
        team_id,
        identifier,
        ad_hoc: flags & CS_ADHOC != 0,
        hash_type,
        bytes: cd.bytes,
    })
}

/// A window on the file, remembering where it starts so errors give file offsets.
#[derive(Clone, Copy)]
struct Region<'a> {
    bytes: &'a [u8],
    base: u64,
}

impl<'a> Region<'a> {
    fn new(bytes: &'a [u8], base: u64) -> Self {
        Region { bytes, base }
    }

    fn truncated(&self, what: &'static str, offset: u64, needed: u64) -> CodesignError {
        CodesignError::Truncated {
            what,
            offset: self.base.saturating_add(offset),
            needed,
            available: (self.bytes.len() as u64).saturating_sub(offset),
        }
    }

    fn corrupt(&self, offset: usize, what: &'static str, problem: String) -> CodesignError {
        CodesignError::Corrupt {
            what,
            offset: self.base.saturating_add(offset as u64),
            problem,
        }
    }

    /// `len` bytes at `offset`, or the precise reason they are not there.
    fn sub(&self, offset: u64, len: u64, what: &'static str) -> Result<Region<'a>, CodesignError> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| self.truncated(what, offset, len))?;
        let range = usize::try_from(offset).ok()..usize::try_from(end).ok();
        match range {
            std::ops::Range {
                start: Some(start),
                end: Some(end),
            } => self
                .bytes
                .get(start..end)
                .map(|bytes| Region::new(bytes, self.base.saturating_add(offset)))
                .ok_or_else(|| self.truncated(what, offset, len)),
            _ => Err(self.truncated(what, offset, len)),
        }
    }

    /// Everything from `offset` on (a blob whose own length field bounds it further).
    fn rest(&self, offset: u64, what: &'static str) -> Result<Region<'a>, CodesignError> {
        let len = (self.bytes.len() as u64)
            .checked_sub(offset)
            .ok_or_else(|| self.truncated(what, offset, 8))?;
        self.sub(offset, len, what)
    }

    fn array<const N: usize>(
        &self,
        offset: usize,
        what: &'static str,
    ) -> Result<[u8; N], CodesignError> {
        let region = self.sub(offset as u64, N as u64, what)?;
        region
            .bytes
            .try_into()
            .map_err(|_| self.truncated(what, offset as u64, N as u64))
    }

    fn u32_le(&self, offset: usize, what: &'static str) -> Result<u32, CodesignError> {
        self.array(offset, what).map(u32::from_le_bytes)
    }

    fn u32_be(&self, offset: usize, what: &'static str) -> Result<u32, CodesignError> {
        self.array(offset, what).map(u32::from_be_bytes)
    }

    fn u64_be(&self, offset: usize, what: &'static str) -> Result<u64, CodesignError> {
        self.array(offset, what).map(u64::from_be_bytes)
    }

    /// A NUL-terminated UTF-8 string starting at `offset`, ending inside this region.
    fn c_string(&self, offset: u64, what: &'static str) -> Result<String, CodesignError> {
        let tail = self.rest(offset, what)?;
        let nul = tail.bytes.iter().position(|&b| b == 0).ok_or_else(|| {
            self.corrupt(
                offset as usize,
                what,
                "no terminating NUL inside the blob".into(),
            )
        })?;
        let text = tail.bytes.get(..nul).unwrap_or_default();
        std::str::from_utf8(text)
            .map(str::to_owned)
            .map_err(|e| self.corrupt(offset as usize, what, format!("not UTF-8 ({e})")))
    }
}

#[cfg(test)]
mod tests;
