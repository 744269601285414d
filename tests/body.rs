//! `POST /build` response bodies: writing BuildKit records as the daemon's NDJSON lines, and
//! decoding whole bodies into [`BuildEvent`]s with [`BuildDecoder`] (the decoder live builds
//! and replays use), in any chunking.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use buildkit_events::Time;
use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;
use docker_build::decode::{BuildDecoder, BuildEvent};

/// `{"id":"moby.buildkit.trace","aux":"`: what the daemon writes before a record's base64.
pub const TRACE_PREFIX: &[u8] = br#"{"id":"moby.buildkit.trace","aux":""#;

/// What the daemon writes after a record's base64: `"}` and the line end `\r\n`.
pub const TRACE_SUFFIX: &[u8] = b"\"}\r\n";

/// The daemon's line for one record: `{"id":"moby.buildkit.trace","aux":"<base64>"}\r\n`.
pub fn trace_line(record: &StatusResponse) -> Vec<u8> {
    let mut out = Vec::new();
    push_trace_line(&mut out, record);
    out
}

/// Appends [`trace_line`]`(record)` to `out`.
pub fn push_trace_line(out: &mut Vec<u8>, record: &StatusResponse) {
    push_trace_aux(out, &record.encode_to_vec());
}

/// Appends the daemon's line for the protobuf bytes `wire`, which need not be a valid record:
/// [`TRACE_PREFIX`], the standard padded base64 of `wire`, [`TRACE_SUFFIX`]. Encodes in place,
/// without a temporary string (the benchmarks build 100 MB bodies with it).
pub fn push_trace_aux(out: &mut Vec<u8>, wire: &[u8]) {
    out.extend_from_slice(TRACE_PREFIX);
    let start = out.len();
    let len = base64::encoded_len(wire.len(), true).expect("the base64 length fits in usize");
    out.resize(start + len, 0);
    let written = STANDARD
        .encode_slice(wire, &mut out[start..])
        .expect("the buffer has the encoded length");
    out.truncate(start + written);
    out.extend_from_slice(TRACE_SUFFIX);
}

/// The protobuf bytes of a trace line's `aux` string (standard padded base64).
pub fn decode_aux(aux: impl AsRef<[u8]>) -> Result<Bytes, base64::DecodeError> {
    STANDARD.decode(aux).map(Bytes::from)
}

/// The JSON values of an NDJSON body, framed on `\n` with a trailing `\r` removed and empty
/// lines skipped. Panics, naming the line, if one is not JSON.
pub fn json_lines(body: &[u8]) -> Vec<serde_json::Value> {
    body.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(line)))
        })
        .collect()
}

/// `data` cut into chunks of `size` bytes (at least 1; the last may be shorter). The chunks
/// share `data`'s buffer.
pub fn chunked(data: &Bytes, size: usize) -> Vec<Bytes> {
    let size = size.max(1);
    let mut out = Vec::with_capacity(data.len() / size + 1);
    let mut at = 0;
    while at < data.len() {
        let end = at.saturating_add(size).min(data.len());
        out.push(data.slice(at..end));
        at = end;
    }
    out
}

/// Pushes every chunk into `decoder` (arrival time `Time(0)`), handing the events it queues
/// to `out` after each chunk.
///
/// `out` is usually a `Vec<BuildEvent>`; anything that extends from events will do (the
/// benchmarks count them instead of keeping them).
pub fn push_chunks(
    decoder: &mut BuildDecoder,
    chunks: impl IntoIterator<Item = Bytes>,
    out: &mut impl Extend<BuildEvent>,
) {
    for chunk in chunks {
        decoder.push(chunk, Time(0));
        drain(decoder, out);
    }
}

/// [`push_chunks`] of `body` in chunks of at most `chunk` bytes.
pub fn push_chunked(
    decoder: &mut BuildDecoder,
    body: &[u8],
    chunk: usize,
    out: &mut impl Extend<BuildEvent>,
) {
    push_chunks(decoder, chunked(&Bytes::copy_from_slice(body), chunk), out);
}

/// Hands every event `decoder` has queued to `out`.
pub fn drain(decoder: &mut BuildDecoder, out: &mut impl Extend<BuildEvent>) {
    out.extend(std::iter::from_fn(|| decoder.poll_event()));
}

/// Ends the body (at `Time(0)`) and hands the remaining events, `Finished` last, to `out`.
pub fn finish(decoder: &mut BuildDecoder, out: &mut impl Extend<BuildEvent>) {
    decoder.finish(Time(0));
    drain(decoder, out);
}

/// Every event of a whole body, decoded by a default [`BuildDecoder`] fed chunks of at most
/// `chunk` bytes (`usize::MAX`: the body in one chunk); `Finished` is the last.
pub fn decode_body(body: &[u8], chunk: usize) -> Vec<BuildEvent> {
    decode_chunks(
        BuildDecoder::new(),
        chunked(&Bytes::copy_from_slice(body), chunk),
    )
}

/// Every event of the body made of `chunks`, decoded by `decoder`; `Finished` is the last.
pub fn decode_chunks(
    mut decoder: BuildDecoder,
    chunks: impl IntoIterator<Item = Bytes>,
) -> Vec<BuildEvent> {
    let mut events = Vec::new();
    push_chunks(&mut decoder, chunks, &mut events);
    finish(&mut decoder, &mut events);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_line_decodes_back_to_its_record() {
        let record = StatusResponse {
            vertexes: vec![buildkit_proto::Vertex {
                digest: "sha256:abc".into(),
                name: "step".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let line = trace_line(&record);
        assert!(line.starts_with(TRACE_PREFIX) && line.ends_with(TRACE_SUFFIX));
        let aux = &line[TRACE_PREFIX.len()..line.len() - TRACE_SUFFIX.len()];
        let wire = decode_aux(aux).unwrap();
        assert_eq!(StatusResponse::decode(wire).unwrap(), record);
        let json = json_lines(&line);
        assert_eq!(json.len(), 1);
        assert_eq!(json[0]["id"], "moby.buildkit.trace");

        let mut empty = Vec::new();
        push_trace_aux(&mut empty, b"");
        assert_eq!(empty, b"{\"id\":\"moby.buildkit.trace\",\"aux\":\"\"}\r\n");
    }

    #[test]
    fn chunks_cover_the_data_in_order() {
        let data = Bytes::from_static(b"0123456789");
        let sizes = |size| {
            chunked(&data, size)
                .iter()
                .map(Bytes::len)
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes(4), [4, 4, 2]);
        assert_eq!(sizes(0), [1; 10]);
        assert_eq!(sizes(usize::MAX), [10]);
        assert!(chunked(&Bytes::new(), 3).is_empty());
    }

    #[test]
    fn an_empty_body_finishes() {
        let events = decode_body(b"", usize::MAX);
        assert!(matches!(events.as_slice(), [BuildEvent::Finished(_)]));
    }
}
