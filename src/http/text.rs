//! Text for log lines and messages: durations, when to try again, and server text folded to one
//! short line that can never start a line of its own.

use std::time::Duration;

/// "3s", "1.5s", "250ms": for log lines and messages.
pub fn fmt_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// "try again after <RFC 3339 time>" or "try again later".
pub fn retry_hint(reset_at: Option<i64>) -> String {
    let when = reset_at
        .and_then(|at| time::OffsetDateTime::from_unix_timestamp(at).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        });
    match when {
        Some(when) => format!("try again after {when}"),
        None => "try again later".to_owned(),
    }
}

/// Collapses any whitespace run (newlines included) into one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A short, single-line excerpt of a non-JSON body (an HTML error page, say) for an error
/// message: tags dropped, whitespace collapsed, control characters removed, cut at `max` chars.
pub fn body_snippet(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let mut stripped = String::with_capacity(text.len().min(4096));
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                stripped.push(' ');
            }
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            c if c.is_control() => stripped.push(' '),
            c => stripped.push(c),
        }
    }
    let mut line = one_line(&stripped);
    if line.is_empty() {
        line = one_line(
            &text
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect::<String>(),
        );
    }
    if line.chars().count() > max {
        let mut cut: String = line.chars().take(max).collect();
        cut.push('…');
        cut
    } else {
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_snippets_read_well() {
        assert_eq!(fmt_duration(Duration::from_secs(3)), "3s");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(fmt_duration(Duration::from_millis(250)), "250ms");
        let html = b"<html>\n<head><title>503 Service Unavailable</title></head>\n<body>\r\n<h1>Down</h1></body></html>";
        assert_eq!(body_snippet(html, 80), "503 Service Unavailable Down");
        assert_eq!(fmt_duration(Duration::from_millis(1000)), "1s");
        assert_eq!(fmt_duration(Duration::from_millis(999)), "999ms");
        let long = "x".repeat(200);
        assert_eq!(body_snippet(long.as_bytes(), 80).chars().count(), 81);
        // Exactly `max` characters stay whole; one more is cut.
        assert_eq!(body_snippet("y".repeat(80).as_bytes(), 80), "y".repeat(80));
        assert_eq!(
            body_snippet("y".repeat(81).as_bytes(), 80),
            format!("{}…", "y".repeat(80))
        );
        // A '>' outside a tag is text; control characters (a terminal escape) are not.
        assert_eq!(body_snippet(b"a > b <i>c</i>", 80), "a > b c");
        assert_eq!(body_snippet(b"\x1b[31mred\x07!", 80), "[31mred !");
        assert_eq!(retry_hint(Some(0)), "try again after 1970-01-01T00:00:00Z");
        assert_eq!(retry_hint(None), "try again later");
    }
}
