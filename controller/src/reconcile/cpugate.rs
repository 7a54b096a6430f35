//! The CPU gate of unsealing: at most one decryption per core at a time, the next one
//! admitted fairly between namespaces (docs/design.md, "Reconcile queue").
//!
//! The reconcile queue runs up to `--concurrency` reconciles, most of whose time is API
//! calls; their decryptions, though, are CPU work. Left to the blocking pool, every running
//! reconcile decrypts at once and the cores are shared between all of them: a quiet
//! namespace's one decryption, started in the queue's spare slot, takes as long as the
//! burst's seven beside it. Behind the gate it waits for at most one decryption to end, then
//! runs on a core of its own.
//!
//! [`GateState`] decides (pure, no I/O): a free permit goes to the waiting namespace that
//! holds the fewest permits; among namespaces that hold as many, to the earliest waiter
//! (FIFO). [`CpuGate`] is the async wrapper: one short lock, no lock held across an await,
//! and a waiter dropped before or after admission gives its place or permit back.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use tokio::sync::oneshot;

#[cfg(test)]
#[path = "cpugate_tests.rs"]
mod tests;

/// One waiter or permit holder, numbered in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

#[derive(Debug, Default)]
struct Lane {
    /// Permits this namespace holds.
    admitted: usize,
    /// Its waiters, in arrival order.
    waiting: BTreeSet<Ticket>,
}

/// The gate's decisions: who holds a permit, who waits, who is admitted next.
#[derive(Debug)]
pub struct GateState<N> {
    permits: usize,
    admitted: usize,
    next: u64,
    tickets: HashMap<Ticket, (N, bool)>,
    lanes: HashMap<N, Lane>,
    /// The namespaces with waiters in admission order: `(permits held, first waiter, ns)`
    /// of every lane whose `waiting` is not empty, and only those.
    order: BTreeSet<(usize, Ticket, N)>,
}

impl<N: Clone + Eq + Hash + Ord> GateState<N> {
    /// A gate of `permits` concurrent holders (at least one).
    pub fn new(permits: usize) -> Self {
        Self {
            permits: permits.max(1),
            admitted: 0,
            next: 0,
            tickets: HashMap::new(),
            lanes: HashMap::new(),
            order: BTreeSet::new(),
        }
    }

    /// A new waiter of namespace `ns`; returns its ticket and the tickets admitted now (its
    /// own among them when a permit was free).
    pub fn arrive(&mut self, ns: N) -> (Ticket, Vec<Ticket>) {
        let ticket = Ticket(self.next);
        self.next += 1;
        self.tickets.insert(ticket, (ns.clone(), false));
        let lane = self.lanes.entry(ns.clone()).or_default();
        if lane.waiting.is_empty() {
            self.order.insert((lane.admitted, ticket, ns));
        }
        lane.waiting.insert(ticket);
        (ticket, self.admit())
    }

    /// `ticket` leaves: a waiter gives up its place, a holder its permit. Returns the tickets
    /// admitted in its stead. An unknown ticket (already gone) changes nothing.
    pub fn leave(&mut self, ticket: Ticket) -> Vec<Ticket> {
        let Some((ns, admitted)) = self.tickets.remove(&ticket) else {
            return Vec::new();
        };
        let Some(lane) = self.lanes.get_mut(&ns) else {
            return Vec::new();
        };
        if let Some(first) = lane.waiting.first().copied() {
            self.order.remove(&(lane.admitted, first, ns.clone()));
        }
        if admitted {
            lane.admitted -= 1;
            self.admitted -= 1;
        } else {
            lane.waiting.remove(&ticket);
        }
        if let Some(first) = lane.waiting.first().copied() {
            self.order.insert((lane.admitted, first, ns.clone()));
        }
        if lane.admitted == 0 && lane.waiting.is_empty() {
            self.lanes.remove(&ns);
        }
        self.admit()
    }

    /// Whether `ticket` holds a permit.
    #[cfg(test)]
    pub fn is_admitted(&self, ticket: Ticket) -> bool {
        self.tickets.get(&ticket).is_some_and(|(_, a)| *a)
    }

    /// Permits held now.
    #[cfg(test)]
    pub fn admitted(&self) -> usize {
        self.admitted
    }

    /// Waiters not admitted yet.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.tickets.len() - self.admitted
    }

    /// Hands out free permits: each to the first lane of [`Self::order`].
    fn admit(&mut self) -> Vec<Ticket> {
        let mut admitted = Vec::new();
        while self.admitted < self.permits {
            let Some((held, first, ns)) = self.order.pop_first() else {
                break;
            };
            let Some(lane) = self.lanes.get_mut(&ns) else {
                break;
            };
            lane.waiting.remove(&first);
            lane.admitted = held + 1;
            if let Some(next) = lane.waiting.first().copied() {
                self.order.insert((lane.admitted, next, ns));
            }
            if let Some(t) = self.tickets.get_mut(&first) {
                t.1 = true;
            }
            self.admitted += 1;
            admitted.push(first);
        }
        admitted
    }
}

/// The number of decryptions that may run at once: `--unseal-concurrency` when set, else the
/// cores this process may use (`std::thread::available_parallelism`, which counts a
/// cgroup's CPU quota), else one.
pub fn permits(unseal_concurrency: u16) -> usize {
    match unseal_concurrency {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => usize::from(n),
    }
}

/// The gate shared by all reconciles ([`GateState`] behind one lock).
#[derive(Debug)]
pub struct CpuGate {
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    state: GateState<Arc<str>>,
    /// How to wake each waiter once admitted.
    wake: HashMap<Ticket, oneshot::Sender<()>>,
}

impl Inner {
    /// Wakes the admitted waiters but `own`; returns whether `own` was among them.
    fn wake(&mut self, admitted: Vec<Ticket>, own: Option<Ticket>) -> bool {
        let mut own_admitted = false;
        for t in admitted {
            if Some(t) == own {
                own_admitted = true;
            } else if let Some(tx) = self.wake.remove(&t) {
                // A receiver gone is a waiter being dropped: its permit is given back by
                // its own drop, which takes this lock after us.
                let _ = tx.send(());
            }
        }
        own_admitted
    }
}

/// A permit to decrypt (or a place in the line, until [`CpuGate::enter`] returns it):
/// dropping it frees the permit or the place.
#[derive(Debug)]
pub struct CpuPermit {
    gate: Arc<CpuGate>,
    ticket: Ticket,
}

impl Drop for CpuPermit {
    fn drop(&mut self) {
        let mut inner = self.gate.lock();
        inner.wake.remove(&self.ticket);
        let admitted = inner.state.leave(self.ticket);
        inner.wake(admitted, None);
    }
}

impl CpuGate {
    /// A gate of `permits` concurrent decryptions (at least one).
    pub fn new(permits: usize) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner {
                state: GateState::new(permits),
                wake: HashMap::new(),
            }),
        })
    }

    /// The state, also when a panic left the lock poisoned (as `context::lock`, not used
    /// here to keep the two modules free of a circle): one panicking reconcile must not stop
    /// every later decryption.
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Waits for a permit for a decryption of namespace `ns`. Cancellation-safe: dropping
    /// the future gives the place (or a permit handed over meanwhile) back.
    pub async fn enter(self: &Arc<Self>, ns: &str) -> CpuPermit {
        let (permit, rx) = {
            let mut inner = self.lock();
            let (ticket, admitted) = inner.state.arrive(Arc::from(ns));
            let permit = CpuPermit {
                gate: self.clone(),
                ticket,
            };
            if inner.wake(admitted, Some(ticket)) {
                drop(inner);
                return permit;
            }
            let (tx, rx) = oneshot::channel();
            inner.wake.insert(ticket, tx);
            (permit, rx)
        };
        // The sender is only dropped after sending, or by this permit's own drop: an error
        // cannot happen while `permit` lives.
        let _ = rx.await;
        permit
    }

    /// Permits held now, and waiters.
    #[cfg(test)]
    pub fn load(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.state.admitted(), inner.state.waiting())
    }
}
