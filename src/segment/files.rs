//! Segment file names: the one place that knows them.
//!
//! A segment is `<base>.log`, `<base>.index` and `<base>.timeindex`, where `<base>` is the
//! base offset as 20 decimal digits (so lexical order is offset order, as in Kafka). Files in
//! transit carry a suffix after the extension: `<base>.log.cleaned` (a compacted segment
//! written, not yet swapped in) and `<name>.deleted` (a segment taken out of the log whose
//! last reader has not let go yet). Both are removed at open unless an intent says otherwise.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::FileSystem;

/// The three files of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Ext {
    Log,
    Index,
    TimeIndex,
}

impl Ext {
    #[cfg(test)]
    pub(crate) const ALL: [Ext; 3] = [Ext::Log, Ext::Index, Ext::TimeIndex];
    /// Indexes first, log last: a removal interrupted half-way leaves a log without indexes
    /// (rebuilt when needed) or, if the directory's changes reach the disk out of order,
    /// orphan indexes (removed at open).
    pub(crate) const REMOVAL_ORDER: [Ext; 3] = [Ext::Index, Ext::TimeIndex, Ext::Log];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Ext::Log => "log",
            Ext::Index => "index",
            Ext::TimeIndex => "timeindex",
        }
    }

    fn parse(s: &str) -> Option<Ext> {
        match s {
            "log" => Some(Ext::Log),
            "index" => Some(Ext::Index),
            "timeindex" => Some(Ext::TimeIndex),
            _ => None,
        }
    }
}

/// A suffix after the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transit {
    /// `.cleaned`: written by the cleaner, waiting to be swapped in.
    Cleaned,
    /// `.deleted`: out of the log, waiting for its last reader.
    Deleted,
}

impl Transit {
    fn as_str(self) -> &'static str {
        match self {
            Transit::Cleaned => "cleaned",
            Transit::Deleted => "deleted",
        }
    }
}

/// `<base>.<ext>`.
pub(crate) fn name(base: u64, ext: Ext) -> String {
    format!("{base:020}.{}", ext.as_str())
}

/// `<dir>/<base>.<ext>`.
pub(crate) fn path(dir: &Path, base: u64, ext: Ext) -> PathBuf {
    dir.join(name(base, ext))
}

/// `<dir>/<base>.<ext>.<transit>`.
pub(crate) fn transit_path(dir: &Path, base: u64, ext: Ext, t: Transit) -> PathBuf {
    dir.join(format!("{}.{}", name(base, ext), t.as_str()))
}

/// What a file name in a partition directory is, as far as segments go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// `<base>.<ext>`.
    SegmentState(u64, Ext),
    /// `<base>.<ext>.<transit>`.
    InTransit(u64, Ext, Transit),
}

/// Parses a partition directory entry name; `None` for anything that is not a segment file.
pub(crate) fn parse(name: &str) -> Option<Parsed> {
    let (digits, rest) = name.split_at_checked(20)?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base: u64 = digits.parse().ok()?;
    let rest = rest.strip_prefix('.')?;
    let (ext, transit) = match rest.split_once('.') {
        Some((e, t)) => (e, Some(t)),
        None => (rest, None),
    };
    let ext = Ext::parse(ext)?;
    match transit {
        None => Some(Parsed::SegmentState(base, ext)),
        Some("cleaned") => Some(Parsed::InTransit(base, ext, Transit::Cleaned)),
        Some("deleted") => Some(Parsed::InTransit(base, ext, Transit::Deleted)),
        Some(_) => None,
    }
}

/// Removes `p` if it exists.
pub(crate) fn remove_if_present(fs: &dyn FileSystem, p: &Path) -> Result<()> {
    match fs.remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(p, e)),
        _ => Ok(()),
    }
}

/// Removes a segment's files in [`Ext::REMOVAL_ORDER`]. The caller syncs the directory.
pub(crate) fn remove_segment(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<()> {
    for ext in Ext::REMOVAL_ORDER {
        remove_if_present(fs, &path(dir, base, ext))?;
    }
    Ok(())
}

/// Removes a segment's index files (derived data about to be rewritten or rebuilt).
pub(crate) fn remove_indexes(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<()> {
    remove_if_present(fs, &path(dir, base, Ext::Index))?;
    remove_if_present(fs, &path(dir, base, Ext::TimeIndex))
}

/// Renames a segment's files that exist to `<name>.deleted`: out of the log at once (an open
/// never takes them for segments), removed when the last reader lets go or at the next open.
/// Returns the renamed paths.
pub(crate) fn retire_files(fs: &dyn FileSystem, dir: &Path, base: u64) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for ext in Ext::REMOVAL_ORDER {
        let from = path(dir, base, ext);
        let to = transit_path(dir, base, ext, Transit::Deleted);
        match fs.rename(&from, &to) {
            Ok(()) => out.push(to),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&from, e)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for base in [0u64, 1, 4821, u64::MAX] {
            for ext in Ext::ALL {
                assert_eq!(parse(&name(base, ext)), Some(Parsed::SegmentState(base, ext)));
                let t = transit_path(Path::new(""), base, ext, Transit::Cleaned);
                assert_eq!(parse(t.to_str().unwrap_or("")), Some(Parsed::InTransit(base, ext, Transit::Cleaned)));
            }
        }
        assert_eq!(name(4821, Ext::Log), "00000000000000004821.log");
        for bad in ["0000000000000000482.log", "00000000000000004821.txt", "0000000000000000482a.log", "x", ""] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert_eq!(parse("00000000000000004821.log.tmp"), None);
    }

    #[test]
    fn removing_a_missing_file_is_fine_and_a_failed_removal_is_an_error() {
        let fs = crate::fs::sim::SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("mkdir");
        let f = path(dir, 7, Ext::Log);
        assert!(remove_if_present(&*fs, &f).is_ok(), "nothing there: nothing to do");
        fs.open(&f, crate::fs::OpenMode::Create).expect("create");
        fs.fail_nth(0, std::io::ErrorKind::PermissionDenied);
        let err = remove_if_present(&*fs, &f).expect_err("the unlink failed");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        assert!(fs.read_dir(dir).expect("list").iter().any(|e| e.name == *name(7, Ext::Log)), "still there");
        assert!(remove_if_present(&*fs, &f).is_ok());
        assert!(fs.read_dir(dir).expect("list").is_empty(), "gone");
    }

    #[test]
    fn retiring_skips_missing_files_and_fails_on_a_failed_rename() {
        let fs = crate::fs::sim::SimFs::new();
        let dir = Path::new("/d");
        fs.create_dir_all(dir).expect("mkdir");
        for ext in [Ext::Log, Ext::Index] {
            fs.open(&path(dir, 3, ext), crate::fs::OpenMode::Create).expect("create");
        }
        // No time index: it is skipped; the other two are renamed.
        let out = retire_files(&*fs, dir, 3).expect("retire");
        assert_eq!(
            out,
            [transit_path(dir, 3, Ext::Index, Transit::Deleted), transit_path(dir, 3, Ext::Log, Transit::Deleted)]
        );
        fs.open(&path(dir, 9, Ext::Log), crate::fs::OpenMode::Create).expect("create");
        fs.fail_nth(0, std::io::ErrorKind::PermissionDenied);
        let err = retire_files(&*fs, dir, 9).expect_err("the rename failed");
        assert!(matches!(err, Error::Io { .. }), "{err:?}");
        let names: Vec<_> = fs.read_dir(dir).expect("list").into_iter().map(|e| e.name).collect();
        assert!(names.iter().any(|n| *n == *name(9, Ext::Log)), "still in the log: {names:?}");
    }
}
