//! The on-disk format (documentation only).
//!
//! See the module docs of each file owner; this page ties them together.
