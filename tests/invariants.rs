//! The invariants every event sequence keeps, whatever the input (ARCHITECTURE.md,
//! `buildkit-events`): per digest every `Completed` follows a `Started` of the same interval
//! and no vertex starts twice without a `Completed` between ([`check_pairing`]); the log bytes
//! of every (vertex, stream) come out exactly as the records carried them
//! ([`check_lossless_logs`]).
//!
//! The checks return `Err(reason)` rather than panic, so property tests can hand the reason to
//! proptest; `unwrap` them elsewhere. They read events through [`EventView`], implemented here
//! for [`buildkit_events::Event`] and [`docker_build::BuildEvent`]. (The unit tests of
//! `buildkit-events` see their crate's `Event` as a type of its own and implement the trait for
//! it.)

use std::collections::{BTreeMap, HashMap};

use buildkit_events::{Event, LineEnd};
use buildkit_proto::StatusResponse;
use docker_build::BuildEvent;

/// What the checks need to know of one event. Times are nanoseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View<'a> {
    /// A vertex interval started.
    Started {
        digest: &'a str,
        interval: u32,
        started: i128,
    },
    /// A vertex interval ended.
    Completed {
        digest: &'a str,
        interval: u32,
        started: i128,
        completed: i128,
    },
    /// A piece of a log line; `newline`: it ended with a `\n` (not given in `bytes`).
    Log {
        digest: &'a str,
        stream: i64,
        bytes: &'a [u8],
        newline: bool,
    },
    /// The body ended (`BuildEvent::Finished`): nothing may be left running.
    Finished,
    /// Anything else.
    Other,
}

/// An event the checks can read.
pub trait EventView {
    fn view(&self) -> View<'_>;
}

impl EventView for Event {
    fn view(&self) -> View<'_> {
        match self {
            Event::Started(s) => View::Started {
                digest: &s.digest,
                interval: s.interval,
                started: s.started.0,
            },
            Event::Completed(c) => View::Completed {
                digest: &c.digest,
                interval: c.interval,
                started: c.started.0,
                completed: c.completed.0,
            },
            Event::Log(l) => View::Log {
                digest: &l.digest,
                stream: l.stream.number(),
                bytes: &l.bytes,
                newline: l.end == LineEnd::Newline,
            },
            _ => View::Other,
        }
    }
}

impl EventView for BuildEvent {
    fn view(&self) -> View<'_> {
        match self {
            BuildEvent::Vertex(e) => e.view(),
            BuildEvent::Finished(_) => View::Finished,
            _ => View::Other,
        }
    }
}

/// What [`check_pairing`] found besides the invariant holding.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pairing {
    /// Digests started and not completed at the end, sorted.
    pub running: Vec<String>,
    /// How many distinct digests started at least once.
    pub started: usize,
}

/// Checks the pairing invariant: per digest, intervals start numbered 0, 1, 2, …; a digest
/// never starts while it runs; each `Completed` ends the running interval (same number and
/// start time) no earlier than it started; nothing runs at a `Finished`.
pub fn check_pairing<'a, E: EventView + 'a>(
    events: impl IntoIterator<Item = &'a E>,
) -> Result<Pairing, String> {
    let mut open: BTreeMap<&str, (u32, i128)> = BTreeMap::new();
    let mut next: HashMap<&str, u32> = HashMap::new();
    for (i, event) in events.into_iter().enumerate() {
        match event.view() {
            View::Started {
                digest,
                interval,
                started,
            } => {
                if open.contains_key(digest) {
                    return Err(format!("event {i}: {digest} started twice"));
                }
                let want = next.entry(digest).or_insert(0);
                if interval != *want {
                    return Err(format!(
                        "event {i}: {digest} started interval {interval}, not {want}"
                    ));
                }
                *want += 1;
                open.insert(digest, (interval, started));
            }
            View::Completed {
                digest,
                interval,
                started,
                completed,
            } => {
                let Some(running) = open.remove(digest) else {
                    return Err(format!("event {i}: {digest} completed without a start"));
                };
                if (interval, started) != running {
                    return Err(format!(
                        "event {i}: {digest} completed interval {interval} started at \
                         {started}, but {running:?} runs"
                    ));
                }
                if completed < started {
                    return Err(format!("event {i}: {digest} completed before it started"));
                }
            }
            View::Finished if !open.is_empty() => {
                return Err(format!(
                    "event {i}: left running at Finished: {:?}",
                    open.keys().collect::<Vec<_>>()
                ));
            }
            _ => {}
        }
    }
    Ok(Pairing {
        running: open.keys().map(|d| d.to_string()).collect(),
        started: next.len(),
    })
}

/// Log bytes per (vertex digest, stream number).
pub type LogBytes = BTreeMap<(String, i64), Vec<u8>>;

/// The log bytes each (vertex, stream) carries in `records`, in order; empty ones left out.
pub fn record_logs<'a>(records: impl IntoIterator<Item = &'a StatusResponse>) -> LogBytes {
    let mut out = LogBytes::new();
    for record in records {
        for log in &record.logs {
            out.entry((log.vertex.clone(), log.stream))
                .or_default()
                .extend_from_slice(&log.msg);
        }
    }
    out.retain(|_, bytes| !bytes.is_empty());
    out
}

/// The log bytes the events' pieces rejoin to (a `\n` after each piece that ended with one).
/// Fails if a piece holds a `\n` of its own.
pub fn event_logs<'a, E: EventView + 'a>(
    events: impl IntoIterator<Item = &'a E>,
) -> Result<LogBytes, String> {
    let mut out = LogBytes::new();
    for (i, event) in events.into_iter().enumerate() {
        if let View::Log {
            digest,
            stream,
            bytes,
            newline,
        } = event.view()
        {
            if bytes.contains(&b'\n') {
                return Err(format!(
                    "event {i}: a newline inside a log piece of {digest}: {:?}",
                    String::from_utf8_lossy(bytes)
                ));
            }
            let joined = out.entry((digest.to_string(), stream)).or_default();
            joined.extend_from_slice(bytes);
            if newline {
                joined.push(b'\n');
            }
        }
    }
    Ok(out)
}

/// Checks that the events' log pieces rejoin to exactly the log bytes of `records`, per
/// (vertex, stream), no piece holding a `\n`. Returns how many bytes were compared.
pub fn check_lossless_logs<'a, 'b, E: EventView + 'b>(
    records: impl IntoIterator<Item = &'a StatusResponse>,
    events: impl IntoIterator<Item = &'b E>,
) -> Result<usize, String> {
    let want = record_logs(records);
    let got = event_logs(events)?;
    let keys = |m: &LogBytes| m.keys().cloned().collect::<Vec<_>>();
    if keys(&want) != keys(&got) {
        return Err(format!(
            "logs of other (vertex, stream)s: the records have {:?}, the events {:?}",
            keys(&want),
            keys(&got)
        ));
    }
    for (key, bytes) in &want {
        let out = &got[key];
        if out != bytes {
            let at = bytes
                .iter()
                .zip(out)
                .position(|(a, b)| a != b)
                .unwrap_or(bytes.len().min(out.len()));
            return Err(format!(
                "log bytes of {key:?} differ from byte {at} on ({} bytes in the records, {} out)",
                bytes.len(),
                out.len()
            ));
        }
    }
    Ok(want.values().map(Vec::len).sum())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use buildkit_events::{Elapsed, Outcome, Time, VertexCompleted, VertexStarted};

    use super::*;

    fn started(digest: &str, interval: u32, at: i128) -> Event {
        Event::Started(VertexStarted {
            digest: Arc::from(digest),
            name: digest.into(),
            inputs: Vec::new(),
            started: Time(at),
            interval,
        })
    }

    fn completed(digest: &str, interval: u32, started: i128, at: i128) -> Event {
        Event::Completed(VertexCompleted {
            digest: Arc::from(digest),
            name: digest.into(),
            outcome: Outcome::Done,
            started: Time(started),
            completed: Time(at),
            duration: Elapsed((at - started) as u128),
            interval,
        })
    }

    #[test]
    fn pairing_finds_each_kind_of_break() {
        let ok = [
            started("a", 0, 1),
            started("b", 0, 2),
            completed("a", 0, 1, 3),
            started("a", 1, 4),
        ];
        assert_eq!(
            check_pairing(&ok),
            Ok(Pairing {
                running: vec!["a".into(), "b".into()],
                started: 2
            })
        );
        for bad in [
            vec![started("a", 0, 1), started("a", 1, 2)],
            vec![started("a", 1, 1)],
            vec![completed("a", 0, 1, 2)],
            vec![started("a", 0, 1), completed("a", 0, 2, 3)],
            vec![started("a", 0, 5), completed("a", 0, 5, 4)],
        ] {
            assert!(check_pairing(&bad).is_err(), "{bad:?}");
        }
    }
}
