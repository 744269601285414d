//! The plain printer's block of the context upload (see [`crate::upload`]).

use std::io::{self, Write};

use buildkit_events::Time;
use docker_build::{Builder, ContextUpload};

use super::Plain;
use crate::upload::{VERTEX_NAME, classic_line, elapsed, plain_due, transfer_status};

/// What the plain printer remembers of the upload.
#[derive(Debug, Default)]
pub(super) struct UploadBlock {
    /// When (upload time) the last line printed was reached.
    last_printed: Option<Time>,
    /// How much the printer had written after its last upload line: when nothing came
    /// since, the next line continues the `#0` block without a new header.
    written_after: Option<u64>,
    /// The end was shown: later updates are ignored.
    finished: bool,
}

impl<W: Write> Plain<W> {
    /// Shows an update of the context upload when [`plain_due`].
    pub(super) fn context_upload(&mut self, upload: &ContextUpload) -> io::Result<()> {
        if self.upload.finished || !plain_due(upload, self.upload.last_printed) {
            return Ok(());
        }
        self.upload.finished = upload.done;
        // Whatever is waiting goes first, as for daemon text.
        self.print()?;
        if upload.builder == Builder::Classic {
            self.text_block(&classic_line(upload.sent))?;
            return self.out.flush();
        }
        if self.upload.written_after != Some(self.out.written) {
            self.leave_current()?;
            let header = format!("#0 {VERTEX_NAME}");
            self.begin_block(Some(&header))?;
            self.in_text = false;
            writeln!(self.out, "{header}")?;
        }
        writeln!(self.out, "#0 {}", transfer_status(upload))?;
        if upload.done {
            writeln!(self.out, "#0 DONE {:.1}s", elapsed(upload))?;
        }
        self.upload.last_printed = Some(upload.at);
        self.upload.written_after = Some(self.out.written);
        self.out.flush()
    }
}
