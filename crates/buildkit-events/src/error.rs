//! The error of feeding an encoded record to the tracker.

/// A record given to [`Tracker::handle_aux`](crate::Tracker::handle_aux) or
/// [`Tracker::handle_protobuf`](crate::Tracker::handle_protobuf) could not be decoded.
///
/// `record` is the record's 0-based index among all records offered to the tracker (decoded
/// or not), so it matches the position of the `moby.buildkit.trace` line in the stream. The
/// record is skipped: no event, vertex, log or status changed, and later records are
/// handled normally.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The `aux` string is not standard, padded base64.
    #[error("record {record}: invalid base64 at byte offset {offset}")]
    Base64 {
        /// Index of the record (how many records the tracker had been offered before it).
        record: u64,
        /// Byte offset in the `aux` string of the offending symbol, or the string's length
        /// when the string ends wrongly (truncated, bad padding).
        offset: usize,
        /// The decoder's own description.
        #[source]
        source: base64::DecodeError,
    },
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
            RecordError::Base64 { record, .. } | RecordError::Protobuf { record, .. } => *record,
        }
    }
}

/// The byte offset a base64 error points at.
pub(crate) fn base64_offset(err: &base64::DecodeError, input_len: usize) -> usize {
    match *err {
        base64::DecodeError::InvalidByte(offset, _)
        | base64::DecodeError::InvalidLastSymbol(offset, _) => offset,
        base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => input_len,
    }
}
