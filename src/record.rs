//! Records as an application appends them ([`Record`]) and reads them back ([`RecordRef`],
//! [`StoredRecord`]).

use std::borrow::Cow;

/// Anything that can be turned into record bytes without a copy when it is borrowed:
/// `&[u8]`, `&str`, `Vec<u8>`, `String`, `&[u8; N]`.
pub trait IntoBytes<'a> {
    /// The bytes, borrowed where possible.
    fn into_bytes(self) -> Cow<'a, [u8]>;
}

impl<'a> IntoBytes<'a> for &'a [u8] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}
impl<'a, const N: usize> IntoBytes<'a> for &'a [u8; N] {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}
impl<'a> IntoBytes<'a> for &'a str {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoBytes<'a> for &'a Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self)
    }
}
impl<'a> IntoBytes<'a> for &'a String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Borrowed(self.as_bytes())
    }
}
impl<'a> IntoBytes<'a> for Vec<u8> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self)
    }
}
impl<'a> IntoBytes<'a> for String {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        Cow::Owned(self.into_bytes())
    }
}
impl<'a> IntoBytes<'a> for Cow<'a, [u8]> {
    fn into_bytes(self) -> Cow<'a, [u8]> {
        self
    }
}

/// A record header: a UTF-8 key and optional bytes, as in Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header<'a> {
    /// Header key.
    pub key: Cow<'a, str>,
    /// Header value; `None` is a null value.
    pub value: Option<Cow<'a, [u8]>>,
}

/// A record to append: optional key, optional value (`None` is a tombstone), headers and an
/// optional timestamp in milliseconds since the Unix epoch.
///
/// Borrowed bytes are not copied until the record is encoded into the log.
///
/// ```
/// use partlog::Record;
/// let r = Record::new().key("customer-42").value("{\"total\":99}").header("source", "web");
/// assert_eq!(r.key.as_deref(), Some(&b"customer-42"[..]));
/// let tombstone = Record::new().key("customer-42");
/// assert!(tombstone.value.is_none());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record<'a> {
    /// The key; keyed records of a topic always land in the same partition.
    pub key: Option<Cow<'a, [u8]>>,
    /// The value; `None` marks a tombstone (a delete for compaction).
    pub value: Option<Cow<'a, [u8]>>,
    /// Headers, in order.
    pub headers: Vec<Header<'a>>,
    /// Timestamp in ms since the Unix epoch. `None` means "now" at append time. Ignored (replaced
    /// by the append time) when the log uses `message.timestamp.type=LogAppendTime`.
    pub timestamp: Option<i64>,
}

impl<'a> Record<'a> {
    /// An empty record: no key, no value (a tombstone), no headers, timestamp "now".
    pub fn new() -> Self {
        Record::default()
    }

    /// A record with just a value.
    pub fn with_value(value: impl IntoBytes<'a>) -> Self {
        Record::new().value(value)
    }

    /// Sets the key.
    pub fn key(mut self, key: impl IntoBytes<'a>) -> Self {
        self.key = Some(key.into_bytes());
        self
    }

    /// Sets the value.
    pub fn value(mut self, value: impl IntoBytes<'a>) -> Self {
        self.value = Some(value.into_bytes());
        self
    }

    /// Makes the record a tombstone (no value).
    pub fn tombstone(mut self) -> Self {
        self.value = None;
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<Cow<'a, str>>, value: impl IntoBytes<'a>) -> Self {
        self.headers.push(Header { key: key.into(), value: Some(value.into_bytes()) });
        self
    }

    /// Adds a header with a null value.
    pub fn null_header(mut self, key: impl Into<Cow<'a, str>>) -> Self {
        self.headers.push(Header { key: key.into(), value: None });
        self
    }

    /// Sets the timestamp (ms since the Unix epoch).
    pub fn timestamp(mut self, ts: i64) -> Self {
        self.timestamp = Some(ts);
        self
    }
}

/// A record read from the log, borrowing its bytes from the read buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers_count: u32,
    pub(crate) headers: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// The record's offset in its partition.
    #[inline]
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Timestamp, ms since the Unix epoch.
    #[inline]
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }
    /// The key, if any.
    #[inline]
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key
    }
    /// The value; `None` for a tombstone.
    #[inline]
    pub fn value(&self) -> Option<&'a [u8]> {
        self.value
    }
    /// The headers, in order.
    #[inline]
    pub fn headers(&self) -> HeaderIter<'a> {
        HeaderIter { rest: self.headers, remaining: self.headers_count }
    }
    /// Copies the record into an owned [`StoredRecord`].
    pub fn to_owned(&self) -> StoredRecord {
        StoredRecord {
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.map(<[u8]>::to_vec),
            value: self.value.map(<[u8]>::to_vec),
            headers: self.headers().map(|(k, v)| (k.to_owned(), v.map(<[u8]>::to_vec))).collect(),
        }
    }
}

/// Iterator over a [`RecordRef`]'s headers as `(key, value)` pairs.
#[derive(Debug, Clone)]
pub struct HeaderIter<'a> {
    rest: &'a [u8],
    remaining: u32,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // The header area was validated when the batch was decoded, so parsing cannot fail
        // here; a failure just ends the iteration.
        let mut r = crate::batch::Reader::new(self.rest);
        let key = r.bytes()?.ok()??;
        let key = std::str::from_utf8(key).ok()?;
        let value = r.bytes()?.ok()?;
        self.rest = r.rest();
        Some((key, value))
    }
}

/// An owned record read from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// Offset in the partition.
    pub offset: u64,
    /// Timestamp, ms since the Unix epoch.
    pub timestamp: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value; `None` for a tombstone.
    pub value: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}
