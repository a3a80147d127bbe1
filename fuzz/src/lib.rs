//! Fuzz targets for partlog, as library functions so that `cargo test` can replay the corpus
//! and generate the seeds without libFuzzer. Each target's `run` never panics on any input
//! unless it found a bug.
//!
//! - [`decode_batch`]: batch validation and decoding against a reference decoder, and the
//!   builder's round trip.
//! - [`open_dir`]: opening a partition directory made of fuzzed files.
//! - [`ops`]: operation sequences checked against the model in [`model`].

pub mod decode_batch;
pub mod input;
pub mod model;
pub mod open_dir;
pub mod ops;
pub mod spec;
