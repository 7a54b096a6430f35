//! The CPU gate of unsealing: which decryptions run, and at which CPU priority
//! (docs/design.md, "Reconcile queue").
//!
//! The reconcile queue runs up to `--concurrency` reconciles, most of whose time is API
//! calls; their decryptions, though, are CPU work. Left to the blocking pool, every running
//! reconcile decrypts at once and the cores are shared between all of them: a quiet
//! namespace's one decryption, started in the queue's spare slot, takes as long as the
//! burst's seven beside it.
//!
//! So a decryption needs a permit, of one of two classes, each with one permit per core:
//! - **prompt**: for a namespace with nothing else decrypting or waiting. It runs on the
//!   blocking pool at the process's own CPU priority.
//! - **bulk**: for everything else, the next one going to the waiting namespace that holds
//!   the fewest permits, the earliest waiter among equals (FIFO). While another namespace
//!   has had a prompt permit within [`SHARE_WINDOW`], it runs on threads of the gate's own
//!   at a lower CPU priority ([`BULK_NICE`]); otherwise on the blocking pool.
//!
//! A quiet namespace's decryption thus neither waits for a permit nor shares a core with a
//! burst on equal terms: the kernel gives it (and the API calls of every reconcile, and on a
//! shared machine the API server) the CPU first. With no one to share with, a burst runs at
//! the process's priority: lowering would gain nothing and give CPU to whatever else runs
//! beside it (a co-located API server's idle garbage collection too). Measured in
//! docs/design.md, "Reconcile queue".
//!
//! [`GateState`] decides (pure, no I/O). [`CpuGate`] is the async wrapper: one short lock, no
//! lock held across an await, and a waiter dropped before or after admission gives its
//! place or permit back.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

#[cfg(test)]
#[path = "cpugate_tests.rs"]
mod tests;

/// How long after another namespace's prompt permit a bulk decryption runs at lower
/// priority: a quiet namespace's reconcile goes on after its decryption (the Secret and
/// status writes), and its next object may come soon.
pub const SHARE_WINDOW: Duration = Duration::from_secs(1);

/// The last prompt permits handed out, enough to tell for any namespace when another one
/// last had one.
#[derive(Debug, Default, Clone)]
pub struct LastPrompts {
    /// The last: when, and to which namespace.
    last: Option<(Instant, Arc<str>)>,
    /// The last to a namespace other than `last`'s. A busy namespace gets prompt permits too
    /// (whenever nothing else of its is decrypting or waiting at the gate), and they must not
    /// hide a quiet namespace's.
    other: Option<(Instant, Arc<str>)>,
}

impl LastPrompts {
    /// A prompt permit to `ns` at `at`.
    pub fn record(&mut self, at: Instant, ns: &Arc<str>) {
        if self.last.as_ref().is_some_and(|(_, l)| l != ns) {
            self.other = self.last.take();
        }
        self.last = Some((at, ns.clone()));
    }

    /// Whether a bulk decryption of namespace `ns` runs at lower priority at `now`: when
    /// another namespace had a prompt permit within [`SHARE_WINDOW`].
    pub fn lowered(&self, ns: &str, now: Instant) -> bool {
        let another = match &self.last {
            Some((_, l)) if &**l == ns => self.other.as_ref(),
            last => last.as_ref(),
        };
        another.is_some_and(|(at, _)| now.saturating_duration_since(*at) < SHARE_WINDOW)
    }
}

/// How much lower the bulk threads' priority is (nice value): the kernel gives a thread of
/// nice 0 about nine tenths of a core it shares with one of nice 10 (CFS weights 1024 and
/// 110), and the bulk threads still use every core no one else wants. A thread may lower its
/// own priority without privilege, so this works in any container.
pub const BULK_NICE: i32 = 10;

/// One waiter or permit holder, numbered in arrival order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ticket(u64);

/// The class of a permit: where and at which CPU priority its decryption runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Its namespace had nothing else decrypting or waiting: normal priority.
    Prompt,
    /// Part of a namespace's backlog: lower priority ([`BULK_NICE`]) while another namespace
    /// decrypts ([`LastPrompts::lowered`]).
    Bulk,
}

#[derive(Debug, Default)]
struct Lane {
    /// Permits this namespace holds, of either class.
    admitted: usize,
    /// Its waiters, in arrival order.
    waiting: BTreeSet<Ticket>,
}

impl Lane {
    /// Whether its first waiter may take a prompt permit: nothing else of its namespace is
    /// decrypting or waiting.
    fn solo(&self) -> bool {
        self.admitted == 0 && self.waiting.len() == 1
    }
}

/// The gate's decisions: who holds a permit of which class, who waits, who is admitted next.
#[derive(Debug)]
pub struct GateState<N> {
    /// Permits of each class.
    permits: usize,
    prompt: usize,
    bulk: usize,
    next: u64,
    tickets: HashMap<Ticket, (N, Option<Class>)>,
    lanes: HashMap<N, Lane>,
    /// The namespaces with waiters in bulk admission order: `(permits held, first waiter,
    /// ns)` of every lane whose `waiting` is not empty, and only those.
    order: BTreeSet<(usize, Ticket, N)>,
    /// The lanes whose waiter may take a prompt permit ([`Lane::solo`]), in arrival order.
    solo: BTreeSet<(Ticket, N)>,
}

impl<N: Clone + Eq + Hash + Ord> GateState<N> {
    /// A gate of `permits` concurrent holders of each class (at least one).
    pub fn new(permits: usize) -> Self {
        Self {
            permits: permits.max(1),
            prompt: 0,
            bulk: 0,
            next: 0,
            tickets: HashMap::new(),
            lanes: HashMap::new(),
            order: BTreeSet::new(),
            solo: BTreeSet::new(),
        }
    }

    /// A new waiter of namespace `ns`; returns its ticket and the tickets admitted now (its
    /// own among them when a permit was free), each with its class.
    pub fn arrive(&mut self, ns: N) -> (Ticket, Vec<(Ticket, Class)>) {
        let ticket = Ticket(self.next);
        self.next += 1;
        self.tickets.insert(ticket, (ns.clone(), None));
        self.unindex(&ns);
        self.lanes
            .entry(ns.clone())
            .or_default()
            .waiting
            .insert(ticket);
        self.index(&ns);
        (ticket, self.admit())
    }

    /// `ticket` leaves: a waiter gives up its place, a holder its permit. Returns the tickets
    /// admitted in its stead. An unknown ticket (already gone) changes nothing.
    pub fn leave(&mut self, ticket: Ticket) -> Vec<(Ticket, Class)> {
        let Some((ns, class)) = self.tickets.remove(&ticket) else {
            return Vec::new();
        };
        self.unindex(&ns);
        if let Some(lane) = self.lanes.get_mut(&ns) {
            match class {
                Some(c) => {
                    lane.admitted -= 1;
                    *self.held_mut(c) -= 1;
                }
                None => {
                    lane.waiting.remove(&ticket);
                }
            }
        }
        self.index(&ns);
        self.admit()
    }

    /// The namespace of `ticket` (`None`: gone).
    pub fn namespace(&self, ticket: Ticket) -> Option<&N> {
        self.tickets.get(&ticket).map(|(ns, _)| ns)
    }

    /// The class of `ticket`'s permit, `None` while it waits (or is gone).
    #[cfg(test)]
    pub fn class(&self, ticket: Ticket) -> Option<Class> {
        self.tickets.get(&ticket).and_then(|(_, c)| *c)
    }

    /// Permits held now, of either class.
    #[cfg(test)]
    pub fn admitted(&self) -> usize {
        self.prompt + self.bulk
    }

    /// Waiters not admitted yet.
    #[cfg(test)]
    pub fn waiting(&self) -> usize {
        self.tickets.len() - self.admitted()
    }

    /// Whether nothing is held, waited for or indexed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.lanes.is_empty()
            && self.order.is_empty()
            && self.solo.is_empty()
            && self.tickets.is_empty()
    }

    fn held_mut(&mut self, class: Class) -> &mut usize {
        match class {
            Class::Prompt => &mut self.prompt,
            Class::Bulk => &mut self.bulk,
        }
    }

    /// Takes lane `ns` out of the admission indexes, before it changes.
    fn unindex(&mut self, ns: &N) {
        let Some(lane) = self.lanes.get(ns) else {
            return;
        };
        if let Some(first) = lane.waiting.first().copied() {
            self.order.remove(&(lane.admitted, first, ns.clone()));
            if lane.solo() {
                self.solo.remove(&(first, ns.clone()));
            }
        }
    }

    /// Puts lane `ns` back into the admission indexes after a change, or drops it when it
    /// holds and waits for nothing.
    fn index(&mut self, ns: &N) {
        let Some(lane) = self.lanes.get(ns) else {
            return;
        };
        match lane.waiting.first().copied() {
            Some(first) => {
                self.order.insert((lane.admitted, first, ns.clone()));
                if lane.solo() {
                    self.solo.insert((first, ns.clone()));
                }
            }
            None if lane.admitted == 0 => {
                self.lanes.remove(ns);
            }
            None => {}
        }
    }

    /// Hands out free permits: a prompt one to the earliest solo lane, a bulk one to the
    /// first lane of [`Self::order`].
    fn admit(&mut self) -> Vec<(Ticket, Class)> {
        let mut admitted = Vec::new();
        loop {
            let next = match self.solo.first() {
                Some((t, ns)) if self.prompt < self.permits => (*t, ns.clone(), Class::Prompt),
                _ => match self.order.first() {
                    Some((_, t, ns)) if self.bulk < self.permits => (*t, ns.clone(), Class::Bulk),
                    _ => break,
                },
            };
            let (ticket, ns, class) = next;
            self.unindex(&ns);
            if let Some(lane) = self.lanes.get_mut(&ns) {
                lane.waiting.remove(&ticket);
                lane.admitted += 1;
            }
            self.index(&ns);
            if let Some(t) = self.tickets.get_mut(&ticket) {
                t.1 = Some(class);
            }
            *self.held_mut(class) += 1;
            admitted.push((ticket, class));
        }
        admitted
    }
}

/// The number of decryptions of each class that may run at once: `--unseal-concurrency` when
/// set, else the cores this process may use (`std::thread::available_parallelism`, which
/// counts a cgroup's CPU quota), else one.
pub fn permits(unseal_concurrency: u16) -> usize {
    match unseal_concurrency {
        0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        n => usize::from(n),
    }
}

/// A decryption that did not finish: it panicked, or its thread is gone.
#[derive(Debug, thiserror::Error)]
#[error("the decryption task {0}")]
pub struct TaskFailed(&'static str);

/// The gate shared by all reconciles ([`GateState`] behind one lock) and its bulk threads.
#[derive(Debug)]
pub struct CpuGate {
    inner: Mutex<Inner>,
    bulk: BulkThreads,
}

#[derive(Debug)]
struct Inner {
    state: GateState<Arc<str>>,
    /// How to wake each waiter once admitted, with its class.
    wake: HashMap<Ticket, oneshot::Sender<Class>>,
    /// The last prompt permits handed out ([`LastPrompts::lowered`]).
    last_prompts: LastPrompts,
}

impl Inner {
    /// Wakes the admitted waiters but `own`, and notes the prompt permits among them; returns
    /// `own`'s class when it was among them.
    fn wake(&mut self, admitted: Vec<(Ticket, Class)>, own: Option<Ticket>) -> Option<Class> {
        let mut own_class = None;
        for (t, class) in admitted {
            if class == Class::Prompt
                && let Some(ns) = self.state.namespace(t)
            {
                self.last_prompts.record(Instant::now(), ns);
            }
            if Some(t) == own {
                own_class = Some(class);
            } else if let Some(tx) = self.wake.remove(&t) {
                // A receiver gone is a waiter being dropped: its permit is given back by
                // its own drop, which takes this lock after us.
                let _ = tx.send(class);
            }
        }
        own_class
    }
}

/// A permit to decrypt (or a place in the line, until [`CpuGate::enter`] returns it):
/// dropping it frees the permit or the place.
#[derive(Debug)]
pub struct CpuPermit {
    gate: Arc<CpuGate>,
    ticket: Ticket,
    class: Class,
    ns: Arc<str>,
}

impl Drop for CpuPermit {
    fn drop(&mut self) {
        let mut inner = self.gate.lock();
        inner.wake.remove(&self.ticket);
        let admitted = inner.state.leave(self.ticket);
        inner.wake(admitted, None);
    }
}

impl CpuPermit {
    /// The class it was admitted as.
    #[cfg(test)]
    pub fn class(&self) -> Class {
        self.class
    }

    /// Runs `f` (the decryption) where its class says ([`LastPrompts::lowered`]), holding the permit until
    /// `f` ends, even if the caller is dropped meanwhile.
    pub async fn run<T: Send + 'static>(
        self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, TaskFailed> {
        let low = self.class == Class::Bulk
            && self
                .gate
                .lock()
                .last_prompts
                .lowered(&self.ns, Instant::now());
        if !low {
            return tokio::task::spawn_blocking(move || {
                let _permit = self;
                f()
            })
            .await
            .map_err(|e| {
                TaskFailed(if e.is_panic() {
                    "panicked"
                } else {
                    "was cancelled"
                })
            });
        }
        let (tx, rx) = oneshot::channel();
        let bulk = self.gate.bulk.clone();
        bulk.run(Box::new(move || {
            let out = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
            // Given back before the caller learns the outcome, as the blocking pool's task
            // does.
            drop(self);
            let _ = tx.send(out.map_err(|_| TaskFailed("panicked")));
        }))?;
        rx.await.map_err(|_| TaskFailed("lost its thread"))?
    }
}

impl CpuGate {
    /// A gate of `permits` concurrent decryptions of each class (at least one).
    pub fn new(permits: usize) -> Arc<Self> {
        let permits = permits.max(1);
        Arc::new(Self {
            inner: Mutex::new(Inner {
                state: GateState::new(permits),
                wake: HashMap::new(),
                last_prompts: LastPrompts::default(),
            }),
            bulk: BulkThreads::new(permits),
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
        let ns: Arc<str> = Arc::from(ns);
        let (mut permit, rx) = {
            let mut inner = self.lock();
            let (ticket, admitted) = inner.state.arrive(ns.clone());
            let mut permit = CpuPermit {
                gate: self.clone(),
                ticket,
                class: Class::Bulk,
                ns,
            };
            if let Some(class) = inner.wake(admitted, Some(ticket)) {
                drop(inner);
                permit.class = class;
                return permit;
            }
            let (tx, rx) = oneshot::channel();
            inner.wake.insert(ticket, tx);
            (permit, rx)
        };
        // The sender is only dropped after sending, or by this permit's own drop: an error
        // cannot happen while `permit` lives.
        if let Ok(class) = rx.await {
            permit.class = class;
        }
        permit
    }

    /// Permits held now, and waiters.
    #[cfg(test)]
    pub fn load(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.state.admitted(), inner.state.waiting())
    }
}

type Job = Box<dyn FnOnce() + Send>;

/// The threads of bulk decryptions, one per bulk permit, so a job never waits for a thread.
/// Started on first use; they end when the gate is dropped.
#[derive(Debug, Clone)]
struct BulkThreads {
    threads: usize,
    jobs: Arc<std::sync::OnceLock<Mutex<mpsc::Sender<Job>>>>,
}

impl BulkThreads {
    fn new(threads: usize) -> Self {
        Self {
            threads,
            jobs: Arc::new(std::sync::OnceLock::new()),
        }
    }

    fn run(&self, job: Job) -> Result<(), TaskFailed> {
        let jobs = self.jobs.get_or_init(|| Mutex::new(self.start()));
        jobs.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .send(job)
            .map_err(|_| TaskFailed("found no thread to run on"))
    }

    fn start(&self) -> mpsc::Sender<Job> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..self.threads {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("unseal-bulk-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = rx
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start a bulk decryption thread");
            }
        }
        tx
    }
}

/// Lowers the calling thread's CPU priority by [`BULK_NICE`] (to at most 19, the lowest),
/// relative to the process's own: a controller started at a lower priority keeps the
/// difference. On Linux the nice value is a thread's own, not the process's. Elsewhere, or
/// when refused, the thread keeps the process's priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{getpriority_process, setpriority_process};
        let tid = Some(rustix::thread::gettid());
        let lowered = getpriority_process(tid)
            .and_then(|nice| setpriority_process(tid, (nice + BULK_NICE).min(19)));
        if let Err(e) = lowered {
            tracing::warn!(
                error = %e,
                "could not lower a bulk decryption thread's CPU priority; it runs at the process's"
            );
        }
    }
}
