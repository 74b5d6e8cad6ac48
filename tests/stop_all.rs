//! The run deadline's backstop: when a run's deadline ends the process, `stop_all` kills every
//! child still running, with its process group, so nothing the agent started stays behind.
//! `run` itself stops each child before the deadline (tests/deadlines.rs), so only a test that
//! calls `stop_all` while a child runs can show that it works. It is alone in its own test
//! binary: `stop_all` reaches every child of the process, and a unit test beside others would
//! kill theirs too.

mod common;

use common::make_fifo;
use devicetrust::platform::children;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn stop_all_kills_a_running_child_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pids");
    make_fifo(&fifo, 0o600);

    // The child starts a grandchild in its group, tells both pids, then waits for it: it ends
    // only if it is killed. Its own timeout is the test's bound: were `stop_all` to do
    // nothing, `run` would stop it there and say it timed out, which fails below.
    let script = format!("sleep 300 & echo $$ $! > '{}'; wait", fifo.display());
    let running = std::thread::spawn(move || {
        let mut command = Command::new("/bin/sh");
        command
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        children::run(&mut command, "stand-in", Duration::from_secs(20), None)
    });
    // Blocks until the script has written: both processes exist now.
    let pids: Vec<i32> = std::fs::read_to_string(&fifo)
        .unwrap()
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();

    // `run` lists the child as soon as `spawn` returns, which the script's write may beat:
    // asked again until the run has ended, by `stop_all` or by the timeout.
    while !running.is_finished() {
        children::stop_all();
        std::thread::yield_now();
    }

    let finished = running
        .join()
        .unwrap()
        .expect("stopped by stop_all, not by its own timeout");
    assert_eq!(finished.status.signal(), Some(libc::SIGKILL));
    for pid in pids {
        // Reaped (the child by `run`, the grandchild as an orphan this process adopted), or
        // at the least dead: never still running.
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
        let gone = unsafe { libc::kill(pid, 0) } == -1
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map_or(true, |stat| stat.contains(") Z "));
        assert!(gone, "process {pid} is still running");
    }
}
