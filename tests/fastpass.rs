//! Apple's "Allow access to all apps" in the configuration: refused with one `ERROR:` line
//! naming the key and exit 2, never parsed and then ignored.

mod common;

use common::*;

#[test]
fn allow_all_apps_options_are_refused_with_exit_2() {
    let env = Env::new(365);
    for (extra, key) in [
        (
            "[allowlist]\nallow_all_apps = true\n",
            "allowlist.allow_all_apps",
        ),
        (
            "[scep]\nurl = \"http://127.0.0.1:9/scep\"\nallow_all_apps_access = true\n",
            "scep.allow_all_apps_access",
        ),
    ] {
        env.write_config(extra);
        for command in [&["status"][..], &["enroll"][..]] {
            let run = env.run(command);
            assert_eq!(run.code, 2, "{extra}: {run:?}");
            let error = run.error();
            assert!(
                error.contains(&format!("{key} = true cannot be honoured"))
                    && error.contains("allowlist.add"),
                "{error}"
            );
        }
    }
    // false is what the agent does anyway: accepted.
    env.write_config("[allowlist]\nallow_all_apps = false\n");
    assert_eq!(env.run(&["status"]).code, 0);
}
