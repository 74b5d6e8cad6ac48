//! Every child process the agent starts goes through this module, which logs its whole
//! command line at DEBUG (`-v`) first. An admin sees exactly what ran; and since no secret may
//! ever be on a command line (secrets go through stdin or 0600 files), the tests read these
//! lines to prove it: a secret put in an argument would show up in them.

use std::process::{Child, Command, Output};

/// `command.spawn()`, logged.
pub fn spawn(command: &mut Command) -> std::io::Result<Child> {
    tracing::debug!("starting {}", shown(command));
    command.spawn()
}

/// `command.output()`, logged.
pub fn output(command: &mut Command) -> std::io::Result<Output> {
    tracing::debug!("starting {}", shown(command));
    command.output()
}

/// The command line as a shell would take it back: words with spaces or quotes single-quoted.
fn shown(command: &Command) -> String {
    std::iter::once(command.get_program())
        .chain(command.get_args())
        .map(|word| {
            let word = word.to_string_lossy();
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
            if plain {
                word.into_owned()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_every_word_quoted_where_a_shell_needs_it() {
        let mut command = Command::new("/usr/bin/certutil");
        command.args(["-L", "-d", "sql:/home/a b/.pki/nssdb", "-n", "it's", ""]);
        assert_eq!(
            shown(&command),
            r"/usr/bin/certutil -L -d 'sql:/home/a b/.pki/nssdb' -n 'it'\''s' ''"
        );
    }
}
