//! The docs are tested. The command examples of the admin-facing docs run against the simulator
//! in a sandbox root and must print what the docs show; every TOML example parses with the
//! agent's own parser, every key uncommented; and what the docs say about the agent's interface
//! (its commands, the EA's strings, the files they name) holds.
//!
//! A `console` block is a session: `$ devicetrust ...` runs the built binary, the lines below it
//! are its output (stdout and stderr as a terminal shows them), and `$ echo $?` shows the exit
//! code of the command before it; a command that exits non-zero must be followed by one. Output
//! is compared with snapbox: `[..]` stands for the rest of a line that varies (serials, dates),
//! a line `...` for any number of lines. The sandbox stands in for the machine: it is the
//! `--root` of every run (so an absolute path in a command is a path inside it), the org
//! `https://acme.okta.com` is the simulator, and the console user is `alice`. A comment
//! `<!-- docs-test: SCENE -->` on the line before a block says what the machine holds first
//! (see [`Sandbox::new`]); without one it holds nothing but the org token file.

mod common;

use common::markdown::{self, Block};
use common::Env;
use snapbox::IntoData;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The docs whose console blocks run here. docs/macos-verification.md is a checklist of macOS's
/// own tools (`security`, `launchctl`), for a person at a Mac.
const RUN: [&str; 3] = [
    "README.md",
    "docs/admin-guide.md",
    "docs/troubleshooting.md",
];

/// The org the docs enroll with; the simulator answers for it.
const ORG: &str = "https://acme.okta.com";
const USER: &str = "alice";
/// Where the docs keep the org secret (root-owned, mode 0600, as the README says).
const TOKEN_FILE: &str = "/Library/Application Support/devicetrust/org-token";

/// The machine a block runs on.
struct Sandbox {
    env: Env,
    /// The console user; `None`: the login window.
    user: Option<&'static str>,
}

impl Sandbox {
    /// `fresh`: the org token in [`TOKEN_FILE`], no configuration, nothing enrolled.
    /// `enrolled`: `fresh`, then `devicetrust enroll` with that org and token.
    /// `config-error`: a configuration file at the platform's default path with a mistyped key.
    /// `no-user`: nothing configured and nobody at the console (needs root: on Linux the
    /// portable console user is the invoking user, and only root without SUDO_USER has none).
    /// `None` when the scene cannot be had here (outside CI only).
    fn new(scene: &str) -> Option<Sandbox> {
        let env = Env::new(365);
        std::fs::remove_file(env.etc().join("config.toml")).unwrap();
        let token = inside(env.root.path(), TOKEN_FILE);
        std::fs::create_dir_all(token.parent().unwrap()).unwrap();
        std::fs::copy(env.token_file(), &token).unwrap();
        let mut sandbox = Sandbox {
            env,
            user: Some(USER),
        };
        match scene {
            "fresh" => {}
            "enrolled" => {
                let (code, out) = sandbox.devicetrust(
                    &["enroll", "--org-url", ORG, "--org-token-file", TOKEN_FILE].map(String::from),
                    None,
                );
                assert_eq!(code, 0, "{out}");
            }
            "config-error" => {
                let file = inside(
                    sandbox.env.root.path(),
                    &devicetrust::paths::system_config_file()
                        .display()
                        .to_string(),
                );
                std::fs::create_dir_all(file.parent().unwrap()).unwrap();
                std::fs::write(
                    &file,
                    format!("org_url = \"{ORG}\"\nrenew_before_day = 21\n"),
                )
                .unwrap();
            }
            "no-user" => {
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } != 0 {
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "the no-user examples must run under CI (as root)"
                    );
                    eprintln!("skipped: the no-user examples need root");
                    return None;
                }
                sandbox.user = None;
            }
            other => panic!("no scene {other:?}"),
        }
        Some(sandbox)
    }

    /// Runs the binary with `args` (the docs' org and paths taken into the sandbox) and `stdin`
    /// from a file; returns the exit code and what it printed, stdout and stderr interleaved
    /// as a terminal shows them, in the docs' terms.
    fn devicetrust(&self, args: &[String], stdin: Option<&str>) -> (i32, String) {
        let root = self.env.root.path();
        let org = self.env.sim.org_url();
        let args: Vec<String> = args
            .iter()
            .map(|a| match a.split_once("=/") {
                Some((flag, path)) if flag.starts_with("--") => {
                    format!("{flag}={}", inside(root, &format!("/{path}")).display())
                }
                _ if a.starts_with('/') => inside(root, a).display().to_string(),
                _ => a.replace(ORG, &org),
            })
            .collect();
        let output = tempfile::tempfile().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_devicetrust"));
        cmd.args(&args)
            .stdout(output.try_clone().unwrap())
            .stderr(output.try_clone().unwrap())
            .stdin(match stdin {
                Some(file) => Stdio::from(std::fs::File::open(inside(root, file)).unwrap()),
                None => Stdio::null(),
            });
        for (key, _) in std::env::vars() {
            if key.starts_with("DEVICETRUST_") || key.to_ascii_lowercase().ends_with("_proxy") {
                cmd.env_remove(key);
            }
        }
        cmd.env_remove("SUDO_USER")
            .env("DEVICETRUST_ROOT", root)
            .env("DEVICETRUST_CA_FILE", self.env.etc().join("tls-ca.pem"))
            .env("DEVICETRUST_DEVICE_UUID", common::DEVICE_UUID)
            .env("DEVICETRUST_DEVICE_NAME", "Alice's MacBook");
        if let Some(user) = self.user {
            cmd.env("DEVICETRUST_USER", user);
        }
        let code = cmd.status().unwrap().code().unwrap_or(-1);
        let mut output = output;
        use std::io::{Read, Seek};
        output.rewind().unwrap();
        let mut text = String::new();
        output.read_to_string(&mut text).unwrap();
        let host = org.trim_start_matches("https://");
        let text = text
            .replace(&root.display().to_string(), "")
            .replace(&org, ORG)
            .replace(host, ORG.trim_start_matches("https://"));
        (code, text)
    }
}

/// `path` (absolute, as the docs write it) inside the sandbox `root`.
fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// A command line split as a shell splits it: words, "double" and 'single' quoted words.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.get_or_insert_with(String::new).push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                word.get_or_insert_with(String::new);
            }
            (None, c) if c.is_whitespace() => words.extend(word.take()),
            (None, c) => word.get_or_insert_with(String::new).push(c),
        }
    }
    assert!(quote.is_none(), "unbalanced quotes in {line:?}");
    words.extend(word);
    words
}

/// Runs one console block; returns what did not match.
fn run_block(block: &Block) -> Vec<String> {
    let Some(sandbox) = Sandbox::new(block.scene.as_deref().unwrap_or("fresh")) else {
        return Vec::new();
    };
    let mut steps: Vec<(String, String)> = Vec::new();
    for line in block.text.lines() {
        match (line.strip_prefix("$ "), steps.last_mut()) {
            (Some(command), _) => steps.push((command.to_owned(), String::new())),
            (None, Some((_, expected))) => {
                expected.push_str(line);
                expected.push('\n');
            }
            (None, None) => return vec![format!("{}: output before any command", block.place)],
        }
    }
    let mut failures = Vec::new();
    // The exit code of the last command, until `echo $?` shows it.
    let mut unshown: Option<(i32, String)> = None;
    let unshown_failure = |unshown: &Option<(i32, String)>| match unshown {
        Some((code, command)) if *code != 0 => Some(format!(
            "{}: `{command}` exits {code}, and the block does not show it (`$ echo $?`)",
            block.place
        )),
        _ => None,
    };
    for (command, expected) in steps {
        let actual = if command == "echo $?" {
            match unshown.take() {
                Some((code, _)) => format!("{code}\n"),
                None => {
                    failures.push(format!("{}: `echo $?` with no command", block.place));
                    continue;
                }
            }
        } else {
            failures.extend(unshown_failure(&unshown));
            let mut args = words(&command);
            let stdin = match args.iter().position(|a| a == "<") {
                Some(at) => {
                    let file = args.get(at + 1).cloned();
                    args.truncate(at);
                    file
                }
                None => None,
            };
            if args.first().map(String::as_str) != Some("devicetrust") {
                failures.push(format!("{}: cannot run `{command}`", block.place));
                continue;
            }
            let (code, output) = sandbox.devicetrust(&args[1..], stdin.as_deref());
            unshown = Some((code, command.clone()));
            output
        };
        let name = format!("{}: $ {command}", block.place);
        if let Err(e) =
            snapbox::Assert::new().try_eq(Some(&name), actual.into_data(), expected.into_data())
        {
            failures.push(e.to_string());
        }
    }
    failures.extend(unshown_failure(&unshown));
    failures
}

#[test]
fn the_command_examples_print_what_the_docs_show() {
    let mut failures = Vec::new();
    let mut ran = 0;
    for file in RUN {
        for block in markdown::blocks(Path::new(file)) {
            if block.lang == "console" {
                failures.extend(run_block(&block));
                ran += 1;
            } else {
                // An example of the agent's commands that is not a console block runs nowhere.
                let untested = block.text.lines().any(|l| {
                    l.trim_start()
                        .trim_start_matches("$ ")
                        .starts_with("devicetrust ")
                });
                if untested {
                    failures.push(format!(
                        "{}: a `{}` block runs the agent: make it a console block with its output",
                        block.place, block.lang
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    assert!(ran >= 5, "only {ran} console blocks found");
}

/// `text` with every commented-out `key = value` line and `[table]` header uncommented.
fn uncomment(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let body = line.trim_start().strip_prefix('#').map(str::trim_start);
        let setting = body.filter(|b| {
            let key: String = b
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.'))
                .collect();
            (!key.is_empty() && b[key.len()..].trim_start().starts_with('='))
                || (b.starts_with('[') && b.contains(']'))
        });
        out.push_str(setting.unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The dotted keys of a TOML table, tables included.
fn dotted_keys(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
    for (key, value) in table {
        let dotted = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        if let toml::Value::Table(sub) = value {
            dotted_keys(&dotted, sub, out);
        }
        out.insert(dotted);
    }
}

#[test]
fn every_toml_example_parses_with_every_key_uncommented_and_the_readme_shows_every_key() {
    let mut failures = Vec::new();
    let mut in_readme = BTreeSet::new();
    let mut examples = 0;
    for file in markdown::doc_files() {
        for block in markdown::blocks(&file)
            .into_iter()
            .filter(|b| b.lang == "toml")
        {
            examples += 1;
            let text = uncomment(&block.text);
            if let Err(e) = devicetrust::config::Layer::parse(&text, Path::new(&block.place)) {
                failures.push(format!("{e}\n{text}"));
                continue;
            }
            if file == Path::new("README.md") {
                dotted_keys("", &toml::from_str(&text).unwrap(), &mut in_readme);
            }
        }
    }
    assert!(examples >= 2, "only {examples} TOML examples found");
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
    let keys: BTreeSet<String> = devicetrust::config::keys::all().into_keys().collect();
    let missing: Vec<_> = keys.difference(&in_readme).collect();
    assert!(
        missing.is_empty(),
        "keys no README example shows: {missing:?}"
    );
}

#[test]
fn uncommenting_takes_settings_and_tables_and_leaves_prose() {
    assert_eq!(
        uncomment("# a = 1   # note\n  # [scep]\n# codesign -dv App.app\nb = 2\n"),
        "a = 1   # note\n[scep]\n# codesign -dv App.app\nb = 2\n"
    );
}

#[test]
fn the_readme_command_table_lists_every_command() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(markdown::crate_dir().join("README.md")).unwrap();
    let commands: Vec<String> = devicetrust::cli::Cli::command()
        .get_subcommands()
        .map(|c| c.get_name().to_owned())
        .collect();
    assert!(commands.contains(&"version".to_owned()), "{commands:?}");
    for name in commands {
        assert!(
            readme.contains(&format!("| `devicetrust {name}")),
            "the README's command table lacks `devicetrust {name}`"
        );
    }
}

/// The `<result>` strings the shipped EA script prints itself (not the agent's statuses).
fn script_results() -> Vec<String> {
    let script =
        std::fs::read_to_string(markdown::crate_dir().join("pkg/jamf/ea-status.sh")).unwrap();
    let found: Vec<String> = script
        .split("<result>")
        .skip(1)
        .filter_map(|rest| rest.split_once("</result>"))
        .map(|(result, _)| result.to_owned())
        // The pattern that finds the agent's own line is not a string it prints.
        .filter(|r| r.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '))
        .collect();
    assert_eq!(found, ["Not Installed", "Agent Error"]);
    found
}

#[test]
fn the_ea_script_strings_are_documented_and_kept_out_of_the_fix_it_group() {
    let dir = markdown::crate_dir();
    let guide = std::fs::read_to_string(dir.join("docs/admin-guide.md")).unwrap();
    let troubleshooting = std::fs::read_to_string(dir.join("docs/troubleshooting.md")).unwrap();
    let fix_it = troubleshooting
        .split("**Device Trust: Needs Fix-It**")
        .nth(1)
        .and_then(|rest| rest.split("\n   * ").next())
        .expect("troubleshooting.md defines the Needs Fix-It group");
    for result in script_results() {
        assert!(
            guide.contains(&format!("`{result}`")),
            "the admin guide never says ea-status.sh can print {result}"
        );
        assert!(
            fix_it.contains(&format!("`is not {result}`")),
            "the Needs Fix-It group would catch {result}: {fix_it}"
        );
    }
    for status in ["No User Session", "Not Configured"] {
        assert!(fix_it.contains(&format!("`is not {status}`")), "{fix_it}");
    }
}

#[test]
fn every_markdown_file_the_docs_name_is_in_the_repository() {
    let dir = markdown::crate_dir();
    let mut missing = Vec::new();
    for file in markdown::doc_files() {
        let text = std::fs::read_to_string(dir.join(&file)).unwrap();
        let here = dir.join(file.parent().unwrap());
        let names = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '/' | '-' | '_')))
            .filter(|w| w.ends_with(".md") && w.len() > 3);
        for name in names {
            if !here.join(name).exists() && !dir.join(name).exists() {
                missing.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(missing.is_empty(), "{missing:?}");
}

#[test]
fn every_health_status_has_its_troubleshooting_row_and_its_smart_group_place() {
    use devicetrust::health::HealthStatus;
    let dir = markdown::crate_dir();
    let troubleshooting = std::fs::read_to_string(dir.join("docs/troubleshooting.md")).unwrap();
    let spec = std::fs::read_to_string(dir.join("../shared/spec/cli.md")).ok();
    for status in HealthStatus::ALL {
        let row = format!("| `{}` |", status.as_str());
        assert!(
            troubleshooting.contains(&row),
            "troubleshooting.md has no row for {status}"
        );
        if let Some(spec) = &spec {
            assert!(
                spec.contains(&format!("`{}`", status.as_str())),
                "cli.md lacks {status}"
            );
        }
    }
    // The two statuses `repair` cannot fix have groups of their own, outside the Fix-It group.
    let fix_it = troubleshooting
        .split("**Device Trust: Needs Fix-It**")
        .nth(1)
        .and_then(|rest| rest.split("\n   * ").next())
        .unwrap();
    for status in ["Certificate From Another CA", "Clock Wrong"] {
        assert!(fix_it.contains(&format!("`is not {status}`")), "{fix_it}");
        assert!(
            troubleshooting.contains(&format!("`is {status}`")),
            "{status}"
        );
    }
}

#[test]
fn the_readme_says_what_every_command_prints() {
    use clap::CommandFactory;
    let readme = std::fs::read_to_string(markdown::crate_dir().join("README.md")).unwrap();
    let (_, after) = readme
        .split_once("What each command prints on stdout")
        .expect("the README says what each command prints");
    // The list below that sentence, to the blank line after it.
    let list: Vec<&str> = after
        .lines()
        .skip(1)
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .collect();
    let list = list.join("\n");
    assert!(list.starts_with("- "), "{list}");
    for command in devicetrust::cli::Cli::command().get_subcommands() {
        let name = command.get_name();
        assert!(
            list.contains(&format!("`{name}`")) || list.contains(&format!("`{name} ")),
            "the README does not say what `devicetrust {name}` prints"
        );
        if command
            .get_arguments()
            .any(|a| a.get_long() == Some("json"))
        {
            assert!(
                list.contains(&format!("`{name} --json`")),
                "the README does not say what `devicetrust {name} --json` prints"
            );
        }
    }
}
