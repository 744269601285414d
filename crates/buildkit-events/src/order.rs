//! The order in which the items of one record are applied: by the times inside the record.
//!
//! A live build sends small records, each holding what happened in the last few
//! milliseconds. A finished build's `Status` (BuildKit's history) can send the whole build in
//! a handful of records, every vertex and every log chunk of many steps in one. Applied in
//! the record's own layout (all vertices, then statuses, then logs) such a record would start
//! `[3/3]` before `[2/3]` has printed a line. So a record is applied item by item in the order
//! of its times, which makes a merged record give the events of the live records it merges.
//!
//! Each item gets a key ([`Keys::compute`]); the items are sorted by key (stable, so equal keys
//! keep the record's layout: vertices, statuses, logs, warnings) and applied in that order. A
//! vertex snapshot is applied at its start; the completion it causes waits in [`Deferred`]
//! until the record reaches the completion time. The keys keep what the events promise
//! whatever the times say:
//! - the snapshots of one digest stay in the record's order (their keys never decrease), and
//!   so do its statuses, the log chunks of each of its streams (the bytes of a stream are
//!   joined in the order they were sent), and its warnings;
//! - a vertex's logs, statuses and warnings never come before the first start of that vertex
//!   in the same record, and a snapshot's completion never comes before the items of its
//!   digest that follow it in time up to the digest's next start in the record (the latest of
//!   them is its `floor`): what a record carries for a vertex happened before the completion
//!   it reports.
//!
//! Items without a time (warnings, pending snapshots) follow the latest item of their digest
//! before them in the record, or, if their digest has none, everything before them.
//!
//! Cost: the common record (logs of running vertices in time order) is recognised by one pass
//! over its timestamps ([`in_time_order`]) and applied as it is. Other records cost one key per
//! item, digests found by a linear search (a hash map beyond [`LINEAR_DIGESTS`] digests) and a
//! sort of `(key, index)` pairs, in buffers the tracker reuses; the items themselves are never
//! moved to be sorted.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use buildkit_proto::{StatusResponse, Timestamp, Vertex};

use crate::event::VertexCompleted;

/// Up to this many distinct digests in a record are found by comparing strings.
const LINEAR_DIGESTS: usize = 8;

/// How far back the snapshots of one digest are searched for the one an item follows; past
/// that the item counts towards the earliest snapshot reached (its completion may then wait
/// for it). Bounds the work of a hostile record to linear.
const OWNER_SEARCH: usize = 64;

const NONE: u32 = u32::MAX;

/// The tracker keeps the ordering buffers between records up to this many items (about
/// 100 KiB); a larger record's are freed after it.
pub(crate) const KEEP_ITEMS: usize = 4096;

fn nanos(t: &Option<Timestamp>) -> Option<i128> {
    t.as_ref().map(Timestamp::unix_nanos)
}

/// Whether the record can be applied in its own layout: no vertices, no warnings, and the
/// statuses then logs carry timestamps that never decrease (most records: the logs of running
/// vertices). [`Keys::compute`] would then sort nothing.
pub(crate) fn in_time_order(r: &StatusResponse) -> bool {
    if !r.vertexes.is_empty() || !r.warnings.is_empty() {
        return false;
    }
    let mut last = i128::MIN;
    let times = r
        .statuses
        .iter()
        .map(|s| &s.timestamp)
        .chain(r.logs.iter().map(|l| &l.timestamp));
    for t in times {
        let Some(t) = nanos(t) else {
            return false;
        };
        if t < last {
            return false;
        }
        last = t;
    }
    true
}

/// What one digest has shown so far in the record being keyed.
#[derive(Debug, Clone, Copy)]
struct Chain {
    /// Key of its first snapshot with a start.
    first_start: Option<i128>,
    /// Key of its latest snapshot with a start.
    last_start: Option<i128>,
    last_status: Option<i128>,
    last_warning: Option<i128>,
    /// Key of the latest log chunk of its first two streams (in practice stdout and stderr);
    /// other streams are kept in [`Keys::more_streams`].
    streams: [Option<(i64, i128)>; 2],
    /// Its latest snapshot with a start, an index into [`Keys::snapshots`].
    last_snapshot: u32,
}

impl Default for Chain {
    fn default() -> Self {
        Chain {
            first_start: None,
            last_start: None,
            last_status: None,
            last_warning: None,
            streams: [None; 2],
            last_snapshot: NONE,
        }
    }
}

/// Which order an item keeps among the items of its digest.
#[derive(Clone, Copy)]
enum Kind {
    Status,
    /// The log chunks of one stream keep their order.
    Log(i64),
    Warning,
}

/// The digest of the item at `layout` (vertices, statuses, logs, warnings).
fn digest_at(r: &StatusResponse, layout: usize) -> &str {
    let (nv, ns, nl) = (r.vertexes.len(), r.statuses.len(), r.logs.len());
    if layout < nv {
        &r.vertexes[layout].digest
    } else if layout < nv + ns {
        &r.statuses[layout - nv].vertex
    } else if layout < nv + ns + nl {
        &r.logs[layout - nv - ns].vertex
    } else {
        r.warnings
            .get(layout - nv - ns - nl)
            .map_or("", |w| w.vertex.as_str())
    }
}

/// The keys of a record's items, computed by [`Keys::compute`]. The tracker keeps one between
/// records so that its buffers are reused.
#[derive(Debug, Default)]
pub(crate) struct Keys {
    /// Per digest of the record: the layout index of its first item.
    digests: Vec<u32>,
    chains: Vec<Chain>,
    last_hit: usize,
    /// (key, index in `vertexes`, previous snapshot of the digest or [`NONE`]).
    snapshots: Vec<(i128, u32, u32)>,
    /// (chain, stream, key) of the log streams beyond a digest's first two.
    more_streams: Vec<(usize, i64, i128)>,
    /// The latest time among the items keyed so far.
    latest: Option<i128>,
    /// (key, index in the record's layout: vertices, statuses, logs, warnings).
    pub(crate) order: Vec<(i128, u32)>,
    /// Per vertex snapshot: the latest key of the items of its digest that follow it.
    pub(crate) completion_floor: Vec<Option<i128>>,
}

/// Finds the chain of a digest: a linear search, or a hash map once the record names more
/// than [`LINEAR_DIGESTS`] digests.
struct Finder<'a> {
    r: &'a StatusResponse,
    index: Option<HashMap<&'a str, usize>>,
}

impl Keys {
    /// Computes the keys of `r`'s items (see the module docs), replacing what was there.
    pub(crate) fn compute(&mut self, r: &StatusResponse) {
        let n = r.vertexes.len() + r.statuses.len() + r.logs.len() + r.warnings.len();
        self.digests.clear();
        self.chains.clear();
        self.last_hit = 0;
        self.snapshots.clear();
        self.more_streams.clear();
        self.latest = None;
        self.order.clear();
        self.order.reserve(n);
        self.completion_floor.clear();
        self.completion_floor.resize(r.vertexes.len(), None);
        let mut finder = Finder { r, index: None };
        for (i, v) in r.vertexes.iter().enumerate() {
            self.vertex(&mut finder, i, v);
        }
        for s in &r.statuses {
            let t = nanos(&s.timestamp);
            let times = [t, nanos(&s.started), nanos(&s.completed)];
            self.other(&mut finder, &s.vertex, Kind::Status, t, times);
        }
        for l in &r.logs {
            let t = nanos(&l.timestamp);
            self.other(
                &mut finder,
                &l.vertex,
                Kind::Log(l.stream),
                t,
                [t, None, None],
            );
        }
        for w in &r.warnings {
            self.other(&mut finder, &w.vertex, Kind::Warning, None, [None; 3]);
        }
    }

    /// Whether the buffers grew beyond what an ordinary record needs ([`KEEP_ITEMS`]).
    pub(crate) fn is_large(&self) -> bool {
        self.order.capacity() > KEEP_ITEMS || self.chains.capacity() > KEEP_ITEMS
    }

    fn chain<'a>(&mut self, finder: &mut Finder<'a>, digest: &'a str) -> usize {
        let r = finder.r;
        let is = |first: &u32| digest_at(r, *first as usize) == digest;
        if self.digests.get(self.last_hit).is_some_and(is) {
            return self.last_hit;
        }
        let found = match &finder.index {
            Some(index) => index.get(digest).copied(),
            None => self.digests.iter().position(is),
        };
        let at = found.unwrap_or_else(|| {
            let at = self.digests.len();
            self.digests
                .push(u32::try_from(self.order.len()).unwrap_or(NONE));
            self.chains.push(Chain::default());
            match &mut finder.index {
                Some(index) => {
                    index.insert(digest, at);
                }
                None if self.digests.len() > LINEAR_DIGESTS => {
                    let index = self.digests.iter().enumerate();
                    let index = index.map(|(i, first)| (digest_at(r, *first as usize), i));
                    finder.index = Some(index.collect());
                }
                None => {}
            }
            at
        });
        self.last_hit = at;
        at
    }

    fn see(&mut self, t: Option<i128>) {
        if t > self.latest {
            self.latest = t;
        }
    }

    fn push(&mut self, key: i128) {
        let layout = u32::try_from(self.order.len()).unwrap_or(NONE);
        self.order.push((key, layout));
    }

    fn vertex<'a>(&mut self, finder: &mut Finder<'a>, i: usize, v: &'a Vertex) {
        let c = self.chain(finder, &v.digest);
        let latest = self.latest;
        let snapshot = u32::try_from(self.snapshots.len()).unwrap_or(NONE);
        let chain = &mut self.chains[c];
        let key = match nanos(&v.started) {
            Some(s) => {
                let key = chain.last_start.map_or(s, |l| l.max(s));
                chain.last_start = Some(key);
                chain.first_start.get_or_insert(key);
                let previous = chain.last_snapshot;
                chain.last_snapshot = snapshot;
                let i = u32::try_from(i).unwrap_or(NONE);
                self.snapshots.push((key, i, previous));
                key
            }
            // A pending snapshot causes no event; it keeps its place.
            None => chain.last_start.or(latest).unwrap_or(i128::MIN),
        };
        self.push(key);
        self.see(nanos(&v.started));
        self.see(nanos(&v.completed));
    }

    fn other<'a>(
        &mut self,
        finder: &mut Finder<'a>,
        digest: &'a str,
        kind: Kind,
        own: Option<i128>,
        times: [Option<i128>; 3],
    ) {
        let c = self.chain(finder, digest);
        let chain = self.chains[c];
        let last = match kind {
            Kind::Status => chain.last_status,
            Kind::Log(stream) => self.last_log(c, stream),
            // A warning has no time: it follows what its vertex showed before it.
            Kind::Warning => {
                let logs = chain.streams.iter().flatten().map(|&(_, k)| k);
                let more = self.more_streams.iter().filter(|m| m.0 == c).map(|m| m.2);
                chain
                    .last_warning
                    .max(chain.last_status)
                    .max(logs.chain(more).max())
            }
        };
        let before = last.max(chain.first_start);
        let key = match own {
            Some(t) => Some(t).max(before),
            None => before.or(self.latest),
        }
        .unwrap_or(i128::MIN);
        match kind {
            Kind::Status => self.chains[c].last_status = Some(key),
            Kind::Log(stream) => self.set_last_log(c, stream, key),
            Kind::Warning => self.chains[c].last_warning = Some(key),
        }
        // The snapshot this item follows: the digest's latest one that starts no later.
        let mut at = chain.last_snapshot;
        let mut owner = NONE;
        for _ in 0..OWNER_SEARCH {
            let Some(&(k, i, previous)) = self.snapshots.get(at as usize) else {
                break;
            };
            owner = i;
            if k <= key {
                break;
            }
            at = previous;
        }
        if let Some(floor) = self.completion_floor.get_mut(owner as usize) {
            *floor = (*floor).max(Some(key));
        }
        self.push(key);
        for t in times {
            self.see(t);
        }
    }

    fn last_log(&self, c: usize, stream: i64) -> Option<i128> {
        let chain = &self.chains[c];
        if let Some(&(_, k)) = chain.streams.iter().flatten().find(|(s, _)| *s == stream) {
            return Some(k);
        }
        self.more_streams
            .iter()
            .find(|m| m.0 == c && m.1 == stream)
            .map(|m| m.2)
    }

    fn set_last_log(&mut self, c: usize, stream: i64, key: i128) {
        let chain = &mut self.chains[c];
        for slot in &mut chain.streams {
            match slot {
                Some((s, k)) if *s == stream => {
                    *k = key;
                    return;
                }
                None => {
                    *slot = Some((stream, key));
                    return;
                }
                Some(_) => {}
            }
        }
        match self
            .more_streams
            .iter_mut()
            .find(|m| m.0 == c && m.1 == stream)
        {
            Some(m) => m.2 = key,
            None => self.more_streams.push((c, stream, key)),
        }
    }
}

/// A completion waiting for the record to reach its time.
#[derive(Debug)]
struct Pending {
    due: i128,
    seq: u64,
    idx: usize,
    event: VertexCompleted,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}

impl Eq for Pending {}

impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Pending {
    /// Reversed: the max-heap pops the earliest due first, ties in the order pushed.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

/// The completions waiting for the record being applied to reach their times: at most one
/// per vertex slot. Kept by the tracker between records (empty) to reuse its allocation.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    heap: BinaryHeap<Pending>,
    seq: u64,
}

impl Deferred {
    /// Queues `event` of slot `idx`, due at `due`. The slot's earlier completion, if any,
    /// must have been [taken](Deferred::take) first.
    pub(crate) fn push(&mut self, due: i128, idx: usize, event: VertexCompleted) {
        let seq = self.seq;
        self.seq += 1;
        self.heap.push(Pending {
            due,
            seq,
            idx,
            event,
        });
    }

    /// Whether the queue is empty and its buffer no larger than [`KEEP_ITEMS`] entries.
    pub(crate) fn is_small(&self) -> bool {
        self.heap.is_empty() && self.heap.capacity() <= KEEP_ITEMS
    }

    /// Removes the completion waiting for slot `idx` (the caller knows there is one).
    pub(crate) fn take(&mut self, idx: usize) -> Option<VertexCompleted> {
        let mut all = std::mem::take(&mut self.heap).into_vec();
        let found = all
            .iter()
            .position(|p| p.idx == idx)
            .map(|at| all.swap_remove(at));
        self.heap = BinaryHeap::from(all);
        found.map(|p| p.event)
    }

    /// The earliest completion due before an item with key `key` of `digest`: due earlier,
    /// or due at the same time and of another digest (an item of its own digest at its time
    /// happened before it).
    pub(crate) fn pop_due(&mut self, key: i128, digest: &str) -> Option<(usize, VertexCompleted)> {
        let top = self.heap.peek()?;
        if top.due > key {
            return None;
        }
        if top.due < key || *top.event.digest != *digest {
            return self.heap.pop().map(|p| (p.idx, p.event));
        }
        // Due now, but of the item's own digest: it waits; another one due now may go.
        let held = self.heap.pop()?;
        let next = match self.heap.peek() {
            Some(p) if p.due == key => self.heap.pop().map(|p| (p.idx, p.event)),
            _ => None,
        };
        self.heap.push(held);
        next
    }

    /// The earliest completion still waiting.
    pub(crate) fn pop_first(&mut self) -> Option<(usize, VertexCompleted)> {
        self.heap.pop().map(|p| (p.idx, p.event))
    }
}
