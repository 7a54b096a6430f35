//! The reconcile queue: which requested reconcile starts next (pure, no I/O; [`super::runner`]
//! drives it). docs/design.md, "Reconcile queue", says why it is fair and what it promises.
//!
//! - Each namespace has its own FIFO of ready requests; namespaces take turns, so a burst of
//!   creates in one namespace does not delay another namespace's creates behind all of it.
//! - Max-min fair share of the worker slots: a free slot goes to the namespace with ready
//!   work that runs the fewest reconciles (ties: the one served least recently). A
//!   namespace that runs nothing therefore starts next, and when several have work none
//!   holds more than its share once the slots it took while alone are freed (slots are
//!   never taken back from a running reconcile).
//! - The last free slot is kept for a namespace that runs nothing ([`FairQueue::new`]'s
//!   `spare`), so a quiet namespace's create starts at once instead of waiting for one of
//!   the busy namespace's reconciles to end.
//! - While another namespace has started a reconcile promptly (nothing else of its own
//!   running or ready) within a window, a namespace runs at most a few reconciles at once
//!   ([`FairQueue::crowded`]): a quiet namespace's reconcile then shares the API server and
//!   the cores with a few of the busy one's instead of all of them, while a namespace alone
//!   keeps every slot. While such a prompt reconcile runs, the busy namespace starts no more
//!   than one fewer (at least one), leaving the prompt one a core's worth of room.
//! - An object is queued once (requests for it merge, the earliest wins); a request for an
//!   object being reconciled marks it to run again when that reconcile ends: one object is
//!   never reconciled twice at once.
//! - Requeues (error backoff, a status write to retry) wait in a timer structure and join
//!   their namespace's FIFO when due; they never hold back ready work.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;

/// When to reconcile an object again by itself (`None`: at its next change). It is what
/// kube-runtime's [`Action`](kube::runtime::controller::Action) says, in a form the reconcile queue can read (`Action` keeps
/// its delay private).
pub type RunAgain = Option<Duration>;

/// What the queue holds: a request key that knows its namespace.
pub trait Request: Clone + Eq + Hash {
    type Namespace: Clone + Eq + Hash + Ord;
    fn namespace(&self) -> &Self::Namespace;
}

/// A SealedSecret to reconcile, by namespace and name (what the watch cache finds it by).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub namespace: Arc<str>,
    pub name: Box<str>,
}

impl Request for ObjectKey {
    type Namespace = Arc<str>;
    fn namespace(&self) -> &Arc<str> {
        &self.namespace
    }
}

/// A reconcile that may start now: its key, and how long its request waited in the queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started<K> {
    pub key: K,
    pub waited: Duration,
}

/// Where one object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// In its namespace's FIFO, requested (or due) since then.
    Ready { since: Instant },
    /// In the timers, due at `at` (`seq` tells equal deadlines apart).
    Delayed { at: Instant, seq: u64 },
    /// Being reconciled; `again` says whether and when it runs once more afterwards;
    /// `prompt`: it started with nothing else of its namespace running or ready.
    Running { again: Again, prompt: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Again {
    No,
    /// Requested at this time while running: ready as soon as the reconcile ends.
    Now(Instant),
    /// A requeue due at this time.
    At(Instant),
}

impl Again {
    /// The earlier of two requests to run again.
    fn merge(self, other: Again) -> Again {
        match (self, other) {
            (Again::No, x) | (x, Again::No) => x,
            (Again::Now(a), Again::Now(b)) => Again::Now(a.min(b)),
            (n @ Again::Now(_), Again::At(_)) | (Again::At(_), n @ Again::Now(_)) => n,
            (Again::At(a), Again::At(b)) => Again::At(a.min(b)),
        }
    }
}

/// One namespace with work (ready or running).
#[derive(Debug)]
struct Lane<K> {
    ready: VecDeque<K>,
    running: usize,
    /// When it was last served or last became ready: orders lanes that run as many.
    turn: u64,
}

/// The scheduling decisions of the reconcile loop. See the module documentation.
#[derive(Debug)]
pub struct FairQueue<K: Request> {
    slots: usize,
    spare: bool,
    objects: HashMap<K, State>,
    lanes: HashMap<K::Namespace, Lane<K>>,
    /// The lanes with ready work, in serving order: fewest running first, then least
    /// recently served. Every entry is `(lane.running, lane.turn, namespace)` of a lane
    /// whose `ready` is not empty, and only those.
    turns: BTreeSet<(usize, u64, K::Namespace)>,
    timers: BTreeMap<(Instant, u64), K>,
    running: usize,
    tick: u64,
    crowded: Option<Crowded>,
    /// The latest prompt start, and the latest one of any other namespace than that one's:
    /// enough to tell whether a namespace other than a given one started promptly lately.
    prompt: [Option<(K::Namespace, Instant)>; 2],
    /// Reconciles that started promptly and still run, per namespace.
    prompt_running: HashMap<K::Namespace, usize>,
}

/// The limits of [`FairQueue::crowded`].
#[derive(Debug, Clone, Copy)]
struct Crowded {
    limit: usize,
    window: Duration,
    /// The lower limit while another namespace's prompt reconcile runs.
    while_prompt: usize,
}

impl<K: Request> FairQueue<K> {
    /// A queue for `slots` concurrent reconciles (at least one). With `spare` (when the
    /// controller watches more than one namespace) and at least 3 slots, a namespace that
    /// already runs reconciles never takes the last free slot: it stays for a namespace that
    /// runs nothing. With 1 or 2 slots that would halve a lone namespace's throughput, so no
    /// slot is kept there.
    pub fn new(slots: usize, spare: bool) -> Self {
        let slots = slots.max(1);
        Self {
            slots,
            spare: spare && slots >= 3,
            objects: HashMap::new(),
            lanes: HashMap::new(),
            turns: BTreeSet::new(),
            timers: BTreeMap::new(),
            running: 0,
            tick: 0,
            crowded: None,
            prompt: [None, None],
            prompt_running: HashMap::new(),
        }
    }

    /// While another namespace has started a reconcile promptly (with nothing else of its
    /// own running or ready) less than `window` ago, a namespace that runs `limit` or more
    /// starts no more; while such a prompt reconcile is still running, one that runs
    /// `limit - 1` or more (at least one) starts no more. Slots are never taken back, so a
    /// limit holds once the busy namespace's running reconciles end; a namespace alone is
    /// never limited, and a busy one always keeps one running.
    ///
    /// Why: most of a reconcile is API calls, and on a busy API server each call waits
    /// behind the others in flight, so the quiet namespace's reconcile takes longer the more
    /// of the burst's run beside it, while the burst drains little faster with seven at once
    /// than with two. The lower limit holds only for the prompt reconcile's own few tens of
    /// milliseconds, so the burst loses little (measured in docs/design.md, "Reconcile
    /// queue").
    pub fn crowded(mut self, limit: usize, window: Duration) -> Self {
        let limit = limit.max(1);
        self.crowded = Some(Crowded {
            limit,
            window,
            while_prompt: (limit - 1).max(1),
        });
        self
    }

    /// Requests a reconcile of `key` now. Already queued: it keeps its place. Waiting for a
    /// requeue: it becomes ready now. Running: it runs again when that reconcile ends.
    pub fn push(&mut self, key: K, now: Instant) {
        match self.objects.get_mut(&key) {
            None => self.make_ready(key, now),
            Some(State::Ready { .. }) => {}
            Some(State::Delayed { at, seq }) => {
                let (at, seq) = (*at, *seq);
                self.timers.remove(&(at, seq));
                self.make_ready(key, now.min(at));
            }
            Some(State::Running { again, .. }) => *again = again.merge(Again::Now(now)),
        }
    }

    /// Requests a reconcile of `key` at `at` (a requeue). A request already due earlier
    /// wins; a later one is brought forward.
    pub fn requeue_at(&mut self, key: K, at: Instant) {
        match self.objects.get_mut(&key) {
            None => self.delay(key, at),
            Some(State::Ready { .. }) => {}
            Some(State::Delayed { at: old, seq }) => {
                if at < *old {
                    let (old, seq) = (*old, *seq);
                    self.timers.remove(&(old, seq));
                    self.delay(key, at);
                }
            }
            Some(State::Running { again, .. }) => *again = again.merge(Again::At(at)),
        }
    }

    /// The next reconcile to start at `now`, if a slot is free for it: due requeues join
    /// their namespace's FIFO first, then the fair share rule picks the namespace.
    pub fn pop_ready(&mut self, now: Instant) -> Option<Started<K>> {
        self.promote_due(now);
        if self.running >= self.slots {
            return None;
        }
        let (running, turn, ns) = self.next_lane(now)?;
        if self.spare && running > 0 && self.slots - self.running == 1 {
            // Lanes come in order of how many they run and a held-back lane runs at least
            // one, so no lane with ready work runs nothing.
            return None;
        }
        self.turns.remove(&(running, turn, ns.clone()));
        self.tick += 1;
        let tick = self.tick;
        let lane = self.lanes.get_mut(&ns)?;
        let key = lane.ready.pop_front()?;
        let prompt = lane.running == 0 && lane.ready.is_empty();
        lane.running += 1;
        lane.turn = tick;
        if !lane.ready.is_empty() {
            self.turns.insert((lane.running, lane.turn, ns.clone()));
        }
        if prompt {
            *self.prompt_running.entry(ns.clone()).or_default() += 1;
            self.note_prompt(ns, now);
        }
        self.running += 1;
        let since = match self.objects.insert(
            key.clone(),
            State::Running {
                again: Again::No,
                prompt,
            },
        ) {
            Some(State::Ready { since }) => since,
            _ => now,
        };
        Some(Started {
            key,
            waited: now.saturating_duration_since(since),
        })
    }

    /// Ends the reconcile of `key` (started by [`Self::pop_ready`]): a request that came
    /// meanwhile queues it again.
    pub fn done(&mut self, key: &K) {
        let (again, prompt) = match self.objects.get(key) {
            Some(State::Running { again, prompt }) => (*again, *prompt),
            _ => return,
        };
        self.objects.remove(key);
        self.shrink();
        self.running -= 1;
        let ns = key.namespace().clone();
        if prompt && let Some(n) = self.prompt_running.get_mut(&ns) {
            *n -= 1;
            if *n == 0 {
                self.prompt_running.remove(&ns);
            }
        }
        if let Some(lane) = self.lanes.get_mut(&ns) {
            let had_ready = !lane.ready.is_empty();
            if had_ready {
                self.turns.remove(&(lane.running, lane.turn, ns.clone()));
            }
            lane.running -= 1;
            if had_ready {
                self.turns.insert((lane.running, lane.turn, ns.clone()));
            }
        }
        match again {
            Again::No => {}
            Again::Now(since) => self.make_ready(key.clone(), since),
            Again::At(at) => self.delay(key.clone(), at),
        }
        self.drop_lane_if_idle(&ns);
    }

    /// When the earliest requeue is due (`None`: none waits).
    pub fn next_deadline(&self) -> Option<Instant> {
        self.timers.keys().next().map(|(at, _)| *at)
    }

    /// Reconciles running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Objects known to the queue: ready, waiting for a requeue, or running.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Gives back the table's memory once a backlog (a cold start of every object) has
    /// drained: a hash table keeps its largest size otherwise. Shrinking only below a quarter
    /// keeps this amortised O(1).
    fn shrink(&mut self) {
        let (len, cap) = (self.objects.len(), self.objects.capacity());
        if cap > 1024 && len < cap / 4 {
            self.objects.shrink_to(len * 2);
        }
    }

    /// The lane to serve next: the first in turn that [`Self::crowded`] does not hold back.
    /// Only lanes that run something are held back, and at most `slots` lanes can, so this
    /// looks at no more than that many past the first.
    fn next_lane(&self, now: Instant) -> Option<(usize, u64, K::Namespace)> {
        let Some(c) = self.crowded else {
            return self.turns.first().cloned();
        };
        self.turns
            .iter()
            .find(|(running, _, ns)| {
                let crowding = *running >= c.limit && self.other_prompt_within(ns, now, c.window);
                let beside_prompt = *running >= c.while_prompt && self.other_prompt_running(ns);
                !crowding && !beside_prompt
            })
            .cloned()
    }

    /// Whether a namespace other than `ns` runs a reconcile that started promptly.
    fn other_prompt_running(&self, ns: &K::Namespace) -> bool {
        self.prompt_running.keys().any(|other| other != ns)
    }

    /// Whether a namespace other than `ns` started a reconcile promptly less than `window`
    /// before `now`.
    fn other_prompt_within(&self, ns: &K::Namespace, now: Instant, window: Duration) -> bool {
        self.prompt
            .iter()
            .flatten()
            .any(|(other, at)| other != ns && now.saturating_duration_since(*at) < window)
    }

    fn note_prompt(&mut self, ns: K::Namespace, now: Instant) {
        if self.prompt[0].as_ref().is_none_or(|(last, _)| *last != ns) {
            self.prompt[1] = self.prompt[0].take();
        }
        self.prompt[0] = Some((ns, now));
    }

    fn make_ready(&mut self, key: K, since: Instant) {
        let ns = key.namespace().clone();
        self.objects.insert(key.clone(), State::Ready { since });
        self.tick += 1;
        let tick = self.tick;
        let lane = self.lanes.entry(ns.clone()).or_insert_with(|| Lane {
            ready: VecDeque::new(),
            running: 0,
            turn: tick,
        });
        if lane.ready.is_empty() {
            // Behind the lanes already waiting with as many running.
            lane.turn = tick;
            self.turns.insert((lane.running, lane.turn, ns));
        }
        lane.ready.push_back(key);
    }

    fn delay(&mut self, key: K, at: Instant) {
        self.tick += 1;
        let seq = self.tick;
        self.objects.insert(key.clone(), State::Delayed { at, seq });
        self.timers.insert((at, seq), key);
    }

    fn promote_due(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            let (at, _) = *entry.key();
            if at > now {
                break;
            }
            let key = entry.remove();
            self.make_ready(key, at);
        }
    }

    fn drop_lane_if_idle(&mut self, ns: &K::Namespace) {
        if self
            .lanes
            .get(ns)
            .is_some_and(|l| l.running == 0 && l.ready.is_empty())
        {
            self.lanes.remove(ns);
        }
    }
}
