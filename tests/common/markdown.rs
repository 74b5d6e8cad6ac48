//! The fenced code blocks of the project's Markdown docs, for the tests that run or parse them.

use std::path::{Path, PathBuf};

/// One fenced block.
#[derive(Debug, Clone)]
pub struct Block {
    /// `README.md:42`: the file (relative to the crate) and the line of the opening fence.
    pub place: String,
    /// The info string: `console`, `toml`, `sh`, ...
    pub lang: String,
    /// The word of a `<!-- docs-test: WORD -->` comment on the line before the fence, if any.
    pub scene: Option<String>,
    pub text: String,
}

/// The crate's root.
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `docs/*.md`, relative to the crate, sorted.
pub fn doc_files() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(crate_dir().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| PathBuf::from("docs").join(p.file_name().unwrap()))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

/// The fenced blocks of `file` (relative to the crate). An unclosed fence fails the test.
pub fn blocks(file: &Path) -> Vec<Block> {
    let text = std::fs::read_to_string(crate_dir().join(file)).unwrap();
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut previous = "";
    for (i, line) in text.lines().enumerate() {
        let fence = line.trim_start().starts_with("```");
        match (&mut open, fence) {
            (Some(_), true) => blocks.push(open.take().unwrap()),
            (Some(block), false) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, true) => {
                let scene = previous
                    .trim()
                    .strip_prefix("<!-- docs-test:")
                    .and_then(|rest| rest.strip_suffix("-->"))
                    .map(|word| word.trim().to_owned());
                open = Some(Block {
                    place: format!("{}:{}", file.display(), i + 1),
                    lang: line.trim_start().trim_start_matches('`').trim().to_owned(),
                    scene,
                    text: String::new(),
                });
            }
            (None, false) => {}
        }
        previous = line;
    }
    assert!(
        open.is_none(),
        "{}: a fence is never closed",
        file.display()
    );
    blocks
}
