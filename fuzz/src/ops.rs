//! The `ops` target: an operation sequence decoded from the input, run on the simulated file
//! system and checked against the model of [`crate::model`] after every operation.
//!
//! Input: an 8-byte setup, then operations until the input ends (at most [`MAX_OPS`]), each an
//! opcode byte and its arguments (see [`decode`]; [`encode`] is the inverse, for seeds).

use crate::input::{Input, Output};
use crate::model::{self, Crash, Flush, Op, Rec, Setup};

/// Operations per input.
pub const MAX_OPS: usize = 200;

const EXTREME_TS: [i64; 4] = [i64::MIN, i64::MIN + 1, -1, i64::MAX];

/// Runs one input; panics when the partition and the model disagree.
pub fn run(data: &[u8]) {
    let (setup, ops) = decode(data);
    if let Err(e) = model::run(&setup, &ops) {
        panic!("{e}");
    }
}

/// Decodes the setup and the operations.
pub fn decode(data: &[u8]) -> (Setup, Vec<Op>) {
    let mut inp = Input::new(data);
    let setup = decode_setup(&mut inp);
    let mut ops = Vec::new();
    while !inp.is_empty() && ops.len() < MAX_OPS {
        ops.push(decode_op(&mut inp));
    }
    (setup, ops)
}

/// The inverse of [`decode`], for the values [`decode`] can produce.
pub fn encode(setup: &Setup, ops: &[Op]) -> Vec<u8> {
    let mut out = Output::default();
    encode_setup(&mut out, setup);
    for op in ops {
        encode_op(&mut out, op);
    }
    out.buf
}

fn decode_setup(inp: &mut Input<'_>) -> Setup {
    let segment_bytes = 256 + u32::from(inp.u16()) % 1793;
    let index_interval_bytes = u32::from(inp.u8());
    let f = inp.u8();
    let flush = match f % 4 {
        1 => Flush::Os,
        2 => Flush::Periodic(2 + u64::from(f >> 2) % 6),
        _ => Flush::EveryAppend,
    };
    let v = inp.u8();
    let segment_index_bytes = v.is_multiple_of(4).then(|| 8 + u32::from(v / 4) % 56);
    let v = inp.u8();
    let segment_ms = v.is_multiple_of(4).then(|| 50 + 10 * u64::from(v / 4));
    let v = inp.u8();
    let max_message_bytes = v.is_multiple_of(4).then(|| 100 + 8 * u32::from(v / 4));
    let log_append_time = inp.u8() % 8 == 7;
    Setup {
        segment_bytes,
        index_interval_bytes,
        segment_index_bytes,
        segment_ms,
        max_message_bytes,
        flush,
        log_append_time,
    }
}

fn encode_setup(out: &mut Output, s: &Setup) {
    out.u16((s.segment_bytes - 256) as u16);
    out.u8(s.index_interval_bytes as u8);
    out.u8(match s.flush {
        Flush::EveryAppend => 0,
        Flush::Os => 1,
        Flush::Periodic(n) => 2 | (((n - 2) as u8) << 2),
    });
    out.u8(s.segment_index_bytes.map_or(1, |b| ((b - 8) * 4) as u8));
    out.u8(s.segment_ms.map_or(1, |ms| ((ms - 50) / 10 * 4) as u8));
    out.u8(s.max_message_bytes.map_or(1, |b| ((b - 100) / 8 * 4) as u8));
    out.u8(if s.log_append_time { 7 } else { 0 });
}

/// Decodes a record. Flags byte: bit 0 key, bit 1 value, bit 2 timestamp (0..2100), bit 3
/// large value (200..2200 bytes of one byte), bits 4-5 header count, bit 6 an extreme
/// timestamp (`i64::MIN`, `i64::MIN + 1`, -1, `i64::MAX`).
pub fn decode_rec(inp: &mut Input<'_>) -> Rec {
    let flags = inp.u8();
    let key = (flags & 1 != 0).then(|| {
        let n = usize::from(inp.u8() % 13);
        inp.bytes(n).to_vec()
    });
    let value = (flags & 2 != 0).then(|| {
        if flags & 8 != 0 {
            let n = 200 + usize::from(inp.u16() % 2000);
            vec![inp.u8(); n]
        } else {
            let n = usize::from(inp.u8() % 49);
            inp.bytes(n).to_vec()
        }
    });
    let timestamp = if flags & 64 != 0 {
        Some(EXTREME_TS[usize::from(inp.u8() % 4)])
    } else if flags & 4 != 0 {
        Some(i64::from(inp.u16() % 2100))
    } else {
        None
    };
    let headers = (0..(flags >> 4) & 3)
        .map(|_| {
            let n = usize::from(inp.u8() % 5);
            let key = String::from_utf8_lossy(inp.bytes(n)).into_owned();
            let v = inp.u8();
            let value = (v != 0xFF).then(|| inp.bytes(usize::from(v % 7)).to_vec());
            (key, value)
        })
        .collect();
    Rec { key, value, headers, timestamp }
}

/// The inverse of [`decode_rec`] (keys ≤ 12 bytes, values ≤ 48 bytes or 200..2200 copies of
/// one byte, ASCII header keys ≤ 4 bytes, header values ≤ 6 bytes).
pub fn encode_rec(out: &mut Output, r: &Rec) {
    let big = r.value.as_ref().is_some_and(|v| v.len() > 48);
    let extreme = r.timestamp.and_then(|t| EXTREME_TS.iter().position(|&x| x == t));
    let flags = u8::from(r.key.is_some())
        | u8::from(r.value.is_some()) << 1
        | u8::from(r.timestamp.is_some() && extreme.is_none()) << 2
        | u8::from(big) << 3
        | (r.headers.len() as u8) << 4
        | u8::from(extreme.is_some()) << 6;
    out.u8(flags);
    if let Some(k) = &r.key {
        out.u8(k.len() as u8).bytes(k);
    }
    if let Some(v) = &r.value {
        if big {
            out.u16((v.len() - 200) as u16).u8(v[0]);
        } else {
            out.u8(v.len() as u8).bytes(v);
        }
    }
    match (extreme, r.timestamp) {
        (Some(i), _) => {
            out.u8(i as u8);
        }
        (None, Some(t)) => {
            out.u16(t as u16);
        }
        (None, None) => {}
    }
    for (k, v) in &r.headers {
        out.u8(k.len() as u8).bytes(k.as_bytes());
        match v {
            None => out.u8(0xFF),
            Some(v) => out.u8(v.len() as u8).bytes(v),
        };
    }
}

fn decode_op(inp: &mut Input<'_>) -> Op {
    let code = inp.u8();
    if code % 15 == 10 {
        let after = inp.u8();
        let crash = decode_crash(inp);
        let op = decode_simple_op(inp.u8(), inp);
        return Op::CrashDuring { op: Box::new(op), after, crash };
    }
    decode_simple_op(code, inp)
}

fn decode_crash(inp: &mut Input<'_>) -> Crash {
    let kind = inp.u8();
    let seed = u64::from(inp.u8());
    match kind % 3 {
        0 => Crash::LoseUnsynced,
        1 => Crash::TornPrefix(seed),
        _ => Crash::Garbage(seed),
    }
}

fn encode_crash(out: &mut Output, c: &Crash) {
    let (kind, seed) = match c {
        Crash::LoseUnsynced => (0, 0),
        Crash::TornPrefix(s) => (1, *s),
        Crash::Garbage(s) => (2, *s),
    };
    out.u8(kind).u8(seed as u8);
}

/// Any operation but [`Op::CrashDuring`], from its opcode (modulo 15, then 10 means 0).
fn decode_simple_op(code: u8, inp: &mut Input<'_>) -> Op {
    match code % 15 {
        11 => return Op::Retention { ms: inp.u16(), bytes: inp.u16() },
        12 => return Op::Compact { horizon: inp.u8() },
        13 => return Op::ReadOnly { at: inp.u16() },
        14 => return Op::Commit { group: inp.u8(), offset: inp.u16() },
        _ => {}
    }
    match code % 15 % 10 {
        0 => Op::Append(decode_rec(inp)),
        1 => {
            let n = inp.u8() % 7;
            Op::AppendBatch((0..n).map(|_| decode_rec(inp)).collect())
        }
        2 => {
            let at = inp.u16();
            let max_bytes = match inp.u16() {
                u16::MAX => u32::MAX,
                b => u32::from(b),
            };
            Op::Read { at, max_bytes }
        }
        3 => Op::ReadTs(match inp.u16() as i16 {
            i16::MIN => i64::MIN,
            i16::MAX => i64::MAX,
            t => i64::from(t),
        }),
        4 => Op::Truncate(inp.u16()),
        5 => Op::AdvanceStart(inp.u16()),
        6 => Op::Sync,
        7 => Op::Reopen,
        8 => Op::Crash(decode_crash(inp)),
        _ => Op::Tick(u16::from(inp.u8()) * 4),
    }
}

fn encode_op(out: &mut Output, op: &Op) {
    match op {
        Op::Append(r) => {
            out.u8(0);
            encode_rec(out, r);
        }
        Op::AppendBatch(rs) => {
            out.u8(1).u8(rs.len() as u8);
            for r in rs {
                encode_rec(out, r);
            }
        }
        Op::Read { at, max_bytes } => {
            out.u8(2).u16(*at).u16(if *max_bytes == u32::MAX { u16::MAX } else { *max_bytes as u16 });
        }
        Op::ReadTs(t) => {
            let raw = match *t {
                i64::MIN => i16::MIN,
                i64::MAX => i16::MAX,
                t => t as i16,
            };
            out.u8(3).u16(raw as u16);
        }
        Op::Truncate(s) => {
            out.u8(4).u16(*s);
        }
        Op::AdvanceStart(s) => {
            out.u8(5).u16(*s);
        }
        Op::Sync => {
            out.u8(6);
        }
        Op::Reopen => {
            out.u8(7);
        }
        Op::Crash(c) => {
            out.u8(8);
            encode_crash(out, c);
        }
        Op::CrashDuring { op, after, crash } => {
            out.u8(10).u8(*after);
            encode_crash(out, crash);
            encode_op(out, op);
        }
        Op::Tick(ms) => {
            out.u8(9).u8((ms / 4) as u8);
        }
        Op::Retention { ms, bytes } => {
            out.u8(11).u16(*ms).u16(*bytes);
        }
        Op::Compact { horizon } => {
            out.u8(12).u8(*horizon);
        }
        Op::ReadOnly { at } => {
            out.u8(13).u16(*at);
        }
        Op::Commit { group, offset } => {
            out.u8(14).u8(*group).u16(*offset);
        }
    }
}

/// Seed inputs: small valid scenarios covering every operation and setup option.
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let rec = |i: u16| Rec {
        key: Some(format!("k{}", i % 3).into_bytes()),
        value: Some(vec![b'v'; usize::from(i % 40)]),
        headers: if i.is_multiple_of(4) {
            vec![("h".to_owned(), Some(b"x".to_vec())), ("n".to_owned(), None)]
        } else {
            vec![]
        },
        timestamp: Some(i64::from(i * 10 % 2100)),
    };
    let mut basic: Vec<Op> = (0..12).map(|i| Op::Append(rec(i))).collect();
    basic.extend([
        Op::AppendBatch((12..17).map(rec).collect()),
        Op::Read { at: 3, max_bytes: 100 },
        Op::ReadTs(55),
        Op::Sync,
        Op::AdvanceStart(4),
        Op::Truncate(9),
        Op::Reopen,
        Op::Append(rec(20)),
        Op::Crash(Crash::TornPrefix(1)),
        Op::Tick(40),
        Op::Append(Rec { timestamp: None, ..rec(21) }),
        Op::Crash(Crash::Garbage(2)),
        Op::Crash(Crash::LoseUnsynced),
    ]);
    let os = Setup { segment_bytes: 300, index_interval_bytes: 0, flush: Flush::Os, ..Setup::default() };
    let mut crashy: Vec<Op> = Vec::new();
    for i in 0..6 {
        crashy.push(Op::AppendBatch((i * 3..i * 3 + 3).map(rec).collect()));
        if i == 2 {
            crashy.push(Op::Sync);
        }
    }
    crashy.extend([Op::Crash(Crash::TornPrefix(9)), Op::Read { at: 0, max_bytes: u32::MAX }, Op::Truncate(0)]);
    let errors = vec![
        Op::AppendBatch(vec![]),
        Op::Append(Rec { timestamp: Some(i64::MIN), ..rec(1) }),
        Op::Append(Rec { value: Some(vec![7; 1500]), ..rec(2) }),
        Op::Append(Rec { timestamp: Some(i64::MAX), ..rec(3) }),
        Op::AdvanceStart(100),
        Op::Read { at: 100, max_bytes: 1 },
    ];
    let during = |op: Op, after: u8, crash: Crash| Op::CrashDuring { op: Box::new(op), after, crash };
    let mut interrupted: Vec<Op> = (0..8).map(|i| Op::Append(rec(i))).collect();
    interrupted.extend([
        during(Op::AppendBatch((8..12).map(rec).collect()), 1, Crash::TornPrefix(4)),
        during(Op::Append(rec(13)), 3, Crash::LoseUnsynced),
        during(Op::Truncate(5), 2, Crash::Garbage(1)),
        during(Op::AdvanceStart(3), 1, Crash::LoseUnsynced),
        during(Op::Reopen, 4, Crash::TornPrefix(2)),
        during(Op::Sync, 0, Crash::LoseUnsynced),
    ]);
    let small = Setup {
        segment_bytes: 256,
        index_interval_bytes: 16,
        segment_index_bytes: Some(16),
        segment_ms: Some(100),
        max_message_bytes: Some(300),
        flush: Flush::Periodic(3),
        log_append_time: false,
    };
    let lat = Setup { log_append_time: true, ..Setup::default() };
    // Long histories (the largest seed used to be 401 bytes, and libFuzzer grows inputs
    // slowly): [`MAX_OPS`] operations that roll many segments, with truncations, log-start
    // moves, reopens and crashes (also part-way through) spread over them.
    let long = |salt: u16| -> Vec<Op> {
        let mut ops = Vec::new();
        let mut i = 0u16;
        while ops.len() < MAX_OPS {
            let k = (i.wrapping_mul(7).wrapping_add(salt)) % 27;
            ops.push(match k {
                0..=9 => Op::Append(rec(i)),
                10..=12 => Op::AppendBatch((i..i + 1 + k % 4).map(rec).collect()),
                13 => Op::Read { at: i % 50, max_bytes: 1 + u32::from(i) * 13 },
                14 => Op::ReadTs(i64::from(i) * 7),
                15 => Op::Truncate(i.wrapping_mul(31)),
                16 => Op::AdvanceStart(i % 9),
                17 => Op::Sync,
                18 => Op::Reopen,
                19 => Op::Tick(i % 300),
                20 => Op::Crash(
                    [Crash::LoseUnsynced, Crash::TornPrefix(u64::from(i)), Crash::Garbage(u64::from(i))]
                        [usize::from(i % 3)],
                ),
                21 => Op::Compact { horizon: (i % 4) as u8 },
                22 => Op::Retention { ms: 50 + i % 200, bytes: (i % 7) * 401 },
                23 => Op::ReadOnly { at: i.wrapping_mul(13) },
                24 => Op::Commit { group: (i % 5) as u8, offset: i },
                _ => during(
                    Op::AppendBatch((i..i + 3).map(rec).collect()),
                    (i % 5) as u8,
                    Crash::TornPrefix(u64::from(i)),
                ),
            });
            i += 1;
        }
        ops
    };
    // Retention and compaction between appends of a few keys, tombstones among them, with the
    // clock moving so that tombstones expire, and crashes after passes.
    let tomb = |i: u16| Rec { value: None, ..rec(i) };
    let mut maint: Vec<Op> = (0..20).map(|i| Op::Append(rec(i))).collect();
    maint.extend([
        Op::Append(tomb(21)),
        Op::AppendBatch((22..26).map(rec).collect()),
        Op::Compact { horizon: 2 },
        Op::ReadOnly { at: 0 },
        Op::Read { at: 0, max_bytes: 1 },
        Op::Read { at: 5, max_bytes: 300 },
        Op::Tick(100),
        Op::Compact { horizon: 2 },
        Op::ReadTs(30),
        Op::Retention { ms: u16::MAX, bytes: 801 },
        Op::ReadOnly { at: 3 },
        Op::Commit { group: 0, offset: 7 },
        Op::Commit { group: 1, offset: 3 },
        during(Op::Commit { group: 1, offset: 9 }, 1, Crash::TornPrefix(5)),
        Op::Commit { group: 0, offset: 12 },
        Op::Crash(Crash::TornPrefix(3)),
        Op::AppendBatch((26..30).map(rec).collect()),
        Op::Tick(400),
        Op::Retention { ms: 10, bytes: 0 },
        during(Op::Compact { horizon: 0 }, 2, Crash::LoseUnsynced),
        Op::Truncate(3),
        Op::ReadOnly { at: 1 },
        during(Op::Commit { group: 2, offset: 4 }, 3, Crash::LoseUnsynced),
        Op::Reopen,
        Op::ReadOnly { at: 2 },
    ]);
    vec![
        ("maintenance", encode(&Setup::default(), &maint)),
        ("long-history", encode(&Setup::default(), &long(0))),
        ("long-history-os", encode(&os, &long(5))),
        ("long-history-small-limits", encode(&small, &long(11))),
        ("basic", encode(&Setup::default(), &basic)),
        ("os-crash", encode(&os, &crashy)),
        ("errors", encode(&Setup::default(), &errors)),
        ("small-limits", encode(&small, &basic)),
        ("log-append-time", encode(&lat, &basic[..14])),
        ("crash-during", encode(&os, &interrupted)),
        ("crash-during-every-append", encode(&Setup::default(), &interrupted)),
    ]
}
