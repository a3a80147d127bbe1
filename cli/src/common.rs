//! What every command shares: failures and their exit codes, opening the directory for
//! reading or writing, output (text or JSON, a closed pipe ends it quietly), progress bars,
//! and parsing of `key=value` and date arguments.

use std::io::{IsTerminal, Write};
use std::path::Path;

use partlog::{Error, LogDir, ReadOnlyLogDir};

/// Exit code: success.
pub const OK: u8 = 0;
/// Exit code: the command failed (bad input, unknown topic, I/O error, ...).
pub const FAILED: u8 = 1;
// Exit code 2: the command line itself is wrong (clap's own code).
/// Exit code: damaged data was found.
pub const CORRUPT: u8 = 3;
/// Exit code: a command that writes found the directory in use by another process.
pub const LOCKED: u8 = 4;

/// A failed command: what to tell the user (one sentence) and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn new(message: impl Into<String>) -> Failure {
        Failure { code: FAILED, message: message.into() }
    }

    pub fn corrupt(message: impl Into<String>) -> Failure {
        Failure { code: CORRUPT, message: message.into() }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let code = match e {
            Error::Corrupt { .. } => CORRUPT,
            Error::Locked { .. } => LOCKED,
            _ => FAILED,
        };
        Failure { code, message: e.to_string() }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(format!("I/O error: {e}"))
    }
}

pub type Outcome = Result<u8, Failure>;

/// How listings are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Lines for people (the shape of Kafka's tools).
    #[default]
    Text,
    /// One JSON document (for a listing) or one JSON object per line (for records).
    Json,
}

/// Checks that `dir` is an existing partlog directory before anything touches it.
pub fn existing_dir(dir: &Path) -> Result<(), Failure> {
    if !dir.exists() {
        return Err(Failure::new(format!(
            "no log directory at {}: the path does not exist (`partlog topics --create` makes a new one)",
            dir.display()
        )));
    }
    if !dir.is_dir() {
        return Err(Failure::new(format!("{} is not a directory", dir.display())));
    }
    if !dir.join("partlog.meta").is_file() {
        return Err(Failure::new(format!(
            "{} is not a partlog directory (it has no partlog.meta); check --dir",
            dir.display()
        )));
    }
    Ok(())
}

/// Opens `dir` read-only: works while another process writes it.
pub fn open_read_only(dir: &Path) -> Result<ReadOnlyLogDir, Failure> {
    existing_dir(dir)?;
    Ok(LogDir::open_read_only(dir)?)
}

/// Opens `dir` for writing (it takes the directory's lock). `what` names the command for the
/// message when another process holds the lock.
pub fn open_for_writing(dir: &Path, what: &str) -> Result<LogDir, Failure> {
    existing_dir(dir)?;
    open_locked(dir, what)
}

/// As [`open_for_writing`], creating the directory if it does not exist.
pub fn open_or_create(dir: &Path, what: &str) -> Result<LogDir, Failure> {
    if dir.exists() {
        existing_dir(dir)?;
    }
    open_locked(dir, what)
}

fn open_locked(dir: &Path, what: &str) -> Result<LogDir, Failure> {
    LogDir::open(dir).map_err(|e| match e {
        Error::Locked { .. } => Failure {
            code: LOCKED,
            message: format!(
                "{} is in use by another process (it holds the directory's lock), and {what} needs the directory to itself: stop that process, or use a command that reads (topics --list/--describe, consume without --group, dump, groups --list/--describe)",
                dir.display()
            ),
        },
        other => other.into(),
    })
}

/// Closes a directory opened for writing, reporting a failure to close.
pub fn close(dir: LogDir) -> Result<(), Failure> {
    Ok(dir.close()?)
}

/// Standard output, buffered; a reader that went away (a closed pipe) is not an error.
pub struct Out {
    w: std::io::BufWriter<std::io::Stdout>,
    closed: bool,
}

impl Out {
    pub fn new() -> Out {
        Out { w: std::io::BufWriter::new(std::io::stdout()), closed: false }
    }

    /// Whether the reader went away.
    pub fn closed(&self) -> bool {
        self.closed
    }

    pub fn line(&mut self, s: &str) -> Result<(), Failure> {
        self.bytes(s.as_bytes())?;
        self.bytes(b"\n")
    }

    pub fn bytes(&mut self, b: &[u8]) -> Result<(), Failure> {
        if self.closed {
            return Ok(());
        }
        match self.w.write_all(b) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Failure::new(format!("cannot write to standard output: {e}"))),
        }
    }

    pub fn json(&mut self, v: &serde_json::Value) -> Result<(), Failure> {
        self.line(&v.to_string())
    }

    pub fn flush(&mut self) -> Result<(), Failure> {
        if self.closed {
            return Ok(());
        }
        match self.w.flush() {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(Failure::new(format!("cannot write to standard output: {e}"))),
        }
    }
}

/// A progress bar on standard error, shown only when standard output is a terminal (a
/// script's output stays clean).
pub fn progress(len: u64, what: &str) -> indicatif::ProgressBar {
    if !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(len);
    let style = indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    pb.set_style(style);
    pb.set_message(what.to_owned());
    pb
}

/// A spinner counting what was done, shown under the same rule as [`progress`].
pub fn spinner(what: &str) -> indicatif::ProgressBar {
    if !std::io::stdout().is_terminal() || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(what.to_owned());
    pb.enable_steady_tick(std::time::Duration::from_millis(120));
    pb
}

/// `key=value` → `(key, value)`.
pub fn key_value(s: &str, what: &str) -> Result<(String, String), Failure> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(Failure::new(format!("{what} `{s}` is not of the form key=value"))),
    }
}

/// A time in ms since the Unix epoch: a number, or `YYYY-MM-DDTHH:MM:SS[.mmm]` with an
/// optional `Z` or `±HH:MM` (UTC when none is given).
pub fn parse_time(s: &str) -> Result<i64, Failure> {
    let bad = || {
        Failure::new(format!(
            "`{s}` is not a time: give milliseconds since 1970 or a date like 2024-05-01T12:00:00 (UTC unless it ends in Z or ±HH:MM)"
        ))
    };
    if let Ok(ms) = s.parse::<i64>() {
        return Ok(ms);
    }
    let (date, time) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else { return Err(bad()) };
    let (y, mo, da): (i64, i64, i64) =
        (y.parse().map_err(|_| bad())?, mo.parse().map_err(|_| bad())?, da.parse().map_err(|_| bad())?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) {
        return Err(bad());
    }
    let (clock, offset_min) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0i64)
    } else if let Some(i) = time.rfind(['+', '-']).filter(|&i| i >= 5) {
        let (c, z) = time.split_at(i);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, m) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        (c, sign * (h * 60 + m))
    } else {
        (time, 0)
    };
    let (hms, frac) = clock.split_once('.').unwrap_or((clock, "0"));
    let t: Vec<&str> = hms.split(':').collect();
    let (h, mi, se) = match t.as_slice() {
        [h, m] => (h.parse::<i64>().map_err(|_| bad())?, m.parse::<i64>().map_err(|_| bad())?, 0),
        [h, m, s] => (
            h.parse::<i64>().map_err(|_| bad())?,
            m.parse::<i64>().map_err(|_| bad())?,
            s.parse::<i64>().map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    };
    if h > 23 || mi > 59 || se > 60 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ms_frac: i64 = format!("{frac:0<3}")[..3].parse().map_err(|_| bad())?;
    let days = days_from_civil(y, mo, da);
    Ok((((days * 24 + h) * 60 + mi) * 60 + se - offset_min * 60) * 1000 + ms_frac)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Bytes as JSON: a string when they are UTF-8, else `{"base64": ...}`.
pub fn json_bytes(b: Option<&[u8]>) -> serde_json::Value {
    match b {
        None => serde_json::Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => serde_json::Value::String(s.to_owned()),
            Err(_) => serde_json::json!({ "base64": base64(b) }),
        },
    }
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for c in b.chunks(3) {
        let n =
            (u32::from(c[0]) << 16) | (u32::from(*c.get(1).unwrap_or(&0)) << 8) | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Bytes as text: lossy UTF-8, `null` for none (as Kafka's console consumer prints them).
pub fn text_bytes(b: Option<&[u8]>) -> String {
    match b {
        None => "null".to_owned(),
        Some(b) => String::from_utf8_lossy(b).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let t = |s: &str| parse_time(s).map_err(|f| f.message);
        assert_eq!(t("0"), Ok(0));
        assert_eq!(t("1700000000123"), Ok(1_700_000_000_123));
        // Known instants: date -d '2024-05-01T12:00:00Z' +%s → 1714564800.
        assert_eq!(t("2024-05-01T12:00:00Z"), Ok(1_714_564_800_000));
        assert_eq!(t("2024-05-01T12:00:00"), Ok(1_714_564_800_000));
        assert_eq!(t("2024-05-01T14:00:00+02:00"), Ok(1_714_564_800_000));
        assert_eq!(t("2024-05-01T12:00:00.250Z"), Ok(1_714_564_800_250));
        assert_eq!(t("1970-01-01"), Ok(0));
        assert_eq!(t("2000-02-29T00:00:00Z"), Ok(951_782_400_000));
        for bad in ["yesterday", "2024-13-01", "2024-05-01T25:00:00", "2024-05", ""] {
            assert!(t(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn base64_of_bytes() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }
}
