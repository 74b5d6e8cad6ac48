//! No source file has over 600 lines of code: a module that grows past that is split into
//! smaller ones with domain names. Lines are counted up to the `#[cfg(test)]` line of the
//! file's `mod tests` (inline or in a file of its own); a file named `tests.rs` is all tests.

use std::path::{Path, PathBuf};

const LIMIT: usize = 600;

/// Files over the limit, each held to the size it had: it may shrink, never grow. An entry
/// whose file is back under the limit must go. None today.
const OVER: [(&str, usize); 0] = [];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The lines before the file's `#[cfg(test)] mod tests`, or all of them.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    lines
        .windows(2)
        .position(|w| {
            let item = w[1]
                .trim_start_matches("pub(crate) ")
                .trim_start_matches("pub ");
            w[0].trim() == "#[cfg(test)]"
                && (item.starts_with("mod tests {") || item.starts_with("mod tests;"))
        })
        .unwrap_or(lines.len())
}

#[test]
fn no_source_file_has_over_600_lines_of_code() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&dir.join("src"), &mut files);
    assert!(files.len() > 50, "{files:?}");
    let mut failures = Vec::new();
    for file in files {
        let name = file
            .strip_prefix(dir)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let lines = code_lines(&std::fs::read_to_string(&file).unwrap());
        let allowed = OVER
            .iter()
            .find(|(over, _)| *over == name)
            .map_or(LIMIT, |(_, held)| *held);
        if lines > allowed {
            failures.push(format!("{name}: {lines} lines of code (at most {allowed})"));
        } else if allowed > LIMIT && lines <= LIMIT {
            failures.push(format!("{name} is within {LIMIT} lines: take it off OVER"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn code_ends_where_the_tests_begin() {
    let file = "//! doc\nfn a() {}\n\n#[cfg(test)]\nmod tests {\n    fn t() {}\n}\n";
    assert_eq!(code_lines(file), 3);
    assert_eq!(
        code_lines("fn a() {}\n#[cfg(test)]\npub(crate) mod tests;\n"),
        1
    );
    // Another module under cfg(test) is code (a test seam), and a file without tests is all code.
    assert_eq!(code_lines("#[cfg(test)]\nmod seam;\nfn a() {}\n"), 3);
    assert_eq!(code_lines("fn a() {}\nfn b() {}\n"), 2);
}
