//! # The on-disk format, version 1
//!
//! This page is the specification: file names, byte layouts, the write / fsync / rename
//! protocol, the crash analysis behind it, and what partlog assumes of the disk. All integers
//! are little-endian. Checksums are CRC-32 (IEEE polynomial, as computed by `crc32fast`).
//!
//! ## Directory tree
//!
//! ```text
//! <log dir>/
//!   .lock                                  exclusive advisory lock (flock) while open
//!   partlog.meta                           "partlog log directory\nversion=1\n"
//!   topics/
//!     <topic>/                             1–249 chars of [A-Za-z0-9._-], not "." or ".."
//!       topic.properties                   partition count + Kafka-style config, with a CRC line
//!       0/ 1/ … N-1/                       one directory per partition:
//!         .lock                            the partition's own lock
//!         partition.checkpoint             log start, recovery point, clean flag, segment summaries
//!         truncate.intent                  only while a truncation is in progress
//!         00000000000000000000.log         record batches, back to back
//!         00000000000000000000.index       sparse offset index + segment summary
//!         00000000000000000000.timeindex   time index
//!         00000000000000004821.log …       next segment: named by its base offset, 20 digits
//!   staging/                               topics being created (emptied at open)
//!   trash/                                 topics being deleted (emptied at open)
//! ```
//!
//! A [`Partition`](crate::Partition) opened on its own uses the partition layout alone. Only
//! files whose names are exactly 20 decimal digits plus `.log`, `.index` or `.timeindex`, the
//! checkpoint and `.tmp` leftovers are ever touched; anything else in a partition directory is
//! ignored, and a symlink or directory named like a segment file is refused
//! ([`Error::Corrupt`](crate::Error::Corrupt)), never followed.
//!
//! ## Record batch (`.log`)
//!
//! | byte | field | type | meaning |
//! |---:|---|---|---|
//! | 0 | length | u32 | bytes in the whole batch, this header included (≥ 48) |
//! | 4 | crc | u32 | CRC-32 of bytes `[8, length)` |
//! | 8 | magic | u8 | batch format version: 1 |
//! | 9 | attributes | u8 | bit 0: timestamps are LogAppendTime; other bits 0 |
//! | 10 | reserved | u16 | 0 |
//! | 12 | last offset delta | u32 | last offset − base offset |
//! | 16 | base offset | u64 | offset of the first record |
//! | 24 | base timestamp | i64 | timestamp of the first record (ms since the Unix epoch) |
//! | 32 | max timestamp | i64 | largest record timestamp |
//! | 40 | record count | u32 | ≤ last offset delta + 1 |
//! | 44 | reserved | u32 | 0 |
//! | 48 | records | | `record count` records |
//!
//! Each record (varints are unsigned LEB128; "zig-zag" varints map signed values as protobuf):
//!
//! | field | encoding |
//! |---|---|
//! | length | varint: bytes after this field |
//! | attributes | u8, 0 |
//! | timestamp delta | zig-zag varint: timestamp − base timestamp |
//! | offset delta | varint: offset − base offset, strictly increasing within the batch |
//! | key | zig-zag varint length (−1: no key), then the bytes |
//! | value | zig-zag varint length (−1: tombstone), then the bytes |
//! | header count | varint |
//! | headers | per header: zig-zag varint key length, UTF-8 key, zig-zag varint value length (−1: null), value |
//!
//! A batch is valid iff its length fits in what is left of the file, its CRC matches, its
//! magic is known, its reserved fields are zero and its records fill it exactly. The CRC covers
//! the base offset and every field after the CRC, so a torn write, appended garbage or a
//! zero-filled region (length 0) never passes for a batch. Lengths are bounded before any
//! allocation: by the bytes left in the file and by 2³¹ − 1.
//!
//! Batches in a segment have strictly increasing, non-overlapping offset ranges; offsets may
//! have gaps (compaction, truncation). A segment's relative offsets (offset − base) fit in u32
//! and its byte positions in u32: the writer rolls before either would overflow.
//!
//! ## Offset index (`.index`)
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLIX` | [u8; 4] |
//! | 4 | version: 1 | u16 |
//! | 6 | reserved | u16 |
//! | 8 | base offset | u64 |
//! | 16 | bytes of `.log` described | u64 |
//! | 24 | next offset (last offset + 1) | u64 |
//! | 32 | record count | u64 |
//! | 40 | first timestamp (`i64::MIN`: none) | i64 |
//! | 48 | max timestamp (`i64::MIN`: none) | i64 |
//! | 56 | base offset of the batch holding the max timestamp | u64 |
//! | 64 | entry count | u32 |
//! | 68 | CRC-32 of the entries | u32 |
//! | 72 | reserved | u32 |
//! | 76 | CRC-32 of bytes 0..76 | u32 |
//! | 80 | entries: relative offset u32, byte position u32 | 8 bytes each |
//!
//! An entry `(o, p)` says the batch starting at byte `p` has base offset `base + o`. One entry
//! is added per `index.interval.bytes` of log (Kafka's rule: after a batch, when more than the
//! interval was written since the last entry). Entries strictly increase in both fields.
//!
//! ## Time index (`.timeindex`)
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLTX` | [u8; 4] |
//! | 4 | version: 1 | u16 |
//! | 6 | reserved | u16 |
//! | 8 | base offset | u64 |
//! | 16 | entry count | u32 |
//! | 20 | CRC-32 of the entries | u32 |
//! | 24 | reserved | u32 |
//! | 28 | CRC-32 of bytes 0..28 | u32 |
//! | 32 | entries: timestamp i64, relative offset u32 | 12 bytes each |
//!
//! An entry `(T, o)`: T is the largest timestamp up to and including the batch with base offset
//! `base + o`, and that batch is where T was first reached, so every record with a timestamp
//! above T comes later. Entries are added with the offset index, only when the maximum grew,
//! plus a final one when the segment is sealed; producer timestamps need not be monotonic.
//!
//! Both indexes are derived data. They are written once, when a segment is sealed or the log is
//! closed, through a temporary file and a rename, without fsync; the active segment's indexes
//! live in memory. Any index whose checksums, base offset, size or next offset disagree with
//! its segment is rebuilt from the `.log`.
//!
//! ## Partition checkpoint (`partition.checkpoint`)
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLCP` | [u8; 4] |
//! | 4 | version: 1 | u16 |
//! | 6 | flags: bit 0 = clean shutdown | u16 |
//! | 8 | log start offset | u64 |
//! | 16 | recovery point: base offset of the first segment to re-validate after a crash | u64 |
//! | 24 | log end offset when written | u64 |
//! | 32 | segment count N | u32 |
//! | 36 | reserved | u32 |
//! | 40 | N segment summaries of 56 bytes: base, size, next offset, records, first ts, max ts, max-ts batch offset | |
//! | 40 + 56N | CRC-32 of all preceding bytes | u32 |
//!
//! A damaged checkpoint costs a full re-validation, nothing else; a newer version is
//! [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion).
//!
//! ## Truncation intent (`truncate.intent`)
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLTR` | [u8; 4] |
//! | 4 | version: 1 | u16 |
//! | 6 | kind: 0 = cut within a segment, 1 = delete every segment and restart at the target | u16 |
//! | 8 | target: the new log end offset | u64 |
//! | 16 | base offset of the segment that keeps the new end | u64 |
//! | 24 | cut: bytes of that segment kept before the rewritten batch | u64 |
//! | 32 | rewrite length R | u32 |
//! | 36 | the rewritten batch: the records of a batch straddling the target that lie below it | R bytes |
//! | 36 + R | CRC-32 of all preceding bytes | u32 |
//!
//! An intent that fails its checks, or that partlog could not have written (unknown kind,
//! offsets out of range), is discarded: it was never acted upon.
//!
//! ## Topic metadata (`topic.properties`)
//!
//! Text: `# partlog topic metadata`, `format.version=1`, `partitions=N`, then every topic
//! configuration key as `key=value` (Kafka's names), then `crc32=<8 hex digits>`: the CRC-32 of
//! every byte before that line.
//!
//! ## Write protocol
//!
//! - **Append.** The batch is written at the end of the active segment (through a memory map
//!   over a region reserved with `fallocate` on Linux, `pwrite` elsewhere), then published to
//!   readers. Under `flush.messages=1` the append returns only after an `fdatasync` that covers
//!   it; concurrent appenders share one (group commit).
//! - **Roll.** The active segment is trimmed to its data, `fdatasync`ed, its indexes written;
//!   the next segment file is created and the directory fsynced; then the checkpoint is
//!   replaced with the recovery point at the new segment's base.
//! - **Atomic replace** (checkpoint, topic metadata, `partlog.meta`): write `<name>.tmp`,
//!   `fdatasync` it, rename over `<name>`, fsync the directory.
//! - **Log start moves.** The checkpoint with the new log start is made durable before any
//!   segment file is deleted; segment files are deleted index first, log last, and the
//!   directory fsynced. A segment sealed wholly below the log start is deleted the same way.
//! - **Truncation.** The data the plan keeps is fsynced, then the plan is written durably to
//!   `truncate.intent`; later segments are deleted, the segment holding the new end is
//!   *replaced* (kept prefix and rewritten batch copied to `<name>.tmp`, fsynced, renamed over
//!   it, directory fsynced; a file readers may have mapped is never shrunk in place), the
//!   checkpoint is written, and the intent removed. An open that finds an intent carries it out
//!   again first; every step is idempotent, so a crash leaves the old log or the new one.
//! - **Close.** Trim and fsync the active segment, write its indexes, replace the checkpoint
//!   with the clean flag set. The first change after an open clears the flag (a durable
//!   checkpoint write) before touching any segment, so a crash is never mistaken for a clean
//!   shutdown.
//! - **Topic create / delete.** Built in `staging/` and renamed into `topics/`; deleted by a
//!   rename into `trash/` and removal. Each rename is followed by fsyncs of both directories.
//!
//! ## Recovery and its crash analysis
//!
//! Open lists the directory, deletes `.tmp` leftovers, orphan index files and segments wholly
//! below the log start, and reads the checkpoint.
//!
//! - **Clean flag set** and the segment list matches: every summary is trusted after cheap
//!   plausibility checks, and the active segment's is confirmed against its batches from the
//!   last index entry on; nothing else is read.
//! - **Otherwise**, segments below the recovery point are trusted (they were fsynced before the
//!   checkpoint naming them was written) and every segment from the recovery point on is
//!   re-validated batch by batch, its indexes rebuilt. Recovery time follows the unflushed tail,
//!   not the size of the log.
//! - At the first invalid batch at byte `p`: if no valid batch continuing the offsets starts
//!   anywhere after `p` in that segment, and no later segment holds data, it is a **torn tail**
//!   (a crash mid-write, a zero-filled preallocation, appended garbage): the file is cut at `p`
//!   and synced. If valid data follows, it is **damage in the middle of the log**: open fails
//!   with [`Error::Corrupt`](crate::Error::Corrupt) and changes nothing, unless the caller asked
//!   for [`RecoveryMode::TruncateCorrupt`](crate::RecoveryMode::TruncateCorrupt). One exception:
//!   in the active segment, a whole 4 KiB page of zeros between the damage and the valid data
//!   is what a power loss leaves when the kernel wrote later pages back before earlier ones.
//!   Those writes were never synced (an fsync covers everything before it), so it is cut as a
//!   torn tail. A tail too hostile to search within a fixed budget is reported as damage.
//!
//! Why acknowledged data survives: under `flush.messages=1` an append is acknowledged only after
//! `fdatasync` of the segment that holds it, and that segment's directory entry was fsynced when
//! it was created; sealed segments were fsynced before the next one was created. Why a crash
//! anywhere in a multi-file operation is safe: every step either replaces one small file
//! atomically, or creates / deletes files whose presence recovery can interpret either way (an
//! empty new segment, orphan indexes, segments below the durable log start).
//!
//! ## What partlog assumes of the disk
//!
//! - `fdatasync` returns only once the file's data (and the metadata needed to read it, such as
//!   its size) is durable; an fsync of a directory makes its entries durable. A failed fsync is
//!   never retried: the partition is poisoned until reopened.
//! - Rename within a directory, and between sibling directories, is atomic.
//! - Unsynced writes may be lost, torn, reordered or replaced with garbage or zeros after a power
//!   loss; synced data is not silently changed afterwards (bit rot is detected by checksums on
//!   every read and during recovery, and reported, never returned as records).
//! - No other process modifies the files while the directory lock is held. In particular,
//!   truncating the active segment from outside while it is memory-mapped raises SIGBUS in the
//!   writer; the lock keeps other partlog handles out, not other programs.
//!
//! ## Version history
//!
//! - **1**: the first format.
