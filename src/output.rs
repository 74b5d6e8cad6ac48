//! The agent's voice: `INFO:`/`WARN:`/`ERROR:`/`DEBUG:` lines, the format Jamf policy logs show.
//!
//! Everything the agent says goes through `tracing`; this module renders those events as one
//! prefixed line each, and silences the chatter of the HTTP and TLS libraries underneath.
//!
//! On macOS the same events also go to the unified log (subsystem `com.devicetrust.agent`,
//! category `agent`), so `log stream --predicate 'subsystem == "com.devicetrust.agent"'` shows
//! them; elsewhere that layer does not exist.

use std::fmt;
use std::io::{self, Write};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
#[cfg(any(target_os = "macos", test))]
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;
use tracing_subscriber::registry::LookupSpan;

/// Where the human lines go. Commands whose stdout is a machine format (`status --json`, `ea`)
/// send them to stderr so stdout stays exactly one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Channel {
    Stdout,
    Stderr,
}

/// Installs the line renderer for this process. `verbose` adds `DEBUG:` lines.
pub fn init(verbose: bool, channel: Channel) {
    let level = if verbose { Level::DEBUG } else { Level::INFO };
    let targets = Targets::new().with_target(env!("CARGO_CRATE_NAME"), level);
    let layer = tracing_subscriber::fmt::layer()
        .event_format(PrefixedLine)
        .with_writer(move || -> Box<dyn Write> {
            match channel {
                Channel::Stdout => Box::new(io::stdout()),
                Channel::Stderr => Box::new(io::stderr()),
            }
        });
    let registry = tracing_subscriber::registry().with(layer.with_filter(targets.clone()));
    // The unified log gets exactly the events (crate, level) the lines get.
    #[cfg(target_os = "macos")]
    let registry = registry.with(UnifiedLog(os_log::OsLog::new()).with_filter(targets));
    #[cfg(not(target_os = "macos"))]
    drop(targets);
    // A second init (tests calling run() twice in one process) keeps the first subscriber.
    let _ = registry.try_init();
}

/// The unified-log subsystem admins filter on (`log stream --predicate 'subsystem == "…"'`).
pub const UNIFIED_LOG_SUBSYSTEM: &str = "com.devicetrust.agent";
/// The unified-log category of every message.
pub const UNIFIED_LOG_CATEGORY: &str = "agent";

/// The tag a Jamf log reader greps for.
pub fn tag(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// `text` on one line with no control character: a newline, carriage return, tab or escape
/// (and every other control character) is written as an escape (`\n`, `\r`, `\t`, `\u{1b}`).
/// Text from a file or a server (an error a user's renewal job kept in `state.json`, a
/// certificate's subject) is printed by root runs; escaped, it can never start a line of its
/// own: no forged `INFO:` line, no `<result>` line Jamf would take for the EA's.
pub fn one_line(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

struct PrefixedLine;

impl<S, N> FormatEvent<S, N> for PrefixedLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut message = String::new();
        ctx.field_format()
            .format_fields(Writer::new(&mut message), event)?;
        writeln!(
            writer,
            "{}: {}",
            tag(event.metadata().level()),
            one_line(&message)
        )
    }
}

/// The unified-log type (`os_log_type_t`) of an event.
///
/// WARN maps to `Default`, not `Error`: `Error` is for failures (the `ERROR:` lines), so
/// `log show --predicate '… && messageType == error'` lists exactly what went wrong; `Default`
/// is still persisted on disk and shown without `--info`, unlike `Info` and `Debug`.
#[cfg(any(target_os = "macos", test))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum UnifiedLogType {
    Debug,
    Info,
    Default,
    Error,
}

#[cfg(any(target_os = "macos", test))]
impl UnifiedLogType {
    fn of(level: &Level) -> Self {
        match *level {
            Level::ERROR => Self::Error,
            Level::WARN => Self::Default,
            Level::INFO => Self::Info,
            _ => Self::Debug,
        }
    }

    /// The `OS_LOG_TYPE_*` value of `<os/log.h>`.
    fn raw(self) -> u8 {
        match self {
            Self::Default => 0x00,
            Self::Info => 0x01,
            Self::Debug => 0x02,
            Self::Error => 0x10,
        }
    }
}

/// An event's text as its line shows it, without the `INFO: ` tag and the newline: the same
/// field formatter (`DefaultFields`, the fmt layer's) renders the message and its fields.
#[cfg(any(target_os = "macos", test))]
fn unified_log_message(event: &Event<'_>) -> String {
    let mut message = String::new();
    let _ = tracing_subscriber::fmt::format::DefaultFields::new()
        .format_fields(Writer::new(&mut message), event);
    message
}

/// Where [`UnifiedLog`] writes: `os_log` on macOS, a recorder in tests.
#[cfg(any(target_os = "macos", test))]
trait UnifiedLogSink: Send + Sync + 'static {
    /// Whether a message of this type would be kept (or streamed) at all; saves formatting it.
    fn enabled(&self, kind: UnifiedLogType) -> bool;
    fn write(&self, kind: UnifiedLogType, message: &str);
}

/// The unified log itself: `os_log_create` and a C shim around `os_log_with_type`
/// (src/output/os_log.c, built by build.rs).
#[cfg(target_os = "macos")]
mod os_log {
    use super::{UnifiedLogSink, UnifiedLogType, UNIFIED_LOG_CATEGORY, UNIFIED_LOG_SUBSYSTEM};
    use std::ffi::{c_char, c_void, CString};

    #[allow(non_camel_case_types)]
    type os_log_t = *mut c_void;

    extern "C" {
        // libSystem (libsystem_trace).
        fn os_log_create(subsystem: *const c_char, category: *const c_char) -> os_log_t;
        fn os_log_type_enabled(log: os_log_t, kind: u8) -> bool;
        // src/output/os_log.c: os_log_with_type(log, kind, "%{public}s", message).
        fn devicetrust_os_log(log: os_log_t, kind: u8, message: *const c_char);
    }

    /// The agent's log handle: created once per process and never released (the system caches
    /// os_log handles for the life of the process anyway).
    pub(super) struct OsLog(os_log_t);

    // SAFETY: os_log handles are immutable and documented as safe to use from any thread.
    unsafe impl Send for OsLog {}
    unsafe impl Sync for OsLog {}

    impl OsLog {
        pub(super) fn new() -> Self {
            let subsystem = CString::new(UNIFIED_LOG_SUBSYSTEM).expect("no NUL");
            let category = CString::new(UNIFIED_LOG_CATEGORY).expect("no NUL");
            // SAFETY: two valid C strings; os_log_create copies them and never returns NULL.
            Self(unsafe { os_log_create(subsystem.as_ptr(), category.as_ptr()) })
        }
    }

    /// The message goes out as `%{public}s`: the agent never logs secrets, and a private
    /// argument would show as `<private>` to admins.
    impl UnifiedLogSink for OsLog {
        fn enabled(&self, kind: UnifiedLogType) -> bool {
            // SAFETY: a handle from os_log_create.
            unsafe { os_log_type_enabled(self.0, kind.raw()) }
        }

        fn write(&self, kind: UnifiedLogType, message: &str) {
            // An interior NUL would cut the C string short: write it as `\0`.
            let message = CString::new(message.replace('\0', "\\0")).expect("NULs replaced");
            // SAFETY: a handle from os_log_create and a C string that outlives the call.
            unsafe { devicetrust_os_log(self.0, kind.raw(), message.as_ptr()) }
        }
    }
}

/// The layer that copies each event to the unified log.
#[cfg(any(target_os = "macos", test))]
struct UnifiedLog<W>(W);

#[cfg(any(target_os = "macos", test))]
impl<S: Subscriber, W: UnifiedLogSink> Layer<S> for UnifiedLog<W> {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let kind = UnifiedLogType::of(event.metadata().level());
        if self.0.enabled(kind) {
            self.0.write(kind, &unified_log_message(event));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<Vec<(UnifiedLogType, String)>>>);

    impl UnifiedLogSink for Recorder {
        fn enabled(&self, _kind: UnifiedLogType) -> bool {
            true
        }
        fn write(&self, kind: UnifiedLogType, message: &str) {
            self.0.lock().unwrap().push((kind, message.to_owned()));
        }
    }

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_from_outside_stays_on_one_line_without_control_characters() {
        assert!(matches!(
            one_line("plain text"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(
            one_line("a\nINFO: forged\r\t<result>x</result>\u{1b}[2J\u{7f}\u{85}"),
            r"a\nINFO: forged\r\t<result>x</result>\u{1b}[2J\u{7f}\u{85}"
        );
    }

    #[test]
    fn levels_map_to_os_log_types() {
        let of = |level| UnifiedLogType::of(&level).raw();
        assert_eq!(of(Level::ERROR), 0x10); // OS_LOG_TYPE_ERROR
        assert_eq!(of(Level::WARN), 0x00); // OS_LOG_TYPE_DEFAULT
        assert_eq!(of(Level::INFO), 0x01); // OS_LOG_TYPE_INFO
        assert_eq!(of(Level::DEBUG), 0x02); // OS_LOG_TYPE_DEBUG
        assert_eq!(of(Level::TRACE), 0x02);
    }

    /// The unified log gets each line of this crate, minus its tag, at the lines' filter.
    #[test]
    fn unified_log_gets_the_lines_without_their_tag() {
        crate::http::tests::keep_every_callsite_enabled();
        let recorder = Recorder::default();
        let lines = Lines::default();
        let targets = Targets::new().with_target(env!("CARGO_CRATE_NAME"), Level::INFO);
        let writer = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .event_format(PrefixedLine)
                    .with_writer(move || writer.clone())
                    .with_filter(targets.clone()),
            )
            .with(UnifiedLog(recorder.clone()).with_filter(targets));
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                days = 341,
                path = "/tmp/a b",
                "certificate has {} days left",
                341
            );
            tracing::warn!("Chrome policy is managed by a profile");
            tracing::error!(status = -25308, "keychain: {}", "interaction not allowed");
            tracing::debug!("not shown without -v");
            tracing::info!(target: "rustls", "another crate: filtered out");
        });
        let recorded = recorder.0.lock().unwrap().clone();
        let lines = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let expected: Vec<String> = recorded
            .iter()
            .map(|(kind, message)| {
                let tag = match kind {
                    UnifiedLogType::Error => "ERROR",
                    UnifiedLogType::Default => "WARN",
                    UnifiedLogType::Info => "INFO",
                    UnifiedLogType::Debug => "DEBUG",
                };
                format!("{tag}: {message}\n")
            })
            .collect();
        assert_eq!(lines, expected.concat());
        assert_eq!(
            recorded,
            [
                (
                    UnifiedLogType::Info,
                    "certificate has 341 days left days=341 path=\"/tmp/a b\"".to_owned()
                ),
                (
                    UnifiedLogType::Default,
                    "Chrome policy is managed by a profile".to_owned()
                ),
                (
                    UnifiedLogType::Error,
                    "keychain: interaction not allowed status=-25308".to_owned()
                ),
            ]
        );
    }
}
