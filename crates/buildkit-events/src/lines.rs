//! Splitting one (vertex, stream) byte stream into lines, carrying partial lines across chunks.

use bytes::Bytes;

use crate::event::{LineEnd, Time};

/// One piece produced by [`LineBuf`]: the bytes, how they ended, the timestamp of the chunk
/// the piece began in, and whether it is a whole line (not a piece of a split one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Piece {
    pub(crate) bytes: Bytes,
    pub(crate) end: LineEnd,
    pub(crate) timestamp: Time,
    pub(crate) whole_line: bool,
}

/// The line-splitting state of one (vertex, stream).
///
/// Invariants: `partial.len() <= max` (the configured bound, at least 1); `partial` is
/// non-empty iff a line has started but neither ended nor been flushed.
#[derive(Debug, Clone, Default)]
pub(crate) struct LineBuf {
    partial: Vec<u8>,
    partial_ts: Time,
    /// The line being assembled has already produced a [`LineEnd::Split`] piece.
    continued: bool,
}

impl LineBuf {
    /// Feeds one chunk. A line that lies wholly inside `chunk` comes out as a slice of it;
    /// only the unterminated tail is copied into the buffer.
    ///
    /// Pieces depend only on the concatenated bytes, never on where chunks begin or end:
    /// a line longer than `max` is cut every `max` bytes, and a cut is made only once a
    /// byte beyond it is known, so the last piece of a line is never empty.
    pub(crate) fn feed(&mut self, chunk: Bytes, ts: Time, max: usize, out: &mut Vec<Piece>) {
        let max = max.max(1);
        let mut rest = chunk;
        while !rest.is_empty() {
            let newline = memchr::memchr(b'\n', &rest);
            let seg_len = newline.unwrap_or(rest.len());
            let mut seg = rest.slice(..seg_len);
            rest = match newline {
                Some(i) => rest.slice(i + 1..),
                None => Bytes::new(),
            };

            if !self.partial.is_empty() {
                if self.partial.len() + seg.len() > max {
                    let take = max - self.partial.len();
                    self.partial.extend_from_slice(&seg[..take]);
                    let _ = seg.split_to(take);
                    let bytes = Bytes::from(std::mem::take(&mut self.partial));
                    self.push(out, bytes, LineEnd::Split, self.partial_ts);
                } else {
                    self.partial.extend_from_slice(&seg);
                    if newline.is_some() {
                        let bytes = Bytes::from(std::mem::take(&mut self.partial));
                        self.push(out, bytes, LineEnd::Newline, self.partial_ts);
                    }
                    continue;
                }
            }

            // The buffer is empty: what is left of the segment begins in this chunk.
            while seg.len() > max {
                let piece = seg.split_to(max);
                self.push(out, piece, LineEnd::Split, ts);
            }
            if newline.is_some() {
                self.push(out, seg, LineEnd::Newline, ts);
            } else if !seg.is_empty() {
                self.partial.extend_from_slice(&seg);
                self.partial_ts = ts;
            }
        }
    }

    /// Emits the pending partial line, if any, as [`LineEnd::Unterminated`].
    pub(crate) fn flush(&mut self, out: &mut Vec<Piece>) {
        if !self.partial.is_empty() {
            let bytes = Bytes::from(std::mem::take(&mut self.partial));
            self.push(out, bytes, LineEnd::Unterminated, self.partial_ts);
        }
    }

    fn push(&mut self, out: &mut Vec<Piece>, bytes: Bytes, end: LineEnd, timestamp: Time) {
        let whole_line = !self.continued && end != LineEnd::Split;
        self.continued = end == LineEnd::Split;
        out.push(Piece {
            bytes,
            end,
            timestamp,
            whole_line,
        });
    }
}

/// Whether a whole line is BuildKit's clip notice, e.g.
/// `[output clipped, log limit 200KiB/s reached]` or `[output clipped, log limit 2MiB reached]`
/// (`util/progress/logs/logs.go`; the limit is printed with `%#g` of binary units, so other
/// configured limits only change the middle).
pub(crate) fn is_clip_notice(line: &[u8]) -> bool {
    const PREFIX: &[u8] = b"[output clipped, log limit ";
    const SUFFIX: &[u8] = b" reached]";
    line.len() <= 128 && line.starts_with(PREFIX) && line[PREFIX.len()..].ends_with(SUFFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize, flush: bool) -> Vec<(Vec<u8>, LineEnd, i128, bool)> {
        let mut buf = LineBuf::default();
        let mut out = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            buf.feed(Bytes::copy_from_slice(c), Time(i as i128), max, &mut out);
        }
        if flush {
            buf.flush(&mut out);
        }
        out.into_iter()
            .map(|p| (p.bytes.to_vec(), p.end, p.timestamp.0, p.whole_line))
            .collect()
    }

    #[test]
    fn splits_on_newlines_and_keeps_empty_lines() {
        let got = run(&[b"a\n\nb\n"], 100, true);
        assert_eq!(
            got,
            vec![
                (b"a".to_vec(), LineEnd::Newline, 0, true),
                (b"".to_vec(), LineEnd::Newline, 0, true),
                (b"b".to_vec(), LineEnd::Newline, 0, true),
            ]
        );
    }

    #[test]
    fn partial_line_joins_next_chunk_and_keeps_first_timestamp() {
        let got = run(&[b"no-trailing", b"\r50%\n", b"x"], 100, true);
        assert_eq!(
            got,
            vec![
                (b"no-trailing\r50%".to_vec(), LineEnd::Newline, 0, true),
                (b"x".to_vec(), LineEnd::Unterminated, 2, true),
            ]
        );
    }

    #[test]
    fn long_line_is_cut_every_max_bytes() {
        let got = run(&[b"abcdefg\n"], 3, true);
        let ends: Vec<_> = got.iter().map(|p| (p.0.clone(), p.1, p.3)).collect();
        assert_eq!(
            ends,
            vec![
                (b"abc".to_vec(), LineEnd::Split, false),
                (b"def".to_vec(), LineEnd::Split, false),
                (b"g".to_vec(), LineEnd::Newline, false),
            ]
        );
    }

    #[test]
    fn line_of_exactly_max_bytes_is_not_cut() {
        for chunks in [
            &[&b"abc\n"[..]][..],
            &[b"ab", b"c", b"\n"],
            &[b"abc", b"\n"],
        ] {
            let got = run(chunks, 3, true);
            assert_eq!(got.len(), 1, "{chunks:?}");
            assert_eq!(got[0].0, b"abc");
            assert_eq!(got[0].1, LineEnd::Newline);
            assert!(got[0].3);
        }
    }

    #[test]
    fn cuts_do_not_depend_on_chunking() {
        let whole = run(&[b"abcdefgh\nij"], 3, true);
        let bytewise: Vec<&[u8]> = b"abcdefgh\nij".chunks(1).collect();
        assert_eq!(
            run(&bytewise, 3, true)
                .into_iter()
                .map(|p| (p.0, p.1))
                .collect::<Vec<_>>(),
            whole.into_iter().map(|p| (p.0, p.1)).collect::<Vec<_>>()
        );
    }

    #[test]
    fn buffered_bytes_never_exceed_the_bound() {
        let mut buf = LineBuf::default();
        let mut out = Vec::new();
        for _ in 0..100 {
            buf.feed(Bytes::from_static(b"xxxxxxx"), Time(0), 10, &mut out);
            assert!(buf.partial.len() <= 10);
        }
        assert!(
            out.iter()
                .all(|p| p.bytes.len() == 10 && p.end == LineEnd::Split)
        );
    }

    #[test]
    fn whole_lines_inside_a_chunk_are_slices_of_it() {
        let chunk = Bytes::from_static(b"one\ntwo\nthr");
        let mut buf = LineBuf::default();
        let mut out = Vec::new();
        buf.feed(chunk.clone(), Time(0), 100, &mut out);
        let range = chunk.as_ptr_range();
        for p in &out {
            assert!(
                range.contains(&p.bytes.as_ptr()),
                "{:?} was copied",
                p.bytes
            );
        }
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn flush_without_partial_emits_nothing() {
        assert!(run(&[b"done\n"], 10, true).len() == 1);
        assert!(run(&[], 10, true).is_empty());
    }

    #[test]
    fn recognises_clip_notices() {
        assert!(is_clip_notice(
            b"[output clipped, log limit 200KiB/s reached]"
        ));
        assert!(is_clip_notice(b"[output clipped, log limit 2MiB reached]"));
        assert!(is_clip_notice(
            b"[output clipped, log limit 1.5MiB reached]"
        ));
        assert!(!is_clip_notice(
            b"[output clipped, log limit 2MiB reached] extra"
        ));
        assert!(!is_clip_notice(b"output clipped"));
    }
}
