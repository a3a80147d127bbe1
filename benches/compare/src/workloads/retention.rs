//! Retention deleting ~1,000 expired segments: the time of the pass (alone), the latency of a
//! concurrent appender while a pass runs against the same appender without one, and the floor
//! of deleting the same files directly.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use partlog::{Clock, ManualClock, Partition, Record, TopicConfig};

use crate::cli::{Cfg, OrDie, die};
use crate::fixture::{BATCH, POOL, Values, tempdir};
use crate::report::{Better, Cell, Report, fmt_ms, fmt_ns, median, oriented, pct, progress};
use crate::systems::partlog::batch_bytes;

const HOUR_MS: u64 = 3_600_000;
/// Start of the manual clock (ms since the epoch).
const T0: i64 = 1_700_000_000_000;
/// How long the appender runs before and after the pass (the "without" phases).
const QUIET: Duration = Duration::from_millis(300);

/// Writes `segments` segments of one 100-record batch each (every record stamped T0 by the
/// manual clock), rolls, closes; reopens with the default segment size for new appends and
/// moves the clock two hours on, so every sealed segment is expired. Returns the partition.
fn build(path: &Path, v: &Values, segments: usize, seg_bytes: u32) -> Partition {
    let clock = ManualClock::new(T0);
    let small = TopicConfig::default().segment_bytes(seg_bytes).retention_ms(Some(HOUR_MS));
    let p = Partition::options().config(small).clock(clock.clone() as Arc<dyn Clock>).open(path).or_die("partlog open");
    let mut recs: Vec<Record<'_>> = Vec::with_capacity(BATCH);
    for s in 0..segments {
        recs.clear();
        recs.extend((0..BATCH).map(|j| Record::with_value(&v[(s * BATCH + j) % POOL][..])));
        p.append_batch(&recs).or_die("partlog append");
    }
    p.roll().or_die("partlog roll");
    p.close().or_die("partlog close");
    let config = TopicConfig::default().retention_ms(Some(HOUR_MS));
    let p =
        Partition::options().config(config).clock(clock.clone() as Arc<dyn Clock>).open(path).or_die("partlog open");
    let sealed = p.segments().iter().filter(|s| !s.active).count();
    if sealed != segments {
        die(format!("retention: fixture has {sealed} sealed segments, wanted {segments}"));
    }
    clock.advance(2 * HOUR_MS as i64);
    p
}

fn check(report: &partlog::RetentionReport, segments: usize) {
    if report.segments_deleted as usize != segments {
        die(format!("retention: deleted {} segments, {segments} were expired", report.segments_deleted));
    }
}

/// The pass alone: ms.
fn pass_alone(path: &Path, v: &Values, segments: usize, seg_bytes: u32) -> f64 {
    let p = build(path, v, segments, seg_bytes);
    let t = Instant::now();
    let r = p.run_retention().or_die("partlog retention");
    let ms = t.elapsed().as_secs_f64() * 1e3;
    check(&r, segments);
    p.close().or_die("partlog close");
    ms
}

/// Latencies (ns) of appends that started without a pass running, during the pass, and the
/// pass's time in ms.
struct Concurrent {
    without: Vec<f64>,
    during: Vec<f64>,
    pass_ms: f64,
}

/// One appender thread appends single records in a loop for QUIET, then while the pass runs,
/// then QUIET again; each append's latency is filed under the phase it started in.
fn pass_with_appender(path: &Path, v: &Values, segments: usize, seg_bytes: u32) -> Concurrent {
    let p = build(path, v, segments, seg_bytes);
    with_appender(p, v, |p| {
        let r = p.run_retention().or_die("partlog retention");
        check(&r, segments);
    })
}

/// The same appender while the files of an identical fixture (in `other`, closed) are
/// unlinked directly, as [`raw_unlink`] does: what deleting the files costs the appender,
/// whoever deletes them.
fn unlink_with_appender(path: &Path, other: &Path, v: &Values, segments: usize, seg_bytes: u32) -> Concurrent {
    let files = sealed_files(build(other, v, segments, seg_bytes), other);
    let p = build(path, v, segments, seg_bytes);
    with_appender(p, v, |_| unlink_all(other, &files))
}

fn with_appender(p: Partition, v: &Values, pass: impl FnOnce(&Partition)) -> Concurrent {
    // 0: before the pass, 1: during, 2: after, 3: stop.
    let phase = AtomicUsize::new(0);
    let (lat, pass_ms) = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut lat: [Vec<u32>; 3] = std::array::from_fn(|_| Vec::with_capacity(1 << 21));
            let mut i = 0usize;
            loop {
                let ph = phase.load(Ordering::Acquire);
                if ph >= 3 {
                    break;
                }
                let t = Instant::now();
                p.append(Record::with_value(&v[i % POOL][..])).or_die("partlog append");
                lat[ph].push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
                i += 1;
            }
            lat
        });
        std::thread::sleep(QUIET);
        phase.store(1, Ordering::Release);
        let t = Instant::now();
        pass(&p);
        let ms = t.elapsed().as_secs_f64() * 1e3;
        phase.store(2, Ordering::Release);
        std::thread::sleep(QUIET);
        phase.store(3, Ordering::Release);
        (h.join().unwrap_or_else(|_| die("retention: the appender thread panicked")), ms)
    });
    p.close().or_die("partlog close");
    let to_f = |v: &[u32]| {
        let mut out: Vec<f64> = v.iter().map(|x| f64::from(*x)).collect();
        out.sort_by(f64::total_cmp);
        out
    };
    let mut without = lat[0].clone();
    without.extend_from_slice(&lat[2]);
    Concurrent { without: to_f(&without), during: to_f(&lat[1]), pass_ms }
}

/// The floor: unlink the sealed segments' files of the same fixture directly, then fsync the
/// directory. Returns ms and the number of files.
fn raw_unlink(path: &Path, v: &Values, segments: usize, seg_bytes: u32) -> (f64, usize) {
    let files = sealed_files(build(path, v, segments, seg_bytes), path);
    let t = Instant::now();
    unlink_all(path, &files);
    (t.elapsed().as_secs_f64() * 1e3, files.len())
}

/// Closes `p` (at `path`) and lists its sealed segments' files.
fn sealed_files(p: Partition, path: &Path) -> Vec<std::path::PathBuf> {
    let active = p.segments().iter().find(|s| s.active).map_or(0, |s| s.base_offset);
    p.close().or_die("partlog close");
    drop(p);
    // Segment files are named by their 20-digit base offset; everything below the active
    // segment's base belongs to a sealed segment.
    std::fs::read_dir(path)
        .or_die("list partition")
        .flatten()
        .map(|e| e.path())
        .filter(|f| {
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name.len() > 20 && name.as_bytes()[20] == b'.' && name[..20].parse::<u64>().is_ok_and(|base| base < active)
        })
        .collect()
}

/// Unlinks `files`, then fsyncs `dir`.
fn unlink_all(dir: &Path, files: &[std::path::PathBuf]) {
    for f in files {
        std::fs::remove_file(f).or_die("unlink segment file");
    }
    std::fs::File::open(dir).and_then(|d| d.sync_all()).or_die("fsync dir");
}

pub fn run(rep: &mut Report, cfg: &Cfg, v: &Values) {
    let segments = cfg.retention_segments;
    let seg_bytes = u32::try_from(batch_bytes(cfg, v, BATCH)).unwrap_or(u32::MAX);
    let rounds = cfg.maintenance_rounds();
    rep.line(format!(
        "\n### Retention deleting {segments} expired segments ({BATCH} records each; {rounds} rounds, each step on \
         a freshly written partition)\n"
    ));
    rep.line(
        "| round | pass alone | pass with appender | unlink the files (raw) | files | appender p50 / p99 / p99.9 / \
         max without a pass | during the pass | during raw unlinks of the same files | appends during the pass |",
    );
    rep.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut alone, mut with, mut raw, mut ratio) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut p99_without, mut p99_during, mut p99_raw) = (Vec::new(), Vec::new(), Vec::new());
    let lats = |l: &[f64]| {
        format!(
            "{} / {} / {} / {}",
            fmt_ns(pct(l, 0.5)),
            fmt_ns(pct(l, 0.99)),
            fmt_ns(pct(l, 0.999)),
            fmt_ns(pct(l, 1.0))
        )
    };
    for r in 0..rounds {
        let mut a = 0.0;
        let (mut c, mut cu) = (None, None);
        let mut u = (0.0, 0);
        // Rotate which of the four steps runs first.
        for step in 0..4 {
            let d = tempdir(cfg, "retention");
            let path = d.path().join("p");
            match (step + r) % 4 {
                0 => {
                    progress(format!("retention: round {} pass alone", r + 1));
                    a = pass_alone(&path, v, segments, seg_bytes);
                }
                1 => {
                    progress(format!("retention: round {} pass with an appender", r + 1));
                    c = Some(pass_with_appender(&path, v, segments, seg_bytes));
                }
                2 => {
                    progress(format!("retention: round {} unlink (raw)", r + 1));
                    u = raw_unlink(&path, v, segments, seg_bytes);
                }
                _ => {
                    progress(format!("retention: round {} raw unlinks with an appender", r + 1));
                    cu = Some(unlink_with_appender(&path, &d.path().join("other"), v, segments, seg_bytes));
                }
            }
        }
        let c = c.unwrap_or_else(|| die("retention: no concurrent run"));
        let cu = cu.unwrap_or_else(|| die("retention: no concurrent raw run"));
        alone.push(a);
        with.push(c.pass_ms);
        raw.push(u.0);
        ratio.push(oriented(Better::Lower, a, u.0));
        p99_without.push(pct(&c.without, 0.99));
        p99_during.push(pct(&c.during, 0.99));
        p99_raw.push(pct(&cu.during, 0.99));
        rep.line(format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r + 1,
            fmt_ms(a),
            fmt_ms(c.pass_ms),
            fmt_ms(u.0),
            u.1,
            lats(&c.without),
            lats(&c.during),
            lats(&cu.during),
            c.during.len()
        ));
    }
    let (am, um) = (median(&alone), median(&raw));
    let (pw, pd, pr) = (median(&p99_without), median(&p99_during), median(&p99_raw));
    rep.line(format!(
        "| **median** | **{}** | {} | {} | | p99 {} | p99 **{}** | p99 {} | |",
        fmt_ms(am),
        fmt_ms(median(&with)),
        fmt_ms(um),
        fmt_ns(pw),
        fmt_ns(pd),
        fmt_ns(pr)
    ));
    rep.line(format!(
        "\nThe fixture: {segments} segments of one {BATCH}-record batch ({seg_bytes} B each), written with a \
         `ManualClock` and `retention.ms` = 1 h, then the clock moved 2 h on, so every sealed segment is expired \
         and none of the new appends are; the new active segment uses the default `segment.bytes`. The pass is \
         `Partition::run_retention()` (plan, swap the segment list, unlink the files once no reader holds them); \
         each pass must report {segments} segments deleted. The appender thread calls `append` with one 100-byte \
         record in a loop (`Durability::Os`) for {} ms, during the pass, and {} ms after it; each append is filed \
         under the phase it started in (\"without a pass\" = before and after). Raw: the same segments' files \
         (`.log` and index files) unlinked with `remove_file`, then one `fsync` of the directory: a floor, with \
         no segment list, checkpoint or reader protection. \"During raw unlinks\": the same appender on a second \
         fixture while the main thread unlinks the files of a first one (closed) that way: what deleting that \
         many files costs a concurrent appender in this process, whoever deletes them.",
        QUIET.as_millis(),
        QUIET.as_millis()
    ));
    let workload = format!("Retention, {segments} expired segments");
    rep.line(
        "\ncommitlog 0.2 has no time retention. SQLite and fjall have no segments to drop: retention there is a \
         range `DELETE` (SQLite: b-tree pages rewritten through the WAL) or range of deletes (fjall: \
         tombstones, removed by later compactions), a different operation not measured here.",
    );
    let na_c = Cell::NotApplicable("none in commitlog 0.2");
    let na_s = Cell::NotApplicable("no segments");
    let na_f = Cell::NotApplicable("no segments");
    rep.summary_row(
        &workload,
        "pass time (raw: unlink the files)",
        [Cell::Value(fmt_ms(am)), na_c.clone(), na_s.clone(), na_f.clone(), Cell::Value(fmt_ms(um))],
        [None, None, None, Some(median(&ratio))],
    );
    rep.summary_row(
        &workload,
        "concurrent appender p99: during the pass (without one; raw: during unlinks of the same files)",
        [Cell::Value(format!("{} ({})", fmt_ns(pd), fmt_ns(pw))), na_c, na_s, na_f, Cell::Value(fmt_ns(pr))],
        [None, None, None, Some(oriented(Better::Lower, pd, pr))],
    );
}
