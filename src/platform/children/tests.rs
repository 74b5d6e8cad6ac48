//! Real processes: stand-ins that stop themselves, leave a grandchild behind or close their
//! output, each run through [`run`] as the agent's tools are.

use super::*;
use std::path::Path;
use std::process::Stdio;

/// `sh -c script`, its output piped, as the agent's tools are started.
fn shell(script: &str) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Whether `pid` names a process (a zombie included): `kill(pid, 0)`.
fn exists(pid: i32) -> bool {
    let pid = Pid::from_raw(pid).unwrap();
    rustix::process::test_kill_process(pid) != Err(rustix::io::Errno::SRCH)
}

/// `script` run through [`run`] on a thread, with a FIFO made for it at `FIFO`: the test reads
/// the pids the script writes there (the script blocks writing them until then), so the run is
/// known to have got that far before its timeout, without any sleep.
fn run_telling_pids(script: &str, timeout: Duration) -> (Result<Finished, ChildError>, Vec<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pid");
    make_fifo(&fifo, 0o600);
    let script = script.replace("FIFO", &fifo.display().to_string());
    let running = std::thread::spawn(move || run(&mut shell(&script), "stand-in", timeout, None));
    let pids = std::fs::read_to_string(&fifo).unwrap();
    let pids = pids
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    (running.join().unwrap(), pids)
}

#[test]
fn shows_every_word_quoted_where_a_shell_needs_it() {
    let mut command = Command::new("/usr/bin/certutil");
    command.args(["-L", "-d", "sql:/home/a b/.pki/nssdb", "-n", "it's", ""]);
    assert_eq!(
        shown(&command),
        r"/usr/bin/certutil -L -d 'sql:/home/a b/.pki/nssdb' -n 'it'\''s' ''"
    );
}

#[test]
fn output_is_collected_and_input_delivered() {
    let mut command = shell("cat; echo warning >&2; exit 3");
    command.stdin(Stdio::piped());
    let done = run(
        &mut command,
        "stand-in",
        Duration::from_secs(30),
        Some(b"line\n"),
    )
    .unwrap();
    assert_eq!(done.status.code(), Some(3));
    assert_eq!(done.stdout, b"line\n");
    assert_eq!(done.stderr, b"warning\n");
}

#[test]
fn a_child_is_listed_for_stop_all_while_it_runs_and_never_after_it_is_reaped() {
    // After reaping, its id may name another process's group: `stop_all` must not reach it.
    // (Other tests run children beside this one, so only this child's entry is looked at.)
    let (done, pids) = run_telling_pids("echo $$ > FIFO", Duration::from_secs(30));
    assert!(done.unwrap().status.success());
    let pid = Pid::from_raw(pids[0]).unwrap();
    assert!(!lock(&RUNNING).contains(&pid), "{pid:?} is still listed");
    // While it runs, it is listed: the FIFO holds the script until the test reads it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pid");
    make_fifo(&fifo, 0o600);
    let script = format!("echo $$ > {0}; read line < {0}", fifo.display());
    let running = std::thread::spawn(move || {
        run(
            &mut shell(&script),
            "stand-in",
            Duration::from_secs(30),
            None,
        )
    });
    let pid: i32 = std::fs::read_to_string(&fifo)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(lock(&RUNNING).contains(&Pid::from_raw(pid).unwrap()));
    std::fs::write(&fifo, "go\n").unwrap();
    assert!(running.join().unwrap().unwrap().status.success());
    assert!(!lock(&RUNNING).contains(&Pid::from_raw(pid).unwrap()));
}

#[test]
fn a_child_that_stops_itself_is_killed_with_its_group_and_reaped_at_its_timeout() {
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let (result, pids) = run_telling_pids("sleep 1000 & echo $$ $! > FIFO; kill -STOP $$", timeout);
    let Err(ChildError::TimedOut(stopped)) = result else {
        panic!("{result:?}");
    };
    assert!(started.elapsed() >= timeout);
    assert_eq!(
        stopped,
        TimedOut {
            program: "stand-in".into(),
            after: timeout
        }
    );
    assert_eq!(
        stopped.to_string(),
        "stand-in did not finish within 300 ms, so it was stopped; the next run tries again"
    );
    // It and its grandchild went with their group, and neither is left unreaped (a zombie
    // would still exist).
    // On Linux the agent reaps its children's orphans itself; on macOS launchd does, later.
    for pid in pids.into_iter().filter(|_| cfg!(target_os = "linux")) {
        assert!(!exists(pid), "{pid} is still there");
    }
    assert!(super::stopped().is_some());
}

#[test]
fn a_child_that_closed_its_output_still_runs_into_its_timeout() {
    let mut command = shell("exec >&- 2>&-; kill -STOP $$");
    let result = run(&mut command, "stand-in", Duration::from_millis(200), None);
    assert!(matches!(result, Err(ChildError::TimedOut(_))), "{result:?}");
}

#[test]
fn what_a_finished_child_left_running_in_its_group_is_killed() {
    // The grandchild holds the output pipe open: without the group kill the run would wait
    // for it until the timeout.
    let started = Instant::now();
    let (result, pids) = run_telling_pids(
        "sleep 1000 & echo $! > FIFO; echo done",
        Duration::from_secs(60),
    );
    let done = result.unwrap();
    assert_eq!(done.stdout, b"done\n");
    assert!(done.status.success());
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(
        !cfg!(target_os = "linux") || !exists(pids[0]),
        "the grandchild {} is still there",
        pids[0]
    );
}

#[test]
fn a_program_that_cannot_start_is_named() {
    let mut command = Command::new(Path::new("/nonexistent/devicetrust-tool"));
    let err = run(&mut command, "the tool", Duration::from_secs(5), None).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot start the tool:"),
        "{err}"
    );
}

#[test]
fn a_child_may_run_to_the_runs_deadline_less_a_tenth_of_it_at_most_two_seconds() {
    // The pure part of `set_deadline` and `time_left`: the global itself is the run's, and a
    // test that set it would bound every other test's children (tests/deadlines.rs drives it).
    let now = Instant::now();
    let short = Deadline::new(now, Duration::from_secs(3)).unwrap();
    assert_eq!(short.left(now), Duration::from_millis(2700));
    let long = Deadline::new(now, Duration::from_secs(600)).unwrap();
    assert_eq!(long.left(now), Duration::from_secs(598));
    assert_eq!(
        long.left(now + Duration::from_secs(100)),
        Duration::from_secs(498)
    );
    assert_eq!(long.left(now + Duration::from_secs(599)), Duration::ZERO);
    assert_eq!(long.left(now + Duration::from_secs(700)), Duration::ZERO);
    assert!(Deadline::new(now, Duration::MAX).is_none());
}

#[test]
fn durations_read_as_whole_seconds_or_milliseconds() {
    assert_eq!(shown_duration(Duration::from_secs(10)), "10 s");
    assert_eq!(shown_duration(Duration::from_millis(2700)), "2700 ms");
    assert_eq!(shown_duration(Duration::ZERO), "0 s");
}

/// A FIFO at `path` with `mode`, as `mkfifo` makes it.
pub(crate) fn make_fifo(path: &std::path::Path, mode: libc::mode_t) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: `c_path` is a valid NUL-terminated string for the duration of the call.
    let made = unsafe { libc::mkfifo(c_path.as_ptr(), mode) };
    assert_eq!(made, 0, "{}", std::io::Error::last_os_error());
}
