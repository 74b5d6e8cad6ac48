//! Every child process the agent starts runs through [`run`]: its command line logged at DEBUG
//! (`-v`), started in a session of its own, given a timeout, killed with its whole process
//! group when it runs out, and reaped.
//!
//! An admin sees exactly what ran; and since no secret may ever be on a command line (secrets
//! go through stdin or 0600 files), the tests read these lines to prove it. A tool may hang for
//! reasons a local user controls (a FIFO where NSS expects its database, a PKCS#11 module that
//! blocks, a stopped `certutil` running under the user's uid), and a run must still answer:
//! no child outlives the time its run has left ([`set_deadline`]), and one that runs out is a
//! [`TimedOut`] naming it, which callers report as "try again later" (exit 75).
//!
//! A child is the leader of a new session, so the kill reaches everything it started that did
//! not leave its process group, and it has no controlling terminal to prompt on. On Linux the
//! agent adopts the orphans of its children (a child subreaper), so what a killed child left
//! is reaped here too; on macOS launchd reaps orphans.

use rustix::process::{Pid, Signal, WaitIdOptions, WaitOptions};
use std::io::{Read, Write};
use std::process::{Command, ExitStatus};
use std::sync::{mpsc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// What a child printed and how it ended.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    /// Empty unless its stdout was piped.
    pub stdout: Vec<u8>,
    /// Empty unless its stderr was piped.
    pub stderr: Vec<u8>,
}

/// A child that did not finish in the time it was given, and was stopped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{program} did not finish within {}, so it was stopped; the next run tries again",
    shown_duration(*after)
)]
pub struct TimedOut {
    pub program: String,
    pub after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ChildError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    TimedOut(#[from] TimedOut),
    #[error("lost track of {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// The run's deadline, less a margin in which the run still answers after stopping a child.
struct Deadline {
    at: Instant,
    margin: Duration,
}

static DEADLINE: Mutex<Option<Deadline>> = Mutex::new(None);
/// The children started and not yet reaped: their process groups, for [`stop_all`].
static RUNNING: Mutex<Vec<Pid>> = Mutex::new(Vec::new());
/// The first child this process had to stop.
static STOPPED: Mutex<Option<TimedOut>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Deadline {
    /// `limit` from `now`, with a margin of a tenth of it (at most 2 s): the time the run
    /// keeps to report a stopped child in its own words before its deadline ends it.
    fn new(now: Instant, limit: Duration) -> Option<Deadline> {
        now.checked_add(limit).map(|at| Deadline {
            at,
            margin: (limit / 10).min(Duration::from_secs(2)),
        })
    }

    /// How long a child started at `now` may run.
    fn left(&self, now: Instant) -> Duration {
        self.at
            .saturating_duration_since(now)
            .saturating_sub(self.margin)
    }
}

/// From now on no child runs past `limit` from now, less its margin ([`Deadline::new`]).
pub fn set_deadline(limit: Duration) {
    *lock(&DEADLINE) = Deadline::new(Instant::now(), limit);
}

/// How long a child started now may run, by the run's deadline; `None` without one.
pub fn time_left() -> Option<Duration> {
    lock(&DEADLINE).as_ref().map(|d| d.left(Instant::now()))
}

/// The first child this process stopped at its timeout, if any. What a run saw while a tool
/// hung is incomplete, so `status` and `ea` report this instead of a health status.
pub fn stopped() -> Option<TimedOut> {
    lock(&STOPPED).clone()
}

/// Kills every child still running, with its process group: the run's deadline ends the
/// process, and nothing it started may stay behind.
pub fn stop_all() {
    for &group in lock(&RUNNING).iter() {
        // Not reaped yet, so the group's id still names this child's group alone.
        let _ = rustix::process::kill_process_group(group, Signal::KILL);
    }
}

/// Runs `command` (called `program` in messages) for at most `timeout`, and no longer than the
/// run's deadline allows ([`set_deadline`]). `input` is written to its stdin if that is piped;
/// its stdout and stderr are collected if they are piped. Past the time it is killed with its
/// process group, reaped, and the result is [`ChildError::TimedOut`].
pub fn run(
    command: &mut Command,
    program: &str,
    timeout: Duration,
    input: Option<&[u8]>,
) -> Result<Finished, ChildError> {
    tracing::debug!("starting {}", shown(command));
    let limit = time_left().map_or(timeout, |left| timeout.min(left));
    let started = Instant::now();
    let stop_at = started.checked_add(limit);
    new_session(command);
    adopt_orphans();
    let mut child = command.spawn().map_err(|source| ChildError::Spawn {
        program: program.to_owned(),
        source,
    })?;
    let pid = Pid::from_child(&child);
    lock(&RUNNING).push(pid);

    let (events, seen) = mpsc::channel();
    watch_exit(pid, events.clone());
    let mut open = 0;
    if let Some(pipe) = child.stdout.take() {
        collect(pipe, Stream::Stdout, events.clone());
        open += 1;
    }
    if let Some(pipe) = child.stderr.take() {
        collect(pipe, Stream::Stderr, events.clone());
        open += 1;
    }
    if let (Some(pipe), Some(bytes)) = (child.stdin.take(), input) {
        feed(pipe, bytes);
    }
    drop(events);

    let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
    let mut exited = false;
    while !(exited && open == 0) {
        let left = stop_at.map_or(Duration::MAX, |at| {
            at.saturating_duration_since(Instant::now())
        });
        match seen.recv_timeout(left) {
            Ok(Event::Exited) => {
                exited = true;
                // Whatever it left running in its group is not wanted by anyone.
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
            }
            Ok(Event::Output(Stream::Stdout, bytes)) => (stdout, open) = (bytes, open - 1),
            Ok(Event::Output(Stream::Stderr, bytes)) => (stderr, open) = (bytes, open - 1),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                if !exited {
                    // SIGKILL cannot be caught: the watcher sees the end at once.
                    while !matches!(seen.recv(), Ok(Event::Exited) | Err(_)) {}
                }
                let _ = reap(&mut child, pid);
                let stopped = TimedOut {
                    program: program.to_owned(),
                    after: limit,
                };
                lock(&STOPPED).get_or_insert_with(|| stopped.clone());
                return Err(stopped.into());
            }
            // Every sender is gone: the watcher could not wait (not our child any more). What
            // is left of its group goes, so that reaping it cannot wait on a live process.
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                let _ = rustix::process::kill_process_group(pid, Signal::KILL);
                break;
            }
        }
    }
    let status = reap(&mut child, pid).map_err(|source| ChildError::Wait {
        program: program.to_owned(),
        source,
    })?;
    Ok(Finished {
        status,
        stdout,
        stderr,
    })
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

enum Event {
    Exited,
    Output(Stream, Vec<u8>),
}

/// Makes the child the leader of a new session (and so of a new process group), without a
/// controlling terminal: NSS prompts for a database password on `/dev/tty`, and without one a
/// protected database fails at once instead of waiting for someone to type.
fn new_session(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// On Linux, makes this process the reaper of its children's orphans, so that what a killed
/// child started is reaped here rather than left to a PID 1 that may not reap.
fn adopt_orphans() {
    #[cfg(target_os = "linux")]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            if let Err(e) = rustix::process::set_child_subreaper(Some(rustix::process::getpid())) {
                tracing::debug!("orphans of children stay with init: {e}");
            }
        });
    }
}

/// Tells `events` when the child has ended, without reaping it: until it is reaped its process
/// group's id cannot be reused, so killing the group can only reach what it started.
fn watch_exit(pid: Pid, events: mpsc::Sender<Event>) {
    std::thread::spawn(move || loop {
        match rustix::process::waitid(
            rustix::process::WaitId::Pid(pid),
            WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => {
                let _ = events.send(Event::Exited);
                return;
            }
            // Not ours to wait for: dropping the sender says so.
            Err(_) => return,
        }
    });
}

/// Reads `pipe` to its end on a thread of its own: a child that fills one pipe while the other
/// is read would otherwise block, and a hung one must not hold the caller past its time.
fn collect(mut pipe: impl Read + Send + 'static, stream: Stream, events: mpsc::Sender<Event>) {
    std::thread::spawn(move || {
        // Room for what the tools print (a listing, a password), so that a secret is not
        // copied about as the buffer grows.
        let mut bytes = Vec::with_capacity(16 * 1024);
        let _ = pipe.read_to_end(&mut bytes);
        let _ = events.send(Event::Output(stream, bytes));
    });
}

/// Writes `bytes` to the child's stdin and closes it, on a thread of its own (a child that
/// never reads must not hold the caller). A child that exits without reading reports its own
/// error, so a broken pipe is not one. The copy is zeroed when written: it may be a secret.
fn feed(mut pipe: impl Write + Send + 'static, bytes: &[u8]) {
    let bytes = zeroize::Zeroizing::new(bytes.to_vec());
    std::thread::spawn(move || {
        let _ = pipe.write_all(&bytes);
    });
}

/// Reaps the child, then every orphan of its group adopted here (all killed by now).
fn reap(child: &mut std::process::Child, pid: Pid) -> std::io::Result<ExitStatus> {
    lock(&RUNNING).retain(|&p| p != pid);
    let status = child.wait();
    while let Ok(Some(_)) | Err(rustix::io::Errno::INTR) =
        rustix::process::waitpgid(pid, WaitOptions::empty())
    {}
    status
}

/// `2 s`, `1500 ms`: whole seconds where they are whole.
fn shown_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
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
pub(crate) mod tests;
