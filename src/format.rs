//! # The on-disk format, version 2
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
//!         segments.intent                  only while a truncation or compaction swap is in progress
//!         00000000000000000000.log         record batches, back to back
//!         00000000000000000000.index       sparse offset index + segment summary
//!         00000000000000000000.timeindex   time index
//!         00000000000000004821.log …       next segment: named by its base offset, 20 digits
//!     __consumer_offsets/                  committed offsets and group states (see below)
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
//! | 0 | length | u32 | bytes in the whole batch, this header included (≥ 68) |
//! | 4 | crc | u32 | CRC-32 of bytes `[8, length)` |
//! | 8 | magic | u8 | batch format version: 2 |
//! | 9 | reserved | u8 | 0 |
//! | 10 | attributes | u16 | bits 0–2: compression codec (0 none; 1 gzip, 2 snappy, 3 lz4, 4 zstd reserved); bit 3: timestamps are LogAppendTime; bit 4: transactional (reserved); bit 5: control batch (reserved); bit 6: the delete horizon is set; other bits 0 |
//! | 12 | last offset delta | u32 | last offset − base offset |
//! | 16 | base offset | u64 | offset of the first record |
//! | 24 | base timestamp | i64 | timestamp of the first record (ms since the Unix epoch) |
//! | 32 | max timestamp | i64 | largest record timestamp |
//! | 40 | delete horizon | i64 | with attribute bit 6: the time from which compaction may drop this batch's tombstones; `i64::MIN` otherwise |
//! | 48 | producer id | i64 | −1: none (reserved for idempotent appends) |
//! | 56 | producer epoch | i16 | −1: none |
//! | 58 | reserved | u16 | 0 |
//! | 60 | base sequence | i32 | −1: none |
//! | 64 | record count | u32 | ≤ last offset delta + 1 |
//! | 68 | records | | `record count` records |
//!
//! The layout follows Kafka's v2 batch field for field (in little-endian, with the CRC first),
//! so the features on the roadmap — compression codecs, idempotent producers, transactions and
//! control batches — need no new revision. This version writes no codec, no producer fields and
//! neither flag bit 4 nor 5; a checksum-valid batch that uses any of them is refused as
//! [`CorruptKind::UnsupportedFeature`](crate::CorruptKind::UnsupportedFeature), never misread.
//! Compaction keeps a batch's base offset and last offset delta, so a rewritten batch covers
//! the same offsets with fewer records.
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
//! magic is known, its reserved fields are zero, the delete horizon agrees with its flag, and
//! its records fill it exactly. The CRC covers
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
//! | 4 | version: 2 | u16 |
//! | 6 | flags: bit 0 = clean shutdown | u16 |
//! | 8 | log start offset | u64 |
//! | 16 | recovery point: base offset of the first segment to re-validate after a crash | u64 |
//! | 24 | log end offset when written | u64 |
//! | 32 | segment count N | u32 |
//! | 36 | reserved | u32 |
//! | 40 | cleaner offset: compaction has cleaned everything below it (Kafka's first dirty offset) | u64 |
//! | 48 | N segment summaries of 56 bytes: base, size, next offset, records, first ts, max ts, max-ts batch offset | |
//! | 48 + 56N | CRC-32 of all preceding bytes | u32 |
//!
//! A damaged checkpoint costs a full re-validation and a fresh start of compaction, nothing
//! else; another version is [`Error::UnsupportedVersion`](crate::Error::UnsupportedVersion).
//!
//! ## Segment-set intent (`segments.intent`)
//!
//! | byte | field | type |
//! |---:|---|---|
//! | 0 | magic `PLIN` | [u8; 4] |
//! | 4 | version: 1 | u16 |
//! | 6 | kind: 0 cut within a segment, 1 reset (delete every segment and restart at the target), 2 replace sealed segments | u16 |
//! | 8 | payload length P | u32 |
//! | 12 | payload | P bytes |
//! | 12 + P | CRC-32 of all preceding bytes | u32 |
//!
//! Payloads: **cut**: target (the new log end offset) u64, base offset of the segment that
//! keeps the new end u64, bytes of it kept u64, rewrite length u32, the rewritten batch (the
//! records of a batch straddling the target that lie below it). **reset**: target u64.
//! **replace**: old count u32, new count u32, the old segments' base offsets (u64, ascending),
//! the new segments' (u64, ascending, the first equal to the first old one).
//!
//! An intent that fails its checks, or that partlog could not have written (unknown kind,
//! offsets out of range, a replacement starting elsewhere than what it replaces), is
//! discarded: it was never durable, so never acted upon.
//!
//! ## Files in transit
//!
//! - `<base>.log.cleaned`: a compacted segment, complete and fsynced, not yet swapped in.
//!   Without a replace intent naming it, it is output of a pass that never committed and is
//!   removed at open.
//! - `<name>.deleted`: a file of a segment taken out of the log (retention, a swap) whose last
//!   reader has not let go yet; unlinked when it does, or at the next open.
//! - `<name>.tmp`: an atomic replace in progress; removed at open.
//!
//! ## Topic metadata (`topic.properties`)
//!
//! Text: `# partlog topic metadata`, `format.version=1`, `partitions=N`, then the topic's
//! configuration overrides as `key=value` (Kafka's names; keys not listed are inherited from
//! the directory defaults the directory is opened with), then `crc32=<8 hex digits>`: the
//! CRC-32 of every byte before that line.
//!
//! ## Consumer offsets (`topics/__consumer_offsets/`)
//!
//! Committed offsets and group states live in an internal compacted topic named
//! `__consumer_offsets` (created at the first group operation, with
//! [`LogDirOptions::offsets_topic_num_partitions`](crate::LogDirOptions::offsets_topic_num_partitions)
//! partitions; hidden from `list_topics(false)`; names starting with `__` are reserved). Its
//! segments are ordinary segments as above. The records' keys and values are big-endian, as
//! Kafka's group coordinator writes them; a string is an i16 length followed by UTF-8 bytes:
//!
//! | record | key | value |
//! |---|---|---|
//! | committed offset | i16 version = 1, group, topic, i32 partition | i16 version = 3, i64 offset, i32 leader epoch (the partition's assignment epoch in the group when committed; −1 for a commit outside a group), metadata string, i64 commit timestamp (ms) |
//! | group state | i16 version = 2, group | i16 version = 1000, i32 generation, i64 time the group became empty (−1: it has members), assignment strategy string |
//!
//! A tombstone (no value) deletes its key: an expired or reset offset, a deleted group. All the
//! offsets one commit writes are one batch in one partition, chosen from the group id as Kafka
//! does (`abs(java_string_hash(group)) % partitions`), so a commit is atomic. A key or value of
//! an unknown version is refused ([`Error::Corrupt`](crate::Error::Corrupt)) rather than
//! skipped.
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
//! - **Log start moves and retention.** The checkpoint with the new log start is made durable
//!   before any segment file goes; then the segments wholly below it leave the list, their
//!   files are renamed to `.deleted` (out of the log at once) and unlinked when their last
//!   reader lets go, by whichever maintenance call comes next — never under the writer lock.
//!   A crash leaves segments below the durable log start, which the next open deletes: never a
//!   hole in the middle of the log. A segment sealed wholly below the log start goes the same
//!   way right after the roll that sealed it.
//! - **Truncation.** The data the plan keeps is fsynced, then the plan (cut or reset) is
//!   written durably to `segments.intent`; later segments are deleted, the segment holding the
//!   new end is *replaced* (kept prefix and rewritten batch copied to `<name>.tmp`, fsynced,
//!   renamed over it, directory fsynced; a file readers may have mapped is never shrunk in
//!   place), the checkpoint is written, and the intent removed.
//! - **Compaction swap** (replace sealed segments `old` by `new`): (1) every new segment is
//!   written as `<base>.log.cleaned` and fsynced; (2) the replace intent naming both sides is
//!   made durable; (3) the old segments are retired — readers holding them keep their open
//!   handles on the old bytes, every other reader retries on the new list; (4) each `.cleaned`
//!   file is renamed to `<base>.log` (atomically replacing an old segment of the same base),
//!   the other old segments' files are renamed to `.deleted`; (5) the new list is published,
//!   the directory fsynced, the checkpoint written with the new cleaner offset, and the intent
//!   removed. Crash analysis: before (2) is durable, the old segments are untouched and the
//!   `.cleaned` files are strays, removed at open. After (2), open carries the intent out again:
//!   it renames every `.cleaned` file still there (it was fsynced before the intent, so it is
//!   complete) and removes the old segments without a successor of their base — both
//!   idempotent — then re-validates the new segments instead of trusting their summaries.
//!   Either way the log is the old set or the new set, with every retained record at its offset.
//! - **Intents in general.** An open that finds a valid intent carries it out before anything
//!   else; every step is idempotent, so a crash during recovery converges to the same result.
//! - **Close.** Trim and fsync the active segment, write its indexes, replace the checkpoint
//!   with the clean flag set — unless nothing changed since a clean open, in which case close
//!   writes nothing at all. The first change after an open clears the flag (a durable
//!   checkpoint write) before touching any segment, so a crash is never mistaken for a clean
//!   shutdown.
//! - **Topic create / delete.** Built in `staging/` and renamed into `topics/`; deleted by a
//!   rename into `trash/` and removal. Each rename is followed by fsyncs of both directories.
//!
//! ## What reads check, and when
//!
//! - Every batch a read returns has passed its CRC check, its length and offset checks and a
//!   walk of its records' framing.
//! - In the active segment the check runs on every read.
//! - In a sealed segment (immutable: never written again; truncation and compaction replace
//!   files instead of changing them) a batch that starts at an offset-index entry is checked
//!   the first time a read returns it through an open handle of the segment, and the pass is
//!   remembered for that handle: later reads of that batch skip the CRC (not the framing
//!   walk). The second small read of such a batch (with no offset gap and at least 32
//!   records) walks the framing of all its records once and keeps the position of every 8th
//!   record with the handle; later small reads decode from the nearest one at or before the
//!   record asked for, so the records before it are not walked again. A handle lives while the segment is in the partition's open-file cache or a
//!   returned [`Records`](crate::Records) holds it; a new handle checks again. So damage that
//!   appears on the disk after a batch was read is caught at the next open of the segment (at
//!   the latest, at the next open of the partition), and damage present before is caught at
//!   the first read. Other batches are checked on every read.
//! - Batches a read passes over on the way to its target (between a sparse index entry and the
//!   target) are not checked, except the one just before a target that seems to fall in a
//!   gap. The scans of recovery, compaction and `offset_for_timestamp` check every batch they
//!   pass.
//!
//! ## Recovery and its crash analysis
//!
//! Open lists the directory, deletes `.tmp` and `.deleted` leftovers, carries out an intent if
//! there is one, deletes `.cleaned` files no intent names, orphan index files and segments
//! wholly below the log start, and reads the checkpoint.
//!
//! - **Clean flag set** and the segment list matches: every summary is trusted after cheap
//!   plausibility checks, and the active segment's is confirmed against its batches from the
//!   last index entry on; nothing else is read.
//! - **Otherwise**, segments below the recovery point are trusted (they were fsynced before the
//!   checkpoint naming them was written) and every segment from the recovery point on is
//!   re-validated batch by batch; index files are written only where missing or stale.
//!   Recovery time follows the unflushed tail, not the size of the log. Re-validation fsyncs
//!   nothing it did not change: a segment has a successor only once it was fsynced (the writer
//!   syncs a segment before it creates the next, the cleaner before it swaps one in), so every
//!   sealed segment is already durable.
//! - A clean flag whose summaries did not hold up (something had to be re-validated) is
//!   replaced by an unclean checkpoint at once, before any append.
//! - At the first invalid batch at byte `p`: if no valid batch continuing the offsets starts
//!   anywhere after `p` in that segment, and no later segment holds data, it is a **torn tail**
//!   (a crash mid-write, a zero-filled preallocation, appended garbage): the file is cut at `p`
//!   and synced. If valid data follows, it is **damage in the middle of the log**: open fails
//!   with [`Error::Corrupt`](crate::Error::Corrupt) and changes nothing, unless the caller asked
//!   for [`RecoveryMode::TruncateCorrupt`](crate::RecoveryMode::TruncateCorrupt). One exception:
//!   in the active segment, a whole 4 KiB page of zeros between the damage and the valid data
//!   is what a power loss leaves when the kernel wrote later pages back before earlier ones.
//!   Those writes were never synced (an fsync covers everything before it), so it is cut as a
//!   torn tail. The search skips holes (`SEEK_DATA`); a claimed batch with a hole in it is not
//!   a batch; a tail too hostile to search within a fixed budget is reported as damage.
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
//! - **2**: the batch header follows Kafka's v2 fields (delete horizon for compaction, producer
//!   id, epoch and base sequence, codec, transactional and control bits; 68 bytes); the
//!   checkpoint gains the cleaner offset; `truncate.intent` became `segments.intent`, which also
//!   describes compaction swaps; topic metadata keeps only overrides. Nothing of version 1 was
//!   ever released, so there is no migration: version 1 files are refused.
//! - **1**: the first format.
