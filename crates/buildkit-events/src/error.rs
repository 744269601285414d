//! The error of feeding an encoded record to the tracker.

/// A record given to [`Tracker::handle_protobuf`](crate::Tracker::handle_protobuf) could not
/// be decoded.
///
/// `record` is the record's 0-based index among all records offered to the tracker (decoded
/// or not). The record is skipped: no event, vertex, log or status changed, and later records
/// are handled normally.
///
/// Transport encodings (such as the base64 of the Docker daemon's `moby.buildkit.trace`
/// lines) are undone before the tracker sees a record; their errors belong to the transport
/// (`docker-build` reports them as bad lines).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The bytes are not a valid protobuf `moby.buildkit.v1.StatusResponse`.
    #[error("record {record}: invalid StatusResponse protobuf ({len} bytes)")]
    Protobuf {
        /// Index of the record (how many records the tracker had been offered before it).
        record: u64,
        /// Length of the undecodable protobuf message.
        len: usize,
        /// Prost's description, with the path of the field it failed in.
        #[source]
        source: buildkit_proto::DecodeError,
    },
}

impl RecordError {
    /// Index of the record that failed.
    pub fn record(&self) -> u64 {
        match self {
            RecordError::Protobuf { record, .. } => *record,
        }
    }
}
