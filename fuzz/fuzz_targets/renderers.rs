//! All five renderers over one decoder's events, at fuzzed wall-clock times.
//!
//! Input: one flag byte, then a list of segments.
//! - flags bit 0: tty colours; bits 1–2: the tty's terminal size (one of four fixed sizes, down
//!   to 1×1); bit 3: small decoder limits (`max_line` 256, tracker `max_line_len` 16, tail of 3).
//! - segment: a tag byte; its bits 2–7 step the wall clock by `((tag >> 2) - 32) × 10 ms`
//!   (negative steps too, so `now` need not be monotonic), then by the low two bits:
//!   - 0: `[len_hi, len_lo, bytes…]`, raw protobuf that the harness wraps in a
//!     `{"id":"moby.buildkit.trace","aux":"<base64>"}\r\n` line, pushed as one chunk;
//!   - 1: `[len_hi, len_lo, bytes…]` pushed as a body chunk as is (lines may span chunks);
//!   - 2: `[q]`: `idle(now, q × 25 ms)` on every renderer (`q = 255`: `Duration::MAX`);
//!   - 3: `[8 bytes]`: the wall clock jumps to that big-endian `i64` (nanoseconds).
//!
//! A truncated last segment takes what is left.
//!
//! One `BuildDecoder` (records on) decodes the whole body; every event it queues after a chunk
//! goes to Plain, Tty (live), Json, RawJson and Github, each writing to a `Vec<u8>`; at the end
//! `finish` and the remaining events, `Finished` last.
//!
//! Checks, besides "no panic" and no I/O error: every Json and RawJson output line is one JSON
//! object, and RawJson writes exactly one line per `Record` event.

#![no_main]

use std::time::Duration;

use buildkit_events::Time;
use buildkit_progressui::tty::SizeFn;
use buildkit_progressui::{Mode, Options, Render, Renderer};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent, DecoderConfig};
use libfuzzer_sys::fuzz_target;
use workspace_tests::body::push_trace_aux;

/// 2023-11-14T22:13:20Z: the wall clock at the start, near the corpus records' own times.
const START: i128 = 1_700_000_000_000_000_000;

const SIZES: [SizeFn; 4] = [
    || (80, None),
    || (120, Some(30)),
    || (20, Some(4)),
    || (1, Some(1)),
];

struct Renderers {
    all: [Renderer<Vec<u8>>; 5],
    records: usize,
}

impl Renderers {
    fn event(&mut self, event: &BuildEvent, now: Time) {
        if matches!(event, BuildEvent::Record(_)) {
            self.records += 1;
        }
        for r in &mut self.all {
            if let Err(e) = r.event(event, now) {
                panic!("{:?}: {e}", r.mode());
            }
        }
    }

    fn idle(&mut self, now: Time, quiet: Duration) {
        for r in &mut self.all {
            if let Err(e) = r.idle(now, quiet) {
                panic!("{:?}: {e}", r.mode());
            }
        }
    }

    fn drain(&mut self, decoder: &mut BuildDecoder, now: Time) {
        while let Some(event) = decoder.poll_event() {
            self.event(&event, now);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, mut rest)) = data.split_first() else {
        return;
    };
    let options = Options {
        live: true,
        color: flags & 1 != 0,
        size: SIZES[usize::from((flags >> 1) & 3)],
        github_token: 0x5eed,
    };
    // Records and record boundaries: every renderer sees what it may be given.
    let mut config = DecoderConfig {
        records: true,
        boundaries: true,
        ..DecoderConfig::default()
    };
    if flags & 0x08 != 0 {
        config.max_line = 256;
        config.tracker.max_line_len = 16;
        config.tracker.log_tail_lines = 3;
    }
    let mut decoder = BuildDecoder::with_config(config);
    let mut renderers = Renderers {
        all: [Mode::Plain, Mode::Tty, Mode::Json, Mode::RawJson, Mode::Github]
            .map(|mode| Renderer::new(mode, Vec::new(), options)),
        records: 0,
    };

    let mut now = START;
    while let Some((&tag, tail)) = rest.split_first() {
        rest = tail;
        let step = i128::from((tag >> 2) as i8 - 32) * 10_000_000;
        now = now.saturating_add(step);
        match tag & 3 {
            0 | 1 => {
                let bytes = take_framed(&mut rest);
                let chunk = if tag & 3 == 0 {
                    let mut line = Vec::new();
                    push_trace_aux(&mut line, bytes);
                    Bytes::from(line)
                } else {
                    Bytes::copy_from_slice(bytes)
                };
                decoder.push(chunk, Time(now));
                renderers.drain(&mut decoder, Time(now));
            }
            2 => {
                let q = take(&mut rest, 1).first().copied().unwrap_or(0);
                let quiet = if q == u8::MAX {
                    Duration::MAX
                } else {
                    Duration::from_millis(25 * u64::from(q))
                };
                renderers.idle(Time(now), quiet);
            }
            _ => {
                let mut be = [0u8; 8];
                let bytes = take(&mut rest, 8);
                be[..bytes.len()].copy_from_slice(bytes);
                now = i128::from(i64::from_be_bytes(be));
            }
        }
    }
    decoder.finish(Time(now));
    renderers.drain(&mut decoder, Time(now));

    let records = renderers.records;
    let [_plain, _tty, json, rawjson, _github] = renderers.all.map(Renderer::into_inner);
    let json_lines = check_json_lines("json", &json);
    assert!(json_lines > 0, "json wrote nothing, not even build_finished");
    let raw_lines = check_json_lines("rawjson", &rawjson);
    assert_eq!(raw_lines, records, "rawjson lines vs Record events");
});

fn take<'a>(rest: &mut &'a [u8], n: usize) -> &'a [u8] {
    let (head, tail) = rest.split_at(n.min(rest.len()));
    *rest = tail;
    head
}

/// `[len_hi, len_lo, bytes…]`; a truncated one takes what is left.
fn take_framed<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let len = take(rest, 2);
    let len = match *len {
        [hi, lo] => usize::from(u16::from_be_bytes([hi, lo])),
        _ => 0,
    };
    take(rest, len)
}

/// Every line of `out` (each ending in `\n`) is one JSON object; returns the line count.
fn check_json_lines(what: &str, out: &[u8]) -> usize {
    if out.is_empty() {
        return 0;
    }
    assert!(out.ends_with(b"\n"), "{what}: output does not end in a newline");
    let mut n = 0;
    for line in out[..out.len() - 1].split(|&b| b == b'\n') {
        match serde_json::from_slice::<serde_json::Value>(line) {
            Ok(serde_json::Value::Object(_)) => n += 1,
            Ok(other) => panic!("{what}: not an object: {other}"),
            Err(e) => panic!("{what}: not JSON ({e}): {}", String::from_utf8_lossy(line)),
        }
    }
    n
}
