//! Small helpers shared across layers: an I/O error in plain words, and hex encoding.
//!
//! File access in a user's home, and bounded reads of admin-named files, are `securefs`'s.

/// An I/O error as the end of a one-line message: the common kinds in plain words.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
