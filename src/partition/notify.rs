//! Wake-ups on append: how a caught-up consumer waits for new data without polling.
//!
//! A waiter owns a [`Doorbell`] and registers it with every partition it reads. Before it
//! decides there is nothing to read, it *arms* the doorbell; an append rings every armed
//! doorbell of its partition after publishing the new end. Arming and the append's check are
//! sequentially consistent, so either the waiter sees the new end or the append sees the
//! armed doorbell — a wake-up is never lost. An append with nobody registered pays one atomic
//! load; with registered but unarmed doorbells, one read lock and one atomic swap each.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

/// How long [`Doorbell::wait`] spins before it sleeps (and a consumer stream yields before
/// its task parks).
pub(crate) const SPIN: Duration = Duration::from_micros(50);

/// One waiter's bell: a flag, a condition variable for threads and a waker for tasks.
#[derive(Debug, Default)]
pub struct Doorbell {
    armed: AtomicBool,
    rung: Mutex<bool>,
    cv: Condvar,
    waker: Mutex<Option<Waker>>,
}

impl Doorbell {
    /// A new, unarmed doorbell.
    pub fn new() -> Arc<Doorbell> {
        Arc::new(Doorbell::default())
    }

    /// Arms the bell: the next append to a partition it is registered with rings it. Call
    /// before the last check for data.
    pub fn arm(&self) {
        *self.rung.lock() = false;
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Whether the bell is armed and has not rung since.
    #[cfg(feature = "async")]
    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// Disarms the bell (data was found after all).
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    /// Waits until the bell rings or `timeout` passes; returns whether it rang.
    ///
    /// It first spins for up to 50 µs (checking one atomic), then sleeps on a condition
    /// variable: waking a sleeping thread costs tens of microseconds on an idle machine (the
    /// core has to come out of its idle state), a spinning one notices within nanoseconds.
    pub fn wait(&self, timeout: Duration) -> bool {
        let start = Instant::now();
        let deadline = start + timeout;
        let spin = SPIN.min(timeout);
        'spin: loop {
            for _ in 0..64 {
                // An append disarms the bell before it rings it.
                if !self.armed.load(Ordering::Acquire) {
                    break 'spin;
                }
                std::hint::spin_loop();
            }
            if start.elapsed() >= spin {
                break;
            }
        }
        let mut rung = self.rung.lock();
        while !*rung {
            if self.cv.wait_until(&mut rung, deadline).timed_out() {
                break;
            }
        }
        let r = *rung;
        *rung = false;
        self.armed.store(false, Ordering::SeqCst);
        r
    }

    /// Sets the waker an async waiter wants woken (replacing an earlier one).
    pub fn set_waker(&self, waker: &Waker) {
        let mut w = self.waker.lock();
        if !w.as_ref().is_some_and(|old| old.will_wake(waker)) {
            *w = Some(waker.clone());
        }
    }

    /// Rings the bell whether or not it is armed (membership changes, close).
    pub fn ring(&self) {
        self.armed.store(false, Ordering::SeqCst);
        *self.rung.lock() = true;
        self.cv.notify_all();
        if let Some(w) = self.waker.lock().take() {
            w.wake();
        }
    }

    fn ring_if_armed(&self) {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.ring();
        }
    }
}

/// The doorbells registered with one partition.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    count: AtomicUsize,
    bells: RwLock<Vec<Weak<Doorbell>>>,
}

impl Listeners {
    pub(crate) fn register(&self, bell: &Arc<Doorbell>) {
        let mut v = self.bells.write();
        v.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(bell)));
        v.push(Arc::downgrade(bell));
        self.count.store(v.len(), Ordering::SeqCst);
    }

    pub(crate) fn unregister(&self, bell: &Arc<Doorbell>) {
        let mut v = self.bells.write();
        v.retain(|w| w.strong_count() > 0 && !std::ptr::eq(w.as_ptr(), Arc::as_ptr(bell)));
        self.count.store(v.len(), Ordering::SeqCst);
    }

    /// Rings every registered doorbell, armed or not (the partition closed).
    pub(crate) fn ring_all(&self) {
        for w in self.bells.read().iter() {
            if let Some(b) = w.upgrade() {
                b.ring();
            }
        }
    }

    /// After an append published its end: rings every armed doorbell.
    #[inline]
    pub(crate) fn appended(&self) {
        if self.count.load(Ordering::SeqCst) == 0 {
            return;
        }
        for w in self.bells.read().iter() {
            if let Some(b) = w.upgrade() {
                b.ring_if_armed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_bell_rings_once_and_an_unarmed_one_not() {
        let l = Listeners::default();
        let b = Doorbell::new();
        l.register(&b);
        l.appended();
        assert!(!b.wait(Duration::from_millis(1)), "an unarmed bell rang");
        b.arm();
        l.appended();
        assert!(b.wait(Duration::from_secs(60)));
        l.unregister(&b);
        b.arm();
        l.appended();
        assert!(!b.wait(Duration::from_millis(1)), "an unregistered bell rang");
    }

    /// The registered bells, in order, and the count appends look at.
    fn registered(l: &Listeners) -> (Vec<*const Doorbell>, usize) {
        (l.bells.read().iter().map(Weak::as_ptr).collect(), l.count.load(Ordering::SeqCst))
    }

    #[test]
    fn registering_again_keeps_one_entry_and_drops_dead_bells() {
        let l = Listeners::default();
        let b = Doorbell::new();
        l.register(&b);
        l.register(&b);
        assert_eq!(registered(&l), (vec![Arc::as_ptr(&b)], 1));
        let gone = Doorbell::new();
        l.register(&gone);
        drop(gone);
        let c = Doorbell::new();
        l.register(&c);
        assert_eq!(registered(&l), (vec![Arc::as_ptr(&b), Arc::as_ptr(&c)], 2));
        let gone = Doorbell::new();
        l.register(&gone);
        drop(gone);
        l.unregister(&b);
        assert_eq!(registered(&l), (vec![Arc::as_ptr(&c)], 1));
    }

    #[test]
    fn ring_all_rings_unarmed_bells_too() {
        let l = Listeners::default();
        let (a, b) = (Doorbell::new(), Doorbell::new());
        l.register(&a);
        l.register(&b);
        a.arm();
        l.ring_all();
        assert!(a.wait(Duration::ZERO) && b.wait(Duration::ZERO));
    }

    #[test]
    fn a_disarmed_bell_does_not_ring() {
        let l = Listeners::default();
        let b = Doorbell::new();
        l.register(&b);
        b.arm();
        b.disarm();
        l.appended();
        assert!(!b.wait(Duration::ZERO), "a disarmed bell rang");
    }

    #[test]
    fn a_ring_from_another_thread_wakes_the_waiter() {
        let l = Arc::new(Listeners::default());
        let b = Doorbell::new();
        l.register(&b);
        b.arm();
        let l2 = Arc::clone(&l);
        let t = std::thread::spawn(move || l2.appended());
        assert!(b.wait(Duration::from_secs(60)));
        t.join().ok();
    }
}
