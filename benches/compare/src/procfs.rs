//! What the process holds, from `/proc/self`: open file descriptors and resident memory, one
//! sample at a time or as a peak sampled by a background thread.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

pub fn open_fds() -> usize {
    // Includes the descriptor read_dir itself holds while listing.
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Mem {
    pub rss_kb: u64,
    pub anon_kb: u64,
    pub file_kb: u64,
    pub hwm_kb: u64,
}

impl Mem {
    /// Field-wise maximum.
    pub fn max(self, o: Mem) -> Mem {
        Mem {
            rss_kb: self.rss_kb.max(o.rss_kb),
            anon_kb: self.anon_kb.max(o.anon_kb),
            file_kb: self.file_kb.max(o.file_kb),
            hwm_kb: self.hwm_kb.max(o.hwm_kb),
        }
    }
}

pub fn mem() -> Mem {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> u64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Mem { rss_kb: field("VmRSS:"), anon_kb: field("RssAnon:"), file_kb: field("RssFile:"), hwm_kb: field("VmHWM:") }
}

pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}

/// A signed difference in KiB, as MiB.
pub fn delta_mib(after: u64, before: u64) -> String {
    let d = after as f64 - before as f64;
    format!("{}{:.1} MiB", if d >= 0.0 { "+" } else { "−" }, d.abs() / 1024.0)
}

/// Peak memory and descriptors, sampled every few milliseconds by a thread of its own while the
/// measured code runs on the caller's thread.
pub struct PeakSampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Mem, usize)>,
}

impl PeakSampler {
    pub fn start(every: Duration) -> PeakSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut peak = (mem(), open_fds());
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                peak = (peak.0.max(mem()), peak.1.max(open_fds()));
            }
            peak
        });
        PeakSampler { stop, handle }
    }

    /// Stops sampling; the peak memory and descriptor count seen (including one last sample).
    pub fn stop(self) -> (Mem, usize) {
        self.stop.store(true, Ordering::Relaxed);
        let (m, f) = self.handle.join().unwrap_or_default();
        (m.max(mem()), f.max(open_fds()))
    }
}
