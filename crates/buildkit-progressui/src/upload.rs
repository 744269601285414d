//! The build context's upload ([`BuildEvent::ContextUpload`](docker_build::BuildEvent)) as
//! the renderers show it: the sans-IO formatting, shared by `plain`, `tty` and `json`.
//!
//! A BuildKit build that gets its context through the session shows the transfer in its own
//! `[internal] load build context` vertex (`transferring context: 120.00MB 1.0s done`). A
//! context sent as the tar body has no vertex of the daemon's: it is shown as a vertex of
//! ours, `#0 [internal] sending build context`, with the same status line, printed by BuildKit's
//! plain printer's rules for an unfinished status (at most every 5 s) and numbered 0 so that
//! the daemon's vertices keep BuildKit's numbers. The classic builder shows the docker CLI's
//! line instead, `Sending build context to Docker daemon  120MB`, once, when the upload ends
//! (what the CLI prints when its output is not a terminal).

use docker_build::{Builder, ContextUpload};

use crate::format::{bytes, seconds_between};

/// The name of our vertex for the upload (plain's `#0` block, the tty's job line).
pub const VERTEX_NAME: &str = "[internal] sending build context";

/// The status id BuildKit's FileSync gives the context transfer.
pub const STATUS_ID: &str = "transferring context:";

/// Seconds from the upload's first bytes to `upload.at`.
pub fn elapsed(upload: &ContextUpload) -> f64 {
    seconds_between(upload.started, upload.at).max(0.0)
}

/// BuildKit's status line of the transfer, without the `#N `: `transferring context:
/// 120.00MB 1.0s`, then `… done` (bytes as [`bytes()`](crate::format::bytes), the time only above 0.01 s, as the
/// plain printer writes a status).
///
/// ```
/// use buildkit_events::Time;
/// use buildkit_progressui::upload::transfer_status;
/// use docker_build::{Builder, ContextUpload};
///
/// let upload = ContextUpload {
///     sent: 120_000_000,
///     started: Time(0),
///     at: Time(1_000_000_000),
///     done: false,
///     builder: Builder::BuildKit,
/// };
/// assert_eq!(transfer_status(&upload), "transferring context: 120.00MB 1.0s");
/// ```
pub fn transfer_status(upload: &ContextUpload) -> String {
    let mut line = String::from(STATUS_ID);
    if upload.sent != 0 {
        line.push(' ');
        line.push_str(&bytes(i64::try_from(upload.sent).unwrap_or(i64::MAX)));
    }
    let secs = elapsed(upload);
    if secs > 0.01 {
        line.push_str(&format!(" {secs:.1}s"));
    }
    if upload.done {
        line.push_str(" done");
    }
    line
}

/// The docker CLI's line for the classic builder: `Sending build context to Docker daemon`,
/// a space and the size as go-units' `HumanSize` right-aligned in 8 columns (the CLI's
/// `JSONProgress` without a total).
///
/// ```
/// use buildkit_progressui::upload::classic_line;
/// assert_eq!(classic_line(2048), "Sending build context to Docker daemon  2.048kB");
/// assert_eq!(classic_line(120_000_000), "Sending build context to Docker daemon    120MB");
/// ```
pub fn classic_line(sent: u64) -> String {
    format!(
        "Sending build context to Docker daemon {:>8}",
        human_size(sent)
    )
}

/// go-units' `HumanSize`: decimal units, 4 significant digits, trailing zeros dropped (Go's
/// `%.4g`; below 1000 of a unit no exponent form arises).
///
/// ```
/// use buildkit_progressui::upload::human_size;
/// assert_eq!(human_size(0), "0B");
/// assert_eq!(human_size(999), "999B");
/// assert_eq!(human_size(1_000), "1kB");
/// assert_eq!(human_size(314_572_800), "314.6MB");
/// assert_eq!(human_size(999_950), "1000kB");
/// ```
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{}{}", go_g4(value), UNITS[unit])
}

/// Go's `%.4g` of a value in `[0, 1000)`: 4 significant digits, trailing zeros dropped.
fn go_g4(value: f64) -> String {
    if value == 0.0 {
        return "0".to_string();
    }
    let digits_before = value.abs().log10().floor() as i32 + 1;
    let decimals = (4 - digits_before).max(0) as usize;
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        let trimmed = text.trim_end_matches('0').trim_end_matches('.').len();
        text.truncate(trimmed);
    }
    text
}

/// Whether the plain printer shows this update: the end always, the first update, and an
/// unfinished one when 5 s passed since the last printed (BuildKit's rule for a status
/// without a total). The classic builder's line comes only at the end.
pub(crate) fn plain_due(
    upload: &ContextUpload,
    last_printed: Option<buildkit_events::Time>,
) -> bool {
    match upload.builder {
        Builder::Classic => upload.done,
        _ => {
            upload.done
                || last_printed.is_none_or(|t| upload.at.0 - t.0 >= crate::plain::MIN_TIME_DELTA)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Render;
    use crate::json::Json;
    use crate::plain::Plain;
    use crate::testing::{completed, finished, ms, started};
    use crate::tty::{TtyState, frame};
    use buildkit_events::{Outcome, Time};
    use docker_build::BuildEvent;

    fn upload(sent: u64, secs: f64, done: bool) -> ContextUpload {
        ContextUpload {
            sent,
            started: Time(1_000),
            at: Time(1_000 + (secs * 1e9) as i128),
            done,
            builder: Builder::BuildKit,
        }
    }

    #[test]
    fn the_status_line_is_buildkits() {
        assert_eq!(
            transfer_status(&upload(0, 0.0, false)),
            "transferring context:"
        );
        assert_eq!(
            transfer_status(&upload(451, 0.005, true)),
            "transferring context: 451B done"
        );
        assert_eq!(
            transfer_status(&upload(300_000_000, 1.52, true)),
            "transferring context: 300.00MB 1.5s done"
        );
    }

    #[test]
    fn human_size_is_go_units() {
        for (n, text) in [
            (1, "1B"),
            (1_234, "1.234kB"),
            (12_345, "12.35kB"),
            (123_456, "123.5kB"),
            (1_000_000, "1MB"),
            (10_100_000, "10.1MB"),
            (2_000_000_000, "2GB"),
        ] {
            assert_eq!(human_size(n), text, "{n}");
        }
        assert_eq!(
            classic_line(314_572_800),
            "Sending build context to Docker daemon  314.6MB"
        );
    }

    #[test]
    fn plain_prints_the_first_update_then_every_5_s_and_the_end() {
        let first = upload(1, 0.1, false);
        assert!(plain_due(&first, None));
        assert!(!plain_due(&upload(2, 5.0, false), Some(first.at)));
        assert!(plain_due(&upload(2, 5.1, false), Some(first.at)));
        assert!(plain_due(&upload(2, 0.2, true), Some(first.at)));
        let classic = ContextUpload {
            builder: Builder::Classic,
            ..first
        };
        assert!(!plain_due(&classic, None));
        assert!(plain_due(
            &ContextUpload {
                done: true,
                ..classic
            },
            None
        ));
    }

    /// An upload update at `at_ms` (started at 0), as `BuildEvent::ContextUpload`.
    fn sent(builder: Builder, sent: u64, at_ms: i64, done: bool) -> BuildEvent {
        BuildEvent::ContextUpload(ContextUpload {
            sent,
            started: ms(0),
            at: ms(at_ms),
            done,
            builder,
        })
    }

    fn render(renderer: &mut impl Render, events: &[BuildEvent]) {
        for e in events {
            renderer.event(e, Time(0)).unwrap();
        }
    }

    #[test]
    fn plain_shows_the_upload_as_block_0_between_the_daemons_blocks() {
        let mut plain = Plain::new(Vec::new());
        render(
            &mut plain,
            &[
                sent(Builder::BuildKit, 1_000_000, 100, false),
                // Within 5 s of the last line printed: skipped.
                sent(Builder::BuildKit, 50_000_000, 2_000, false),
                started("a", "[internal] load remote build context", 2_100),
                completed("a", Outcome::Done, 2_100, 2_150, 50),
                sent(Builder::BuildKit, 120_000_000, 5_200, false),
                sent(Builder::BuildKit, 300_000_000, 6_000, true),
                // After the end: nothing.
                sent(Builder::BuildKit, 300_000_000, 6_100, true),
                finished(),
            ],
        );
        assert_eq!(
            String::from_utf8(plain.into_inner()).unwrap(),
            "#0 [internal] sending build context\n\
             #0 transferring context: 1.00MB 0.1s\n\
             \n\
             #1 [internal] load remote build context\n\
             #1 DONE 0.1s\n\
             \n\
             #0 [internal] sending build context\n\
             #0 transferring context: 120.00MB 5.2s\n\
             #0 transferring context: 300.00MB 6.0s done\n\
             #0 DONE 6.0s\n"
        );
    }

    #[test]
    fn plain_shows_the_clis_line_once_for_the_classic_builder() {
        let mut plain = Plain::new(Vec::new());
        render(
            &mut plain,
            &[
                sent(Builder::Classic, 100_000_000, 500, false),
                sent(Builder::Classic, 314_572_800, 1_500, true),
                started("classic:step-1", "[1/1] FROM busybox", 1_600),
                completed("classic:step-1", Outcome::Done, 1_600, 1_700, 100),
                finished(),
            ],
        );
        assert_eq!(
            String::from_utf8(plain.into_inner()).unwrap(),
            "Sending build context to Docker daemon  314.6MB\n\
             \n\
             #1 [1/1] FROM busybox\n\
             #1 DONE 0.1s\n"
        );
    }

    #[test]
    fn json_writes_one_context_upload_line_per_update() {
        let mut json = Json::new(Vec::new());
        render(
            &mut json,
            &[
                sent(Builder::BuildKit, 65_536, 100, false),
                sent(Builder::Classic, 300_000_000, 1_500, true),
            ],
        );
        let text = String::from_utf8(json.into_inner()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"{"type":"context_upload","bytes":65536,"done":false,"started":"1970-01-01T00:00:00Z","time":"1970-01-01T00:00:00.1Z"}"#,
                r#"{"type":"context_upload","bytes":300000000,"done":true,"started":"1970-01-01T00:00:00Z","time":"1970-01-01T00:00:01.5Z"}"#,
            ]
        );
    }

    #[test]
    fn the_tty_frame_shows_the_transfer_above_the_steps() {
        let mut state = TtyState::new();
        state.apply(&sent(Builder::BuildKit, 120_000_000, 1_000, false));
        state.apply(&started("a", "[internal] load remote build context", 1_100));
        // Running: the timer counts to `now`.
        let lines = frame(&state, 60, None, ms(1_500), false);
        assert_eq!(
            lines[1..3],
            [
                " => [internal] sending build context                   1.5s",
                " => => transferring context: 120.00MB                  1.5s",
            ]
        );
        state.apply(&sent(Builder::BuildKit, 300_000_000, 2_000, true));
        let lines = frame(&state, 60, None, ms(9_000), false);
        assert_eq!(
            lines[1..3],
            [
                " => [internal] sending build context                   2.0s",
                " => => transferring context: 300.00MB                  2.0s",
            ]
        );
        assert_eq!(lines.len(), 4, "{lines:?}");
    }
}
