//! Reading [`BuildEvent`] sequences in assertions.

use buildkit_events::{Event, Outcome};
use docker_build::{BuildEvent, BuildSummary};

/// The summary carried by the last event, which must be [`BuildEvent::Finished`].
pub fn summary(events: &[BuildEvent]) -> &BuildSummary {
    match events.last() {
        Some(BuildEvent::Finished(s)) => s,
        other => panic!("the last event is not Finished: {other:?}"),
    }
}

/// Every log line's text, in order.
pub fn log_lines(events: &[BuildEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Log(l)) => Some(l.text().into_owned()),
            _ => None,
        })
        .collect()
}

/// The outcomes of the completed intervals of vertices whose name contains `name_part`.
pub fn outcomes(events: &[BuildEvent], name_part: &str) -> Vec<Outcome> {
    events
        .iter()
        .filter_map(|e| match e {
            BuildEvent::Vertex(Event::Completed(c)) if c.name.contains(name_part) => {
                Some(c.outcome.clone())
            }
            _ => None,
        })
        .collect()
}
