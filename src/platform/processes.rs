//! Which Chromium-family browsers are running, so a renewal can warn that they may keep
//! presenting the old certificate (protocol section 10) until quit and relaunched.
//!
//! Linux reads `/proc/<pid>/comm`; macOS asks libproc for every process's name.

/// Process names of the browsers that cache the client certificate, as the OS reports them.
const BROWSERS: &[(&str, &str)] = &[
    // (process name, what to call it in the warning)
    ("Google Chrome", "Google Chrome"),
    ("Microsoft Edge", "Microsoft Edge"),
    ("Chromium", "Chromium"),
    ("chrome", "Chrome"),
    ("chromium", "Chromium"),
    ("chromium-browse", "Chromium"),
    ("msedge", "Microsoft Edge"),
];

/// The running browsers among `process_names`, each named once, in the table's order.
pub fn browsers_among<'a>(process_names: impl IntoIterator<Item = &'a str>) -> Vec<&'static str> {
    let names: std::collections::HashSet<&str> = process_names.into_iter().collect();
    let mut found: Vec<&'static str> = Vec::new();
    for (process, display) in BROWSERS {
        if names.contains(process) && !found.contains(display) {
            found.push(display);
        }
    }
    found
}

/// The browsers running now (any user): best effort, empty when processes cannot be listed.
pub fn running_browsers() -> Vec<&'static str> {
    let names = process_names();
    browsers_among(names.iter().map(String::as_str))
}

#[cfg(target_os = "linux")]
fn process_names() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|comm| comm.trim_end().to_owned())
        .collect()
}

#[cfg(target_os = "macos")]
fn process_names() -> Vec<String> {
    // proc_listallpids with a null buffer returns how many pids there are; leave room for
    // processes started between the two calls.
    // SAFETY: a null buffer of size 0 is the documented way to ask for the count.
    let count = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if count <= 0 {
        return Vec::new();
    }
    let mut pids = vec![0 as libc::c_int; count as usize + 64];
    let bytes = (pids.len() * std::mem::size_of::<libc::c_int>()) as libc::c_int;
    // SAFETY: the buffer holds `pids.len()` c_ints and we pass its size in bytes.
    let filled = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    if filled <= 0 {
        return Vec::new();
    }
    pids.truncate(filled as usize);
    let mut names = Vec::with_capacity(pids.len());
    for pid in pids {
        let mut buf = [0u8; 256];
        // SAFETY: the buffer is valid for its length; proc_name returns the bytes written.
        let len = unsafe { libc::proc_name(pid, buf.as_mut_ptr().cast(), buf.len() as u32) };
        if len > 0 {
            names.push(String::from_utf8_lossy(&buf[..len as usize]).into_owned());
        }
    }
    names
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn process_names() -> Vec<String> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_are_recognised_by_process_name_once_each() {
        assert_eq!(
            browsers_among(["launchd", "Google Chrome", "Google Chrome", "Slack"]),
            ["Google Chrome"]
        );
        assert_eq!(
            browsers_among(["chrome", "msedge", "bash"]),
            ["Chrome", "Microsoft Edge"]
        );
        assert!(browsers_among(["Safari", "chromedriver"]).is_empty());
    }
}
