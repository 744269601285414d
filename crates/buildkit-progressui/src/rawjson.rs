//! `--progress=rawjson`: what `docker buildx build --progress=rawjson` prints.
//!
//! buildx converts each `StatusResponse` into BuildKit's Go `client.SolveStatus` and writes it
//! with `json.Encoder.Encode`: one object per line, Go JSON names (`vertexes`, `statuses`,
//! `logs`, `warnings`, …), `omitempty` fields left out when empty, map keys sorted, times as
//! RFC 3339 in UTC with nanoseconds, byte fields (`data`, `short`, `detail`, …) in base64. This
//! renderer writes the same object for every [`BuildEvent::Record`], so the decoder must be
//! asked for records ([`Mode::wants_records`](crate::Mode::wants_records),
//! `DecoderConfig::records`). Other events (the image id, daemon text, errors) are not part of
//! buildx's output and are not written; a classic-builder build has no trace records, so no
//! output.

use std::io::{self, Write};
use std::sync::Arc;

use buildkit_events::Time;
use buildkit_proto::pb::{Definition, OpMetadata, Position, Range, Source, SourceInfo};
use buildkit_proto::{
    Message as _, StatusResponse, Timestamp, Vertex, VertexLog, VertexStatus, VertexWarning,
};
use docker_build::decode::BuildEvent;

use crate::Render;
use crate::gojson::GoJson;

/// How deep definitions nested in source maps are decoded (each level is decoded separately,
/// so prost's own recursion limit does not bound the nesting); deeper ones are left out.
const MAX_DEFINITION_DEPTH: usize = 32;

/// Writes one JSON line per [`BuildEvent::Record`].
#[derive(Debug)]
pub struct RawJson<W> {
    out: W,
    /// The line being written, reused from one record to the next.
    json: GoJson,
}

impl<W: Write> RawJson<W> {
    /// A renderer writing to `out`.
    pub fn new(out: W) -> Self {
        Self {
            out,
            json: GoJson::new(),
        }
    }

    /// The writer back.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn record(&mut self, record: &Arc<StatusResponse>) -> io::Result<()> {
        self.json.clear();
        write_solve_status(&mut self.json, record);
        self.json.push_raw(b"\n");
        self.out.write_all(self.json.bytes_written())
    }
}

impl<W: Write> Render for RawJson<W> {
    /// The records carry their own times: `now` is not used.
    fn event(&mut self, event: &BuildEvent, _now: Time) -> io::Result<()> {
        match event {
            BuildEvent::Record(record) => self.record(record),
            BuildEvent::Finished(_) => self.out.flush(),
            _ => Ok(()),
        }
    }
}

/// One record as buildx's `rawjson` prints it (without the trailing newline).
///
/// ```
/// use buildkit_progressui::rawjson::solve_status_json;
/// use buildkit_proto::{StatusResponse, Timestamp, Vertex};
///
/// let record = StatusResponse {
///     vertexes: vec![Vertex {
///         digest: "sha256:ab".into(),
///         name: "[1/2] FROM x".into(),
///         started: Some(Timestamp { seconds: 1, nanos: 500 }),
///         ..Default::default()
///     }],
///     ..Default::default()
/// };
/// assert_eq!(
///     solve_status_json(&record),
///     r#"{"vertexes":[{"digest":"sha256:ab","name":"[1/2] FROM x","started":"1970-01-01T00:00:01.0000005Z"}]}"#
/// );
/// ```
pub fn solve_status_json(record: &StatusResponse) -> String {
    let mut j = GoJson::new();
    write_solve_status(&mut j, record);
    String::from_utf8(j.bytes_written().to_vec()).expect("the writer writes UTF-8")
}

/// [`solve_status_json`] into `j`.
fn write_solve_status(j: &mut GoJson, record: &StatusResponse) {
    j.begin_object();
    if !record.vertexes.is_empty() {
        j.key("vertexes");
        j.begin_array();
        for v in &record.vertexes {
            vertex(j, v);
        }
        j.end_array();
    }
    if !record.statuses.is_empty() {
        j.key("statuses");
        j.begin_array();
        for s in &record.statuses {
            status(j, s);
        }
        j.end_array();
    }
    if !record.logs.is_empty() {
        j.key("logs");
        j.begin_array();
        for l in &record.logs {
            log(j, l);
        }
        j.end_array();
    }
    if !record.warnings.is_empty() {
        j.key("warnings");
        j.begin_array();
        for w in &record.warnings {
            warning(j, w);
        }
        j.end_array();
    }
    j.end_object();
}

fn time(j: &mut GoJson, t: &Timestamp) {
    j.time(Time::from(t));
}

fn opt_time(j: &mut GoJson, name: &str, t: &Option<Timestamp>) {
    if let Some(t) = t {
        j.key(name);
        time(j, t);
    }
}

/// A non-pointer `time.Time`: a missing protobuf timestamp is the Unix epoch (`AsTime` of nil).
fn req_time(j: &mut GoJson, name: &str, t: &Option<Timestamp>) {
    j.key(name);
    time(j, &t.unwrap_or_default());
}

fn opt_string(j: &mut GoJson, name: &str, s: &str) {
    if !s.is_empty() {
        j.key(name);
        j.string(s);
    }
}

fn opt_bytes(j: &mut GoJson, name: &str, b: &[u8]) {
    if !b.is_empty() {
        j.key(name);
        j.bytes(b);
    }
}

fn opt_int(j: &mut GoJson, name: &str, n: i64) {
    if n != 0 {
        j.key(name);
        j.int(n);
    }
}

fn opt_bool(j: &mut GoJson, name: &str, b: bool) {
    if b {
        j.key(name);
        j.bool(true);
    }
}

fn vertex(j: &mut GoJson, v: &Vertex) {
    j.begin_object();
    opt_string(j, "digest", &v.digest);
    if !v.inputs.is_empty() {
        j.key("inputs");
        j.begin_array();
        for input in &v.inputs {
            j.string(input);
        }
        j.end_array();
    }
    opt_string(j, "name", &v.name);
    opt_time(j, "started", &v.started);
    opt_time(j, "completed", &v.completed);
    opt_bool(j, "cached", v.cached);
    opt_string(j, "error", &v.error);
    if let Some(group) = &v.progress_group {
        j.key("progressGroup");
        progress_group(j, &group.id, &group.name, group.weak);
    }
    j.end_object();
}

fn progress_group(j: &mut GoJson, id: &str, name: &str, weak: bool) {
    j.begin_object();
    opt_string(j, "id", id);
    opt_string(j, "name", name);
    opt_bool(j, "weak", weak);
    j.end_object();
}

fn status(j: &mut GoJson, s: &VertexStatus) {
    j.begin_object();
    j.key("id");
    j.string(&s.id);
    opt_string(j, "vertex", &s.vertex);
    opt_string(j, "name", &s.name);
    opt_int(j, "total", s.total);
    j.key("current");
    j.int(s.current);
    req_time(j, "timestamp", &s.timestamp);
    opt_time(j, "started", &s.started);
    opt_time(j, "completed", &s.completed);
    j.end_object();
}

fn log(j: &mut GoJson, l: &VertexLog) {
    j.begin_object();
    opt_string(j, "vertex", &l.vertex);
    opt_int(j, "stream", l.stream);
    j.key("data");
    j.bytes(&l.msg);
    req_time(j, "timestamp", &l.timestamp);
    j.end_object();
}

fn warning(j: &mut GoJson, w: &VertexWarning) {
    j.begin_object();
    opt_string(j, "vertex", &w.vertex);
    opt_int(j, "level", w.level);
    opt_bytes(j, "short", &w.short);
    if !w.detail.is_empty() {
        j.key("detail");
        j.begin_array();
        for d in &w.detail {
            j.bytes(d);
        }
        j.end_array();
    }
    opt_string(j, "url", &w.url);
    if let Some(info) = &w.info {
        j.key("sourceInfo");
        source_info(j, info, 0);
    }
    if !w.ranges.is_empty() {
        j.key("range");
        ranges(j, &w.ranges);
    }
    j.end_object();
}

fn source_info(j: &mut GoJson, info: &SourceInfo, depth: usize) {
    j.begin_object();
    opt_string(j, "filename", &info.filename);
    opt_bytes(j, "data", &info.data);
    if !info.definition.is_empty() && depth < MAX_DEFINITION_DEPTH {
        // Kept as opaque bytes by buildkit-proto; decoded here to print it as Go does. A
        // definition that does not decode is left out rather than guessed.
        if let Ok(def) = Definition::decode(info.definition.clone()) {
            j.key("definition");
            definition(j, &def, depth + 1);
        }
    }
    opt_string(j, "language", &info.language);
    j.end_object();
}

/// The entries of a protobuf map in the order Go's `encoding/json` writes them: by key.
fn sorted<V>(map: &std::collections::HashMap<String, V>) -> Vec<(&String, &V)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    entries
}

fn ranges(j: &mut GoJson, ranges: &[Range]) {
    j.begin_array();
    for r in ranges {
        j.begin_object();
        if let Some(p) = &r.start {
            j.key("start");
            position(j, p);
        }
        if let Some(p) = &r.end {
            j.key("end");
            position(j, p);
        }
        j.end_object();
    }
    j.end_array();
}

fn position(j: &mut GoJson, p: &Position) {
    j.begin_object();
    opt_int(j, "line", i64::from(p.line));
    opt_int(j, "character", i64::from(p.character));
    j.end_object();
}

fn definition(j: &mut GoJson, d: &Definition, depth: usize) {
    j.begin_object();
    if !d.def.is_empty() {
        j.key("def");
        j.begin_array();
        for op in &d.def {
            j.bytes(op);
        }
        j.end_array();
    }
    if !d.metadata.is_empty() {
        j.key("metadata");
        j.begin_object();
        for (digest, meta) in sorted(&d.metadata) {
            j.key(digest);
            op_metadata(j, meta);
        }
        j.end_object();
    }
    if let Some(s) = &d.source {
        j.key("Source");
        source(j, s, depth);
    }
    j.end_object();
}

fn source(j: &mut GoJson, source: &Source, depth: usize) {
    j.begin_object();
    if !source.locations.is_empty() {
        j.key("locations");
        j.begin_object();
        for (digest, locations) in sorted(&source.locations) {
            j.key(digest);
            j.begin_object();
            if !locations.locations.is_empty() {
                j.key("locations");
                j.begin_array();
                for l in &locations.locations {
                    j.begin_object();
                    opt_int(j, "sourceIndex", i64::from(l.source_index));
                    if !l.ranges.is_empty() {
                        j.key("ranges");
                        ranges(j, &l.ranges);
                    }
                    j.end_object();
                }
                j.end_array();
            }
            j.end_object();
        }
        j.end_object();
    }
    if !source.infos.is_empty() {
        j.key("infos");
        j.begin_array();
        for info in &source.infos {
            source_info(j, info, depth);
        }
        j.end_array();
    }
    j.end_object();
}

fn op_metadata(j: &mut GoJson, m: &OpMetadata) {
    j.begin_object();
    opt_bool(j, "ignore_cache", m.ignore_cache);
    if !m.description.is_empty() {
        j.key("description");
        j.begin_object();
        for (k, v) in sorted(&m.description) {
            j.key(k);
            j.string(v);
        }
        j.end_object();
    }
    if let Some(e) = &m.export_cache {
        j.key("export_cache");
        j.begin_object();
        opt_bool(j, "Value", e.value);
        j.end_object();
    }
    if !m.caps.is_empty() {
        j.key("caps");
        j.begin_object();
        for (k, v) in sorted(&m.caps) {
            j.key(k);
            j.bool(*v);
        }
        j.end_object();
    }
    if let Some(g) = &m.progress_group {
        j.key("progress_group");
        progress_group(j, &g.id, &g.name, g.weak);
    }
    if let Some(r) = &m.linux_resources {
        j.key("linux_resources");
        j.begin_object();
        opt_int(j, "memory", r.memory);
        opt_int(j, "memorySwap", r.memory_swap);
        if r.cpu_shares != 0 {
            j.key("cpuShares");
            j.raw(&r.cpu_shares.to_string());
        }
        if r.cpu_period != 0 {
            j.key("cpuPeriod");
            j.raw(&r.cpu_period.to_string());
        }
        opt_int(j, "cpuQuota", r.cpu_quota);
        opt_string(j, "cpusetCpus", &r.cpuset_cpus);
        opt_string(j, "cpusetMems", &r.cpuset_mems);
        j.end_object();
    }
    j.end_object();
}

#[cfg(test)]
mod tests {
    use super::*;
    use buildkit_proto::pb::{Location, Locations, ProgressGroup};
    use bytes::Bytes;

    #[test]
    fn statuses_keep_current_and_timestamp_and_omit_empty_fields() {
        let record = StatusResponse {
            statuses: vec![VertexStatus {
                id: "exporting layers".into(),
                vertex: "sha256:v".into(),
                current: 0,
                timestamp: Some(Timestamp {
                    seconds: 2,
                    nanos: 0,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(
            solve_status_json(&record),
            r#"{"statuses":[{"id":"exporting layers","vertex":"sha256:v","current":0,"timestamp":"1970-01-01T00:00:02Z"}]}"#
        );
    }

    #[test]
    fn logs_are_base64_with_stream_and_epoch_for_a_missing_timestamp() {
        let record = StatusResponse {
            logs: vec![VertexLog {
                vertex: "sha256:v".into(),
                stream: 2,
                msg: Bytes::from_static(b"to-stderr\n"),
                timestamp: None,
            }],
            ..Default::default()
        };
        assert_eq!(
            solve_status_json(&record),
            r#"{"logs":[{"vertex":"sha256:v","stream":2,"data":"dG8tc3RkZXJyCg==","timestamp":"1970-01-01T00:00:00Z"}]}"#
        );
    }

    #[test]
    fn warnings_carry_source_info_with_the_decoded_definition_and_ranges() {
        let meta = [(
            "sha256:op".to_string(),
            OpMetadata {
                caps: [("source.image".to_string(), true)].into_iter().collect(),
                ..Default::default()
            },
        )];
        let def = Definition {
            def: vec![Bytes::from_static(b"op")],
            metadata: meta.into_iter().collect(),
            source: None,
        };
        let record = StatusResponse {
            warnings: vec![VertexWarning {
                vertex: "sha256:v".into(),
                level: 1,
                short: Bytes::from_static(
                    b"FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 5)",
                ),
                detail: vec![Bytes::from_static(b"d")],
                url: "https://docs.docker.com/go/dockerfile/rule/from-as-casing/".into(),
                info: Some(SourceInfo {
                    filename: "Dockerfile".into(),
                    data: Bytes::from_static(b"FROM x\n"),
                    definition: Bytes::from(def.encode_to_vec()),
                    language: "Dockerfile".into(),
                }),
                ranges: vec![Range {
                    start: Some(Position {
                        line: 5,
                        character: 0,
                    }),
                    end: Some(Position {
                        line: 5,
                        character: 0,
                    }),
                }],
            }],
            ..Default::default()
        };
        let json = solve_status_json(&record);
        assert_eq!(
            json,
            concat!(
                r#"{"warnings":[{"vertex":"sha256:v","level":1,"#,
                r#""short":"RnJvbUFzQ2FzaW5nOiAnYXMnIGFuZCAnRlJPTScga2V5d29yZHMnIGNhc2luZyBkbyBub3QgbWF0Y2ggKGxpbmUgNSk=","#,
                r#""detail":["ZA=="],"url":"https://docs.docker.com/go/dockerfile/rule/from-as-casing/","#,
                r#""sourceInfo":{"filename":"Dockerfile","data":"RlJPTSB4Cg==","#,
                r#""definition":{"def":["b3A="],"metadata":{"sha256:op":{"caps":{"source.image":true}}}},"#,
                r#""language":"Dockerfile"},"range":[{"start":{"line":5},"end":{"line":5}}]}]}"#
            )
        );
        // The output is valid JSON.
        serde_json::from_str::<serde_json::Value>(&json).unwrap();
    }

    #[test]
    fn body_lines_other_than_trace_records_are_not_printed() {
        use docker_build::decode::{BuildDecoder, DecoderConfig};

        let record = StatusResponse {
            vertexes: vec![Vertex {
                digest: "sha256:a".into(),
                name: "exporting to image".into(),
                cached: true,
                error: "x <y>".into(),
                progress_group: Some(ProgressGroup {
                    id: "g".into(),
                    name: String::new(),
                    weak: true,
                }),
                ..Default::default()
            }],
            ..Default::default()
        };
        let mut body = workspace_tests::body::trace_line(&record);
        body.extend_from_slice(b"{\"id\":\"moby.image.id\",\"aux\":{\"ID\":\"sha256:i\"}}\r\n{\"stream\":\"x\\n\"}\r\n");
        let mut decoder = BuildDecoder::with_config(DecoderConfig {
            records: true,
            ..DecoderConfig::default()
        });
        let mut raw = RawJson::new(Vec::new());
        // Split in the middle of the trace line.
        for piece in [&body[..20], &body[20..]] {
            decoder.push(Bytes::copy_from_slice(piece), Time(0));
            while let Some(event) = decoder.poll_event() {
                raw.event(&event, Time(0)).unwrap();
            }
        }
        decoder.finish(Time(0));
        while let Some(event) = decoder.poll_event() {
            raw.event(&event, Time(0)).unwrap();
        }
        assert_eq!(
            String::from_utf8(raw.into_inner()).unwrap(),
            "{\"vertexes\":[{\"digest\":\"sha256:a\",\"name\":\"exporting to image\",\"cached\":true,\"error\":\"x \\u003cy\\u003e\",\"progressGroup\":{\"id\":\"g\",\"weak\":true}}]}\n"
        );
    }

    /// A warning whose source info holds `def`.
    fn warning_with(def: &Definition) -> StatusResponse {
        StatusResponse {
            warnings: vec![VertexWarning {
                info: Some(SourceInfo {
                    definition: Bytes::from(def.encode_to_vec()),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn map_keys_are_sorted_as_go_writes_them() {
        let def = Definition {
            metadata: ["b", "a", "c"]
                .into_iter()
                .map(|k| {
                    let meta = OpMetadata {
                        description: [("z", "1"), ("y", "2")]
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                        ..Default::default()
                    };
                    (k.to_string(), meta)
                })
                .collect(),
            source: Some(Source {
                locations: [("d2", 1), ("d1", 0)]
                    .into_iter()
                    .map(|(k, i)| {
                        let location = Location {
                            source_index: i,
                            ranges: Vec::new(),
                        };
                        (
                            k.to_string(),
                            Locations {
                                locations: vec![location],
                            },
                        )
                    })
                    .collect(),
                infos: vec![SourceInfo {
                    filename: "Dockerfile".into(),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        };
        let json = solve_status_json(&warning_with(&def));
        let meta = r#"{"description":{"y":"2","z":"1"}}"#;
        assert_eq!(
            json,
            format!(
                concat!(
                    r#"{{"warnings":[{{"sourceInfo":{{"definition":{{"metadata":{{"a":{m},"b":{m},"c":{m}}},"#,
                    r#""Source":{{"locations":{{"d1":{{"locations":[{{}}]}},"d2":{{"locations":[{{"sourceIndex":1}}]}}}},"#,
                    r#""infos":[{{"filename":"Dockerfile"}}]}}}}}}}}]}}"#
                ),
                m = meta
            )
        );
    }

    #[test]
    fn nested_definitions_are_printed_to_a_bounded_depth() {
        let mut def = Definition {
            def: vec![Bytes::from_static(b"x")],
            ..Default::default()
        };
        for _ in 0..100 {
            def = Definition {
                source: Some(Source {
                    infos: vec![SourceInfo {
                        definition: Bytes::from(def.encode_to_vec()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
        }
        let json = solve_status_json(&warning_with(&def));
        assert_eq!(json.matches("\"definition\"").count(), MAX_DEFINITION_DEPTH);
        assert_eq!(json.matches('{').count(), json.matches('}').count());
        assert!(!json.contains("\"def\""), "the innermost one is too deep");
    }
}
