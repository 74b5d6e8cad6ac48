//! The agent's voice: `INFO:`/`WARN:`/`ERROR:`/`DEBUG:` lines, the format Jamf policy logs show.
//!
//! Everything the agent says goes through `tracing`; this module renders those events as one
//! prefixed line each, and silences the chatter of the HTTP and TLS libraries underneath.

use std::fmt;
use std::io::{self, Write};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
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
    // A second init (tests calling run() twice in one process) keeps the first subscriber.
    let _ = tracing_subscriber::registry()
        .with(layer.with_filter(targets))
        .try_init();
}

/// The tag a Jamf log reader greps for.
pub fn tag(level: &Level) -> &'static str {
    match *level {
        Level::ERROR => "ERROR",
        Level::WARN => "WARN",
        Level::INFO => "INFO",
        _ => "DEBUG",
    }
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
        write!(writer, "{}: ", tag(event.metadata().level()))?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
