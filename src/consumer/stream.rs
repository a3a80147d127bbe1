//! The consumer as a `futures_core::Stream` (feature `async`), runtime-agnostic: it polls
//! without blocking and parks the task on the consumer's doorbell, which appends to its
//! partitions (and group changes) ring — no timer, no runtime dependency.
//!
//! Like a blocking [`Consumer::poll`], a stream that has just caught up first stays awake for
//! up to 50 µs: it returns `Pending` and wakes its own task at once (a cooperative yield,
//! so other tasks on the executor run in between), looking at one atomic flag per turn.
//! A record appended in that window is in the task's hands within a microsecond or two; one
//! arriving later wakes the parked task through its waker, which on an idle machine takes
//! the executor tens of microseconds. After the window the task is parked and uses no CPU.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use super::{Consumer, RebalanceEvent};
use crate::error::Result;
use crate::partition::notify::SPIN;
use crate::record::StoredRecord;

/// An owned record from a [`ConsumerStream`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedConsumerRecord {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: u32,
    /// The record.
    pub record: StoredRecord,
}

/// A [`Consumer`] as a stream of records, from [`Consumer::stream`].
///
/// Caught up, it first stays awake for up to 50 µs (it returns `Pending` and wakes its own
/// task at once, so other tasks run in between), as a blocking [`Consumer::poll`] spins: a
/// record appended in that window reaches the task within a few microseconds. Then the task
/// parks until an append (or a group change) wakes it, and takes no CPU.
///
/// ```
/// # #[cfg(feature = "async")] {
/// use futures_core::Stream;
/// use partlog::{ConsumerConfig, LogDir, Record, TopicConfig, TopicPartition};
/// use std::pin::Pin;
/// use std::task::{Context, Poll, Waker};
/// # let tmp = tempfile::tempdir().unwrap();
/// let dir = LogDir::open(tmp.path().join("data")).unwrap();
/// let t = dir.create_topic("events", TopicConfig::default()).unwrap();
/// t.append(Record::with_value("hello")).unwrap();
/// let mut c = dir.consumer(ConsumerConfig::new().set("auto.offset.reset", "earliest").unwrap()).unwrap();
/// c.assign(&[TopicPartition::new("events", 0)]).unwrap();
/// let mut s = c.stream();
/// let mut cx = Context::from_waker(Waker::noop());
/// match Pin::new(&mut s).poll_next(&mut cx) {
///     Poll::Ready(Some(Ok(r))) => assert_eq!(r.record.value.as_deref(), Some(&b"hello"[..])),
///     other => panic!("{other:?}"),
/// }
/// # }
/// ```
#[derive(Debug)]
pub struct ConsumerStream<'a> {
    consumer: &'a mut Consumer,
    buffer: VecDeque<OwnedConsumerRecord>,
    events: Vec<RebalanceEvent>,
    /// When the stream last found nothing with its doorbell armed: it yields (instead of
    /// parking) until [`SPIN`] has passed since.
    idle_since: Option<Instant>,
}

impl Consumer {
    /// This consumer as a stream of owned records, woken by appends.
    pub fn stream(&mut self) -> ConsumerStream<'_> {
        ConsumerStream { consumer: self, buffer: VecDeque::new(), events: Vec::new(), idle_since: None }
    }
}

impl ConsumerStream<'_> {
    /// Assignment changes seen since the last call.
    pub fn take_events(&mut self) -> Vec<RebalanceEvent> {
        std::mem::take(&mut self.events)
    }

    /// The consumer (to commit, seek, …).
    pub fn consumer(&mut self) -> &mut Consumer {
        self.consumer
    }

    fn fill(&mut self) -> Result<()> {
        let recs = self.consumer.poll_ready()?;
        self.events.extend(recs.events().iter().cloned());
        for r in recs.iter() {
            self.buffer.push_back(OwnedConsumerRecord {
                topic: r.topic().to_owned(),
                partition: r.partition(),
                record: r.record().to_owned(),
            });
        }
        Ok(())
    }
}

impl futures_core::Stream for ConsumerStream<'_> {
    type Item = Result<OwnedConsumerRecord>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if let Some(r) = this.buffer.pop_front() {
            return Poll::Ready(Some(Ok(r)));
        }
        if let Some(since) = this.idle_since {
            // Still armed: nothing was appended (an append disarms before it rings).
            if this.consumer.doorbell().is_armed() {
                if since.elapsed() < SPIN {
                    cx.waker().wake_by_ref();
                } else {
                    // Parked: the waker set when the bell was armed is the one rung.
                    this.consumer.doorbell().set_waker(cx.waker());
                }
                return Poll::Pending;
            }
            this.idle_since = None;
        }
        if let Err(e) = this.fill() {
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(r) = this.buffer.pop_front() {
            return Poll::Ready(Some(Ok(r)));
        }
        // Park on the doorbell: register the waker, arm, and look once more so an append
        // between the last look and the arming is not missed.
        let bell = std::sync::Arc::clone(this.consumer.doorbell());
        bell.set_waker(cx.waker());
        bell.arm();
        if let Err(e) = this.fill() {
            return Poll::Ready(Some(Err(e)));
        }
        match this.buffer.pop_front() {
            Some(r) => {
                bell.disarm();
                Poll::Ready(Some(Ok(r)))
            }
            None => {
                this.idle_since = Some(Instant::now());
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    }
}
