//! What the engine does, as `tracing` events (feature `tracing`, target `partlog`). Without the
//! feature the macro expands to nothing and costs nothing.
//!
//! Events: `info` for a segment roll, a retention pass that deleted something, a compaction
//! pass that cleaned something, a truncation, and an open that was not clean (with its
//! recovery report); `warn` for a torn tail cut at open; `error` for a failed fsync and for a
//! partition that stops accepting writes (poisoned), with the cause.

/// `event!(level, fields...)`: `tracing::<level>!(target: "partlog", fields...)` with the
/// feature, nothing without it.
macro_rules! event {
    ($level:ident, $($arg:tt)+) => {
        #[cfg(feature = "tracing")]
        {
            tracing::$level!(target: "partlog", $($arg)+);
        }
    };
}

pub(crate) use event;
