//! A checked walk over the batches of a segment: every batch's header, length, checksum and
//! offsets are verified, and anything wrong is an error — never a silent end. Whatever
//! rewrites data (the cleaner) or reports on it reads through this, because a walk that stops
//! quietly at damage would turn corruption into silent loss.

use std::path::Path;

use crate::batch::{self, BatchHeader, HEADER_LEN, RecordIter};
use crate::error::{CorruptKind, Error, IoContext, Result};
use crate::fs::FileHandle;
use crate::record::RecordRef;

/// One verified batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CheckedBatch<'a> {
    /// Byte position in the segment file.
    pub pos: u64,
    pub header: BatchHeader,
    /// The whole batch, header included.
    pub bytes: &'a [u8],
}

impl<'a> CheckedBatch<'a> {
    /// The batch's records; malformed framing is an error.
    pub(crate) fn records(&self, path: &'a Path) -> impl Iterator<Item = Result<RecordRef<'a>>> + 'a {
        let mut it = RecordIter::new(self.bytes, self.header);
        let pos = self.pos;
        std::iter::from_fn(move || match it.next_checked() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => None,
            Err(k) => Some(Err(Error::corrupt(path, pos, k))),
        })
    }
}

/// Walks the batches of `[from, end)` of a segment file.
#[derive(Debug)]
pub(crate) struct BatchCursor<'a> {
    file: &'a dyn FileHandle,
    path: &'a Path,
    pos: u64,
    end: u64,
    /// Offsets below this would go backwards.
    next_offset: u64,
    buf: Vec<u8>,
}

impl<'a> BatchCursor<'a> {
    /// A cursor from byte `from` (a batch boundary) to `end` (the segment's valid length);
    /// batches must not start below `min_offset`.
    pub(crate) fn new(file: &'a dyn FileHandle, path: &'a Path, from: u64, end: u64, min_offset: u64) -> Self {
        BatchCursor { file, path, pos: from, end, next_offset: min_offset, buf: Vec::new() }
    }

    /// The next verified batch; `None` at `end`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] for a damaged batch, one that runs past `end` or whose offsets go
    /// backwards; [`Error::Io`].
    pub(crate) fn next_batch(&mut self) -> Result<Option<CheckedBatch<'_>>> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let pos = self.pos;
        let left = self.end - pos;
        let corrupt = |k| Error::corrupt(self.path, pos, k);
        if left < HEADER_LEN as u64 {
            return Err(corrupt(CorruptKind::BatchLength));
        }
        let max_len = usize::try_from(left).unwrap_or(usize::MAX);
        let file = self.file;
        let header = match file.mapped_slice(pos, HEADER_LEN) {
            Some(h) => BatchHeader::parse(h, max_len),
            None => {
                let mut h = [0u8; HEADER_LEN];
                file.read_exact_at(&mut h, pos).at(self.path)?;
                BatchHeader::parse(&h, max_len)
            }
        }
        .map_err(corrupt)?;
        if header.base_offset < self.next_offset {
            return Err(corrupt(CorruptKind::OffsetOrder));
        }
        let len = header.length as usize;
        let bytes: &[u8] = match file.mapped_slice(pos, len) {
            Some(b) => b,
            None => {
                self.buf.resize(len, 0);
                file.read_exact_at(&mut self.buf, pos).at(self.path)?;
                &self.buf
            }
        };
        let header = batch::verify(bytes).map_err(corrupt)?;
        self.pos = pos + u64::from(header.length);
        self.next_offset = header.next_offset();
        Ok(Some(CheckedBatch { pos, header, bytes }))
    }
}
