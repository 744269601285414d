//! Every `moby.buildkit.trace` record of every recorded daemon stream decodes with
//! `buildkit-proto` and re-encodes to exactly the bytes the daemon sent.

use buildkit_proto::{Message, StatusResponse};
use workspace_tests::corpus;

#[test]
fn every_trace_record_round_trips() {
    let recordings = corpus::all();
    assert_eq!(recordings.len(), 47, "the corpus holds 47 recordings");
    let mut records = 0usize;
    for rec in &recordings {
        for (i, wire) in rec.trace_records().iter().enumerate() {
            let decoded = StatusResponse::decode(wire.clone())
                .unwrap_or_else(|e| panic!("{} record {i}: protobuf: {e}", rec.id()));
            assert_eq!(
                decoded.encode_to_vec(),
                *wire,
                "{} record {i} does not re-encode to the same bytes",
                rec.id()
            );
            records += 1;
        }
    }
    // Every BuildKit recording has trace records; the classic ones have none.
    for rec in &recordings {
        let n = rec.trace_aux().len();
        if rec.name.starts_with("classic-") {
            assert_eq!(n, 0, "{}", rec.id());
        } else {
            assert!(n > 0, "{} has no trace records", rec.id());
        }
    }
    assert!(records > 500, "only {records} records decoded");
}

/// Round-tripping alone cannot catch two fields of the same wire type with swapped numbers, so
/// every record is also decoded by an independent decoder (`bollard-buildkit-proto`, generated
/// from upstream's own `.proto` files) and compared field by field.
#[test]
fn every_trace_record_matches_an_independent_decoder() {
    use bollard_buildkit_proto::moby::buildkit::v1 as theirs;

    fn ts(ours: &Option<buildkit_proto::Timestamp>) -> Option<(i64, i32)> {
        ours.map(|t| (t.seconds, t.nanos))
    }
    fn their_ts(
        t: &Option<bollard_buildkit_proto::google::protobuf::Timestamp>,
    ) -> Option<(i64, i32)> {
        t.as_ref().map(|t| (t.seconds, t.nanos))
    }

    let mut fields_compared = 0usize;
    for rec in corpus::all() {
        for (i, wire) in rec.trace_records().iter().enumerate() {
            let at = format!("{} record {i}", rec.id());
            let a = StatusResponse::decode(wire.clone()).unwrap();
            let b = theirs::StatusResponse::decode(wire.clone()).unwrap();
            assert_eq!(a.vertexes.len(), b.vertexes.len(), "{at}");
            for (x, y) in a.vertexes.iter().zip(&b.vertexes) {
                assert_eq!(x.digest, y.digest, "{at}");
                assert_eq!(x.inputs, y.inputs, "{at}");
                assert_eq!(x.name, y.name, "{at}");
                assert_eq!(x.cached, y.cached, "{at}");
                assert_eq!(ts(&x.started), their_ts(&y.started), "{at}");
                assert_eq!(ts(&x.completed), their_ts(&y.completed), "{at}");
                assert_eq!(x.error, y.error, "{at}");
                let g =
                    |p: &buildkit_proto::pb::ProgressGroup| (p.id.clone(), p.name.clone(), p.weak);
                let h = |p: &bollard_buildkit_proto::pb::ProgressGroup| {
                    (p.id.clone(), p.name.clone(), p.weak)
                };
                assert_eq!(
                    x.progress_group.as_ref().map(g),
                    y.progress_group.as_ref().map(h),
                    "{at}"
                );
                fields_compared += 8;
            }
            assert_eq!(a.statuses.len(), b.statuses.len(), "{at}");
            for (x, y) in a.statuses.iter().zip(&b.statuses) {
                assert_eq!(x.id, y.id, "{at}");
                assert_eq!(x.vertex, y.vertex, "{at}");
                assert_eq!(x.name, y.name, "{at}");
                assert_eq!((x.current, x.total), (y.current, y.total), "{at}");
                assert_eq!(ts(&x.timestamp), their_ts(&y.timestamp), "{at}");
                assert_eq!(ts(&x.started), their_ts(&y.started), "{at}");
                assert_eq!(ts(&x.completed), their_ts(&y.completed), "{at}");
                fields_compared += 8;
            }
            assert_eq!(a.logs.len(), b.logs.len(), "{at}");
            for (x, y) in a.logs.iter().zip(&b.logs) {
                assert_eq!(x.vertex, y.vertex, "{at}");
                assert_eq!(ts(&x.timestamp), their_ts(&y.timestamp), "{at}");
                assert_eq!(x.stream, y.stream, "{at}");
                assert_eq!(x.msg.as_ref(), y.msg.as_slice(), "{at}");
                fields_compared += 4;
            }
            assert_eq!(a.warnings.len(), b.warnings.len(), "{at}");
            for (x, y) in a.warnings.iter().zip(&b.warnings) {
                assert_eq!(x.vertex, y.vertex, "{at}");
                assert_eq!(x.level, y.level, "{at}");
                assert_eq!(x.short.as_ref(), y.short.as_slice(), "{at}");
                let detail: Vec<&[u8]> = x.detail.iter().map(|d| d.as_ref()).collect();
                let their_detail: Vec<&[u8]> = y.detail.iter().map(|d| d.as_slice()).collect();
                assert_eq!(detail, their_detail, "{at}");
                assert_eq!(x.url, y.url, "{at}");
                let (xi, yi) = (x.info.as_ref(), y.info.as_ref());
                assert_eq!(xi.is_some(), yi.is_some(), "{at}");
                if let (Some(xi), Some(yi)) = (xi, yi) {
                    assert_eq!(xi.filename, yi.filename, "{at}");
                    assert_eq!(xi.data.as_ref(), yi.data.as_slice(), "{at}");
                    assert_eq!(xi.language, yi.language, "{at}");
                    // Ours keeps the LLB definition as opaque bytes; theirs decodes it. Decoding
                    // our bytes with their type must give the same definition. (Re-encoding
                    // theirs would not give Go's bytes back: Go writes empty map values that
                    // prost omits.)
                    let ours_decoded = (!xi.definition.is_empty()).then(|| {
                        bollard_buildkit_proto::pb::Definition::decode(xi.definition.clone())
                            .unwrap_or_else(|e| panic!("{at}: definition: {e}"))
                    });
                    assert_eq!(ours_decoded.as_ref(), yi.definition.as_ref(), "{at}");
                }
                let r = |r: &buildkit_proto::pb::Range| {
                    (
                        r.start.map(|p| (p.line, p.character)),
                        r.end.map(|p| (p.line, p.character)),
                    )
                };
                let s = |r: &bollard_buildkit_proto::pb::Range| {
                    (
                        r.start.as_ref().map(|p| (p.line, p.character)),
                        r.end.as_ref().map(|p| (p.line, p.character)),
                    )
                };
                assert_eq!(
                    x.ranges.iter().map(r).collect::<Vec<_>>(),
                    y.ranges.iter().map(s).collect::<Vec<_>>(),
                    "{at}"
                );
                fields_compared += 7;
            }
        }
    }
    assert!(
        fields_compared > 5_000,
        "only {fields_compared} fields compared"
    );
}
