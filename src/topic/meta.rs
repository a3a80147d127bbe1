//! `topic.properties`: a topic's partition count and its configuration overrides (only the
//! keys set on the topic; the rest is inherited from the directory defaults at open), in
//! Kafka's `key=value` form, ending with a checksum line. Replaced atomically (temp, fsync,
//! rename, fsync dir).
//!
//! ```text
//! # partlog topic metadata
//! format.version=1
//! partitions=3
//! cleanup.policy=compact
//! retention.ms=3600000
//! crc32=1a2b3c4d
//! ```
//! The CRC-32 covers every byte before the `crc32=` line.

use std::path::Path;

use crate::config::TopicConfig;
use crate::error::{CorruptKind, Error, Result};

pub(crate) const FILE_NAME: &str = "topic.properties";
const VERSION: u32 = 1;

pub(crate) fn encode(config: &TopicConfig) -> Vec<u8> {
    let mut s = String::from("# partlog topic metadata\n");
    s.push_str(&format!("format.version={VERSION}\n"));
    s.push_str(&format!("partitions={}\n", config.partitions));
    for (k, v) in config.overrides() {
        s.push_str(&format!("{k}={v}\n"));
    }
    let crc = crc32fast::hash(s.as_bytes());
    s.push_str(&format!("crc32={crc:08x}\n"));
    s.into_bytes()
}

pub(crate) fn decode(path: &Path, bytes: &[u8]) -> Result<TopicConfig> {
    let damaged = || Error::corrupt(path, 0, CorruptKind::Metadata);
    let text = std::str::from_utf8(bytes).map_err(|_| damaged())?;
    let body_end = text.rfind("crc32=").ok_or_else(damaged)?;
    let (body, crc_line) = text.split_at(body_end);
    let want = u32::from_str_radix(crc_line.trim_start_matches("crc32=").trim(), 16).map_err(|_| damaged())?;
    if crc32fast::hash(body.as_bytes()) != want {
        return Err(damaged());
    }
    let mut config = TopicConfig::default();
    let mut version = None;
    let mut partitions = None;
    for line in body.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(damaged)?;
        match k {
            "format.version" => version = Some(v.parse::<u32>().map_err(|_| damaged())?),
            "partitions" => partitions = Some(v.parse::<u32>().map_err(|_| damaged())?),
            _ => config = config.set(k, v)?,
        }
    }
    match version {
        Some(VERSION) => {}
        Some(found) => return Err(Error::UnsupportedVersion { path: path.to_path_buf(), found, supported: VERSION }),
        None => return Err(damaged()),
    }
    Ok(config.partitions(partitions.filter(|&p| p > 0).ok_or_else(damaged)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_checksum() -> Result<()> {
        let c = TopicConfig::default().partitions(7).set("retention.ms", "1234")?.set("cleanup.policy", "compact")?;
        let bytes = encode(&c);
        assert_eq!(decode(Path::new("t"), &bytes)?, c);
        let mut bad = bytes.clone();
        let i = bad.iter().position(|&b| b == b'7').unwrap_or(0);
        bad[i] = b'8';
        assert!(matches!(decode(Path::new("t"), &bad), Err(Error::Corrupt { .. })));
        let newer = String::from_utf8_lossy(&bytes).replace("format.version=1", "format.version=9");
        let body_end = newer.rfind("crc32=").unwrap_or(0);
        let body = &newer[..body_end];
        let resealed = format!("{body}crc32={:08x}\n", crc32fast::hash(body.as_bytes()));
        assert!(matches!(decode(Path::new("t"), resealed.as_bytes()), Err(Error::UnsupportedVersion { found: 9, .. })));
        Ok(())
    }
}
