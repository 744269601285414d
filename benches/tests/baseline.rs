//! The seed-style baseline (`benchmarks::baseline`) is a fair stand-in for our decoder: on the
//! corpus stream it emits as many vertex starts, completions and log lines as ours.

use benchmarks::baseline::{Style, baseline};
use benchmarks::{CHUNK, TrackStats, chunked, corpus_stream, decode_and_track};
use buildkit_events::Event;
use docker_build::decode::BuildEvent;

/// Our decoder's vertex events, by kind.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    started: u64,
    completed: u64,
    logs: u64,
}

impl Extend<BuildEvent> for Counts {
    fn extend<I: IntoIterator<Item = BuildEvent>>(&mut self, events: I) {
        for event in events {
            match event {
                BuildEvent::Vertex(Event::Started(_)) => self.started += 1,
                BuildEvent::Vertex(Event::Completed(_)) => self.completed += 1,
                BuildEvent::Vertex(Event::Log(_)) => self.logs += 1,
                _ => {}
            }
        }
    }
}

fn ours(chunks: &[bytes::Bytes]) -> Counts {
    let mut counts = Counts::default();
    let mut decoder = docker_build::decode::BuildDecoder::new();
    workspace_tests::body::push_chunks(&mut decoder, chunks.iter().cloned(), &mut counts);
    workspace_tests::body::finish(&mut decoder, &mut counts);
    counts
}

#[test]
fn the_baseline_emits_as_many_vertex_and_log_events_as_ours() {
    // One pass of the corpus, then three (digests repeat: restarts and stale snapshots).
    for target in [1, 4_000_000] {
        let data = corpus_stream(target);
        let chunks = chunked(&data, CHUNK);
        let (stats, out) = baseline(&chunks, Style::Value, Vec::new());
        let (derived, out_derived) = baseline(&chunks, Style::Derive, Vec::new());
        assert_eq!(derived, stats);
        assert_eq!(out_derived.len(), out.len());
        let ours = ours(&chunks);
        let theirs = Counts {
            started: stats.started,
            completed: stats.completed,
            logs: stats.logs,
        };
        assert_eq!(theirs, ours, "{} bytes: {stats:?}", data.len());
        assert_eq!(stats.errors, 0);
        // Every line is one JSON object.
        let text = String::from_utf8(out).unwrap();
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v["type"].is_string(), "{line}");
        }
        let tracked: TrackStats = decode_and_track(&chunks);
        assert_eq!(tracked.log_lines, stats.logs);
    }
}
