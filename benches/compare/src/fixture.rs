//! The bytes every system stores, the offsets read back, and the temp dirs they live in.

use std::path::Path;

use tempfile::TempDir;

use crate::cli::{Cfg, OrDie};

/// Bytes in each record value (the payload every system stores).
pub const VALUE: usize = 100;
/// Records per batch in the batched workloads.
pub const BATCH: usize = 100;
/// Distinct values; record `i` carries `values[i % POOL]`.
pub const POOL: usize = 256;
/// Bytes one read asks for (partlog, commitlog, raw); SQLite and fjall ask for as many rows.
pub const READ_BYTES: usize = 1 << 20;
/// Rows per read for the systems that count rows instead of bytes: about [`READ_BYTES`] of
/// values.
pub const READ_ROWS: usize = READ_BYTES / VALUE;

pub type Values = Vec<[u8; VALUE]>;

pub fn values() -> Values {
    (0..POOL)
        .map(|i| {
            let mut v = [0u8; VALUE];
            for (j, b) in v.iter_mut().enumerate() {
                *b = (i * 31 + j * 7) as u8;
            }
            v
        })
        .collect()
}

/// What a read saw: record count and a checksum of the first byte of every value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seen {
    pub records: u64,
    pub sum: u64,
}

impl Seen {
    pub fn add(&mut self, value: &[u8]) {
        self.records += 1;
        self.sum += u64::from(value.first().copied().unwrap_or(0));
    }

    /// What reading records `from..to` of the standard log must see.
    pub fn expected(v: &Values, from: usize, to: usize) -> Seen {
        let mut s = Seen::default();
        for j in from..to {
            s.add(&v[j % POOL]);
        }
        s
    }
}

/// A small xorshift generator: the same offsets for every system and run.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// The seed of the random-read offsets (shared by the timed runs and the footprint children).
pub const RANDOM_SEED: u64 = 0x2545_F491_4F6C_DD1D;
/// Reads done before timing random reads (opens handles, warms caches).
pub const WARMUP_READS: usize = 1_000;

/// The warm-up and timed offsets of the random-read workload.
pub fn random_offsets(log: usize, reads: usize) -> (Vec<u64>, Vec<u64>) {
    let mut rng = Rng(RANDOM_SEED);
    let warmup = (0..WARMUP_READS).map(|_| rng.below(log as u64)).collect();
    let offsets = (0..reads).map(|_| rng.below(log as u64)).collect();
    (warmup, offsets)
}

pub fn tempdir(cfg: &Cfg, what: &str) -> TempDir {
    tempfile::Builder::new().prefix(&format!("plcmp-{what}-")).tempdir_in(&cfg.dir).or_die("create a temp dir")
}

pub fn dir_bytes(dir: &Path) -> u64 {
    if dir.is_file() {
        return std::fs::metadata(dir).map_or(0, |m| m.len());
    }
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let Ok(m) = e.metadata() else { continue };
            total += if m.is_dir() { dir_bytes(&e.path()) } else { m.len() };
        }
    }
    total
}
