//! The recordings besides a `POST /build` body (`docker_build::recording`), over the whole
//! corpus: buildx rawjson (as `buildkit-progressui`'s writer prints it) parses back to the
//! records it was written from, and a history logs blob of the records gives the events of
//! the body, in any chunking.

use buildkit_proto::pb::Definition;
use buildkit_proto::{Message as _, StatusResponse};
use bytes::Bytes;
use docker_build::recording::{Format, RecordingDecoder, parse_solve_status};
use docker_build::{BuildEvent, DecoderConfig};
use workspace_tests::corpus;

/// A record with each warning's definition decoded: its bytes, re-encoded from JSON, may
/// order map entries differently (prost keeps maps in hash maps).
fn comparable(mut record: StatusResponse) -> (StatusResponse, Vec<Option<Definition>>) {
    let mut definitions = Vec::new();
    for w in &mut record.warnings {
        if let Some(info) = &mut w.info {
            let def = std::mem::take(&mut info.definition);
            definitions.push((!def.is_empty()).then(|| Definition::decode(def).unwrap()));
        }
    }
    (record, definitions)
}

#[test]
fn rawjson_of_every_record_parses_back_to_the_record() {
    let mut records = 0;
    for rec in corpus::buildkit() {
        for (i, wire) in rec.trace_records().into_iter().enumerate() {
            let record = StatusResponse::decode(wire).unwrap();
            let line = buildkit_progressui::rawjson::solve_status_json(&record);
            assert_eq!(Format::detect(line.as_bytes()), Some(Format::RawJson));
            let back = parse_solve_status(line.as_bytes())
                .unwrap_or_else(|e| panic!("{} record {i}: {e}\n{line}", rec.id()));
            assert_eq!(
                comparable(back),
                comparable(record),
                "{} record {i}",
                rec.id()
            );
            records += 1;
        }
    }
    assert!(records > 1000, "{records}");
}

fn blob(records: &[Bytes]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in records {
        out.extend_from_slice(&u32::try_from(r.len()).unwrap().to_le_bytes());
        out.extend_from_slice(r);
    }
    out
}

fn decode(input: &[u8], chunk: usize) -> Vec<BuildEvent> {
    let mut d = RecordingDecoder::with_config(DecoderConfig {
        records: true,
        ..DecoderConfig::default()
    });
    let mut out = Vec::new();
    for piece in input.chunks(chunk) {
        d.push(Bytes::copy_from_slice(piece)).unwrap();
        out.extend(std::iter::from_fn(|| d.poll_event()));
    }
    d.finish().unwrap();
    out.extend(std::iter::from_fn(|| d.poll_event()));
    out
}

/// What the records alone say: records and vertex events.
fn from_records(events: Vec<BuildEvent>) -> Vec<BuildEvent> {
    events
        .into_iter()
        .filter(|e| matches!(e, BuildEvent::Vertex(_) | BuildEvent::Record(_)))
        .collect()
}

#[test]
fn a_blob_of_every_recording_gives_the_events_of_its_body_in_any_chunking() {
    for rec in corpus::buildkit() {
        let body = std::fs::read(&rec.path).unwrap();
        let want = from_records(decode(&body, 64 * 1024));
        let blob = blob(&rec.trace_records());
        assert_eq!(
            Format::detect(&blob),
            Some(Format::HistoryBlob),
            "{}",
            rec.id()
        );
        for chunk in [1 << 20, 4096, 7] {
            if chunk == 7 && blob.len() > 200_000 {
                continue;
            }
            assert_eq!(
                from_records(decode(&blob, chunk)),
                want,
                "{} in {chunk}",
                rec.id()
            );
        }
    }
}
