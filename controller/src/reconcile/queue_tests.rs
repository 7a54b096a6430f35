//! The reconcile queue's decisions ([`super::FairQueue`]): pure, no I/O. Unit cases for each
//! rule, and a property test that runs random pushes, requeues, completions and clock steps
//! against a model of what was requested.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use proptest::prelude::*;
use tokio::time::Instant;

use super::{FairQueue, Request, Started};

/// A test key: (namespace, object).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct K(u8, u16);

impl Request for K {
    type Namespace = u8;
    fn namespace(&self) -> &u8 {
        &self.0
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Starts everything that may start at `now`.
fn pop_all(q: &mut FairQueue<K>, now: Instant) -> Vec<K> {
    std::iter::from_fn(|| q.pop_ready(now).map(|s| s.key)).collect()
}

#[test]
fn a_quiet_namespace_starts_at_once_behind_a_burst() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true);
    for i in 0..1000 {
        q.push(K(1, i), t0);
    }
    // Alone, the busy namespace takes every slot but the spare one.
    let started = pop_all(&mut q, t0);
    assert_eq!(started, (0..7).map(|i| K(1, i)).collect::<Vec<_>>());
    // A create in another namespace starts at once, in the spare slot.
    q.push(K(2, 0), t0 + ms(1));
    assert_eq!(pop_all(&mut q, t0 + ms(1)), [K(2, 0)]);
    // More creates there: namespace 2 runs one already, so the spare slot stays free.
    q.push(K(2, 1), t0 + ms(2));
    q.push(K(2, 2), t0 + ms(2));
    q.done(&K(1, 0));
    assert_eq!(pop_all(&mut q, t0 + ms(3)), []);
    // The next free slots go to the namespace running fewer.
    q.done(&K(1, 1));
    assert_eq!(pop_all(&mut q, t0 + ms(3)), [K(2, 1)]);
    q.done(&K(1, 2));
    assert_eq!(pop_all(&mut q, t0 + ms(3)), [K(2, 2)]);
    // Namespace 2 has nothing ready: freed slots go back to the busy one, but for the spare.
    q.done(&K(1, 3));
    q.done(&K(1, 4));
    assert_eq!(pop_all(&mut q, t0 + ms(4)), [K(1, 7), K(1, 8)]);
    assert_eq!(q.running(), 7);
}

#[test]
fn a_busy_namespace_runs_few_while_another_starts_promptly() {
    let t0 = Instant::now();
    let window = ms(1000);
    let mut q = FairQueue::new(8, true).crowded(2, window);
    for i in 0..1000 {
        q.push(K(1, i), t0);
    }
    // Alone, the burst is not held back: every slot but the spare one.
    assert_eq!(pop_all(&mut q, t0).len(), 7);
    // A prompt start elsewhere: the burst gets no freed slot until it runs fewer than two.
    q.push(K(2, 0), t0 + ms(1));
    assert_eq!(pop_all(&mut q, t0 + ms(1)), [K(2, 0)]);
    q.done(&K(2, 0));
    for i in 0..5 {
        q.done(&K(1, i));
        assert_eq!(pop_all(&mut q, t0 + ms(2)), [], "after {} ended", i + 1);
    }
    q.done(&K(1, 5));
    assert_eq!(pop_all(&mut q, t0 + ms(3)), [K(1, 7)]);
    assert_eq!(q.running(), 2);
    // The quiet namespace's next create starts at once, as before.
    q.push(K(2, 1), t0 + ms(4));
    assert_eq!(pop_all(&mut q, t0 + ms(4)), [K(2, 1)]);
    // Once the window has passed since its last prompt start, the burst takes the slots again.
    q.done(&K(2, 1));
    assert_eq!(pop_all(&mut q, t0 + ms(4) + window - ms(1)), []);
    q.done(&K(1, 6));
    let later = pop_all(&mut q, t0 + ms(4) + window);
    assert_eq!(later.len(), 6, "{later:?}");
    assert_eq!(q.running(), 7);
}

#[test]
fn a_busy_namespace_runs_one_fewer_while_another_namespaces_prompt_reconcile_runs() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true).crowded(2, ms(1000));
    for i in 0..1000 {
        q.push(K(1, i), t0);
    }
    assert_eq!(pop_all(&mut q, t0).len(), 7);
    for i in 0..5 {
        q.done(&K(1, i));
    }
    // The burst runs two; a quiet create starts at once.
    q.push(K(2, 0), t0 + ms(1));
    assert_eq!(pop_all(&mut q, t0 + ms(1)), [K(2, 0)]);
    // While it runs, the burst starts nothing until it runs none, then one.
    q.done(&K(1, 5));
    assert_eq!(pop_all(&mut q, t0 + ms(2)), []);
    q.done(&K(1, 6));
    assert_eq!(pop_all(&mut q, t0 + ms(3)), [K(1, 7)]);
    assert_eq!(pop_all(&mut q, t0 + ms(3)), []);
    // Once it ends, the burst takes its second slot back (the window's limit of two).
    q.done(&K(2, 0));
    assert_eq!(pop_all(&mut q, t0 + ms(4)), [K(1, 8)]);
    assert_eq!(q.running(), 2);
}

#[test]
fn namespaces_that_are_all_busy_are_not_held_back() {
    // No start of theirs is prompt (each has more ready), so max-min sharing alone applies.
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true).crowded(2, ms(1000));
    for i in 0..100 {
        q.push(K(1, i), t0);
        q.push(K(2, i), t0);
    }
    assert_eq!(pop_all(&mut q, t0).len(), 7);
    q.done(&K(1, 0));
    q.done(&K(2, 0));
    assert_eq!(pop_all(&mut q, t0 + ms(1)).len(), 2);
}

#[test]
fn the_namespace_that_started_promptly_is_not_held_back_by_its_own_start() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true).crowded(2, ms(1000));
    // A prompt start of namespace 2, then a burst there: nothing else ran, so nothing limits it.
    q.push(K(2, 0), t0);
    assert_eq!(pop_all(&mut q, t0), [K(2, 0)]);
    for i in 1..100 {
        q.push(K(2, i), t0 + ms(1));
    }
    assert_eq!(pop_all(&mut q, t0 + ms(1)).len(), 6);
    // Namespace 1's burst meanwhile: held to two by namespace 2's prompt start, while
    // namespace 2 (which runs more) still gets the slots namespace 1 may not take.
    q.done(&K(2, 0));
    q.done(&K(2, 1));
    q.done(&K(2, 2));
    for i in 0..100 {
        q.push(K(1, i), t0 + ms(2));
    }
    let started = pop_all(&mut q, t0 + ms(2));
    assert_eq!(started, [K(1, 0), K(1, 1), K(2, 7)], "{started:?}");
}

#[test]
fn namespaces_with_work_share_the_slots() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true);
    for i in 0..100 {
        q.push(K(1, i), t0);
        q.push(K(2, i), t0);
        q.push(K(3, i), t0);
    }
    let started = pop_all(&mut q, t0);
    let per_ns = |ks: &[K], ns| ks.iter().filter(|k| k.0 == ns).count();
    assert_eq!(started.len(), 7, "one slot stays spare: {started:?}");
    assert_eq!(
        [
            per_ns(&started, 1),
            per_ns(&started, 2),
            per_ns(&started, 3)
        ],
        [3, 2, 2]
    );
    // Round robin: the first three starts are one per namespace.
    assert_eq!(started[..3], [K(1, 0), K(2, 0), K(3, 0)]);
}

#[test]
fn without_spare_a_lone_namespace_uses_every_slot() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, false);
    for i in 0..10 {
        q.push(K(1, i), t0);
    }
    assert_eq!(pop_all(&mut q, t0).len(), 8);
    // And with two slots none is kept spare either.
    let mut q = FairQueue::new(2, true);
    for i in 0..10 {
        q.push(K(1, i), t0);
    }
    assert_eq!(pop_all(&mut q, t0).len(), 2);
}

#[test]
fn an_object_is_queued_once_and_never_runs_twice_at_once() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(4, false);
    q.push(K(1, 1), t0);
    q.push(K(1, 1), t0 + ms(5));
    assert_eq!(
        q.pop_ready(t0 + ms(10)),
        Some(Started {
            key: K(1, 1),
            waited: ms(10)
        })
    );
    assert_eq!(q.pop_ready(t0 + ms(10)), None, "merged into one request");
    // Requested while running: held until the reconcile ends, then ready again.
    q.push(K(1, 1), t0 + ms(20));
    q.push(K(1, 1), t0 + ms(25));
    assert_eq!(q.pop_ready(t0 + ms(30)), None);
    q.done(&K(1, 1));
    assert_eq!(
        q.pop_ready(t0 + ms(40)),
        Some(Started {
            key: K(1, 1),
            waited: ms(20)
        })
    );
    q.done(&K(1, 1));
    assert!(q.is_empty());
}

#[test]
fn requeues_wait_in_timers_and_never_block_ready_work() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(1, false);
    for i in 0..50 {
        q.requeue_at(K(1, i), t0 + ms(100));
    }
    assert_eq!(q.next_deadline(), Some(t0 + ms(100)));
    q.push(K(2, 0), t0);
    assert_eq!(pop_all(&mut q, t0), [K(2, 0)]);
    q.done(&K(2, 0));
    assert_eq!(pop_all(&mut q, t0 + ms(99)), []);
    // Due: they join their namespace's FIFO, in deadline order; the wait counts from then.
    let s = q.pop_ready(t0 + ms(130));
    assert_eq!(
        s,
        Some(Started {
            key: K(1, 0),
            waited: ms(30)
        })
    );
    assert_eq!(q.next_deadline(), None);
}

#[test]
fn the_earliest_request_wins() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(1, false);
    q.requeue_at(K(1, 1), t0 + ms(100));
    q.requeue_at(K(1, 1), t0 + ms(50));
    q.requeue_at(K(1, 1), t0 + ms(80));
    assert_eq!(q.next_deadline(), Some(t0 + ms(50)));
    // A change of the object: ready now, the requeue is dropped.
    q.push(K(1, 1), t0 + ms(10));
    assert_eq!(q.next_deadline(), None);
    assert_eq!(pop_all(&mut q, t0 + ms(10)), [K(1, 1)]);
    // A requeue asked by the reconcile itself, and a change while it ran: the change wins.
    q.requeue_at(K(1, 1), t0 + ms(500));
    q.push(K(1, 1), t0 + ms(20));
    q.done(&K(1, 1));
    assert_eq!(q.next_deadline(), None);
    assert_eq!(pop_all(&mut q, t0 + ms(20)), [K(1, 1)]);
    q.done(&K(1, 1));
    // A requeue while running waits for its time after the reconcile ends.
    q.push(K(1, 1), t0 + ms(30));
    assert_eq!(pop_all(&mut q, t0 + ms(30)), [K(1, 1)]);
    q.requeue_at(K(1, 1), t0 + ms(200));
    q.done(&K(1, 1));
    assert_eq!(pop_all(&mut q, t0 + ms(199)), []);
    assert_eq!(pop_all(&mut q, t0 + ms(200)), [K(1, 1)]);
}

#[test]
fn a_namespace_is_served_in_arrival_order_under_a_backlog() {
    // kube-runtime's scheduler let a backlog's objects overtake each other (its timer wheel
    // is not polled while every slot is busy): at 100 creates a second some waited twice the
    // time the backlog took to drain. Here a backlog drains first come, first served.
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true);
    let mut started = Vec::new();
    let mut running = std::collections::VecDeque::new();
    let mut start = |q: &mut FairQueue<K>, running: &mut std::collections::VecDeque<K>, now| {
        let ks = pop_all(q, now);
        running.extend(ks.iter().copied());
        started.extend(ks);
    };
    for i in 0..500u16 {
        let now = t0 + ms(u64::from(i));
        q.push(K(1, i), now);
        // Completions come at a third of the arrival rate: the backlog grows.
        if i % 3 == 0
            && let Some(k) = running.pop_front()
        {
            q.done(&k);
        }
        start(&mut q, &mut running, now);
    }
    while let Some(k) = running.pop_front() {
        q.done(&k);
        start(&mut q, &mut running, t0 + ms(1000));
    }
    assert!(q.is_empty());
    assert_eq!(started, (0..500).map(|i| K(1, i)).collect::<Vec<_>>());
}

#[test]
fn a_drained_backlog_gives_its_memory_back() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(8, true);
    for i in 0..20_000 {
        q.push(K((i % 7) as u8, i), t0);
    }
    let peak = q.objects.capacity();
    while let Some(s) = q.pop_ready(t0) {
        q.done(&s.key);
    }
    assert!(q.is_empty());
    assert!(
        q.objects.capacity() < peak / 8,
        "{} of {peak}",
        q.objects.capacity()
    );
    assert!(q.lanes.is_empty() && q.turns.is_empty());
}

#[test]
fn a_namespace_running_nothing_goes_first_among_equals_in_turn() {
    let t0 = Instant::now();
    let mut q = FairQueue::new(3, false);
    for i in 0..3 {
        q.push(K(1, i), t0);
    }
    assert_eq!(pop_all(&mut q, t0), [K(1, 0), K(1, 1), K(1, 2)]);
    for ns in [4, 3, 2] {
        q.push(K(ns, 0), t0 + ms(1));
    }
    // Served in the order they became ready, one per freed slot.
    let mut order = Vec::new();
    for i in 0..3 {
        q.done(&K(1, i));
        order.extend(pop_all(&mut q, t0 + ms(2)));
    }
    assert_eq!(order, [K(4, 0), K(3, 0), K(2, 0)]);
}

/// One step of the property test.
#[derive(Clone, Debug)]
enum Op {
    Push(K),
    Requeue(K, u64),
    /// Ends the n-th running reconcile (modulo how many run), optionally with a requeue.
    Done(usize, Option<u64>),
    Advance(u64),
    Pop,
}

fn op() -> impl Strategy<Value = Op> {
    let key = (0u8..4, 0u16..12).prop_map(|(n, o)| K(n, o));
    prop_oneof![
        4 => key.clone().prop_map(Op::Push),
        1 => (key, 1u64..200).prop_map(|(k, d)| Op::Requeue(k, d)),
        3 => (any::<usize>(), proptest::option::weighted(0.3, 1u64..200)).prop_map(|(i, d)| Op::Done(i, d)),
        1 => (0u64..100).prop_map(Op::Advance),
        3 => Just(Op::Pop),
    ]
}

/// What was asked of the queue: the earliest outstanding request per object and what runs.
#[derive(Default)]
struct Model {
    due: HashMap<K, Instant>,
    running: Vec<K>,
    /// `FairQueue::crowded`'s limit and window, if set.
    crowded: Option<(usize, Duration)>,
    /// The latest prompt start (nothing else of its namespace running or ready) per namespace.
    prompt: HashMap<u8, Instant>,
    /// The running reconciles that started promptly.
    prompt_running: Vec<K>,
}

impl Model {
    fn request(&mut self, k: K, at: Instant) {
        let d = self.due.entry(k).or_insert(at);
        *d = (*d).min(at);
    }

    fn running_in(&self, ns: u8) -> usize {
        self.running.iter().filter(|k| k.0 == ns).count()
    }

    /// Namespaces with a request due at `now` for an object not running.
    fn ready_namespaces(&self, now: Instant) -> HashSet<u8> {
        self.due
            .iter()
            .filter(|(k, at)| **at <= now && !self.running.contains(k))
            .map(|(k, _)| k.0)
            .collect()
    }

    /// Whether `crowded` holds namespace `ns` back at `now`: at its limit after another
    /// namespace's recent prompt start, or at one fewer (at least one) while another
    /// namespace's prompt reconcile runs.
    fn held_back(&self, ns: u8, now: Instant) -> bool {
        self.crowded.is_some_and(|(limit, window)| {
            let running = self.running_in(ns);
            let recent = self
                .prompt
                .iter()
                .any(|(other, at)| *other != ns && now.saturating_duration_since(*at) < window);
            let beside = self.prompt_running.iter().any(|k| k.0 != ns);
            (running >= limit && recent) || (running >= (limit - 1).max(1) && beside)
        })
    }

    /// Checks one start against the rules; records it.
    fn started(&mut self, s: &Started<K>, now: Instant, slots: usize, spare: bool) {
        let k = s.key;
        assert!(!self.running.contains(&k), "{k:?} started twice at once");
        assert!(!self.held_back(k.0, now), "{k:?} started while held back");
        let at = self.due.remove(&k);
        assert!(at.is_some_and(|at| at <= now), "{k:?} started unrequested");
        assert!(self.running.len() < slots, "more than {slots} running");
        let mine = self.running_in(k.0);
        for ns in self.ready_namespaces(now) {
            assert!(
                self.running_in(ns) >= mine || self.held_back(ns, now),
                "{k:?} started while namespace {ns} runs fewer and has ready work"
            );
        }
        if spare && slots >= 3 && mine > 0 {
            assert!(slots - self.running.len() >= 2, "took the spare slot");
        }
        if mine == 0 && !self.ready_namespaces(now).contains(&k.0) {
            self.prompt.insert(k.0, now);
            self.prompt_running.push(k);
        }
        self.running.push(k);
    }

    /// After `pop_ready` found nothing: nothing could start by the rules (delayed
    /// requests never hold back ready ones).
    fn nothing_startable(&self, now: Instant, slots: usize, spare: bool) {
        let free = slots - self.running.len();
        if free == 0 {
            return;
        }
        for ns in self.ready_namespaces(now) {
            let kept = (spare && slots >= 3 && free == 1 && self.running_in(ns) > 0)
                || self.held_back(ns, now);
            assert!(kept, "namespace {ns} had ready work and a slot at {now:?}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn no_request_lost_none_run_twice_and_shares_stay_fair(
        ops in proptest::collection::vec(op(), 1..300),
        slots in 1usize..6,
        spare in any::<bool>(),
        crowded in proptest::option::of((1usize..4, 1u64..300)),
    ) {
        let mut now = Instant::now();
        let mut q = FairQueue::new(slots, spare);
        if let Some((limit, window)) = crowded {
            q = q.crowded(limit, ms(window));
        }
        let mut m = Model {
            crowded: crowded.map(|(limit, window)| (limit, ms(window))),
            ..Model::default()
        };
        let step = |q: &mut FairQueue<K>, m: &mut Model, op: Op, now: &mut Instant| match op {
            Op::Push(k) => {
                q.push(k, *now);
                m.request(k, *now);
            }
            Op::Requeue(k, d) => {
                q.requeue_at(k, *now + ms(d));
                m.request(k, *now + ms(d));
            }
            Op::Done(i, d) => {
                if !m.running.is_empty() {
                    let k = m.running.remove(i % m.running.len());
                    m.prompt_running.retain(|p| *p != k);
                    q.done(&k);
                    if let Some(d) = d {
                        q.requeue_at(k, *now + ms(d));
                        m.request(k, *now + ms(d));
                    }
                }
            }
            Op::Advance(d) => *now += ms(d),
            Op::Pop => match q.pop_ready(*now) {
                Some(s) => m.started(&s, *now, slots, spare),
                None => m.nothing_startable(*now, slots, spare),
            },
        };
        for op in ops {
            step(&mut q, &mut m, op, &mut now);
            prop_assert_eq!(q.running(), m.running.len());
        }
        // Drain: every outstanding request runs, by its deadline.
        while !m.running.is_empty() || !m.due.is_empty() {
            step(&mut q, &mut m, Op::Pop, &mut now);
            if q.running() > 0 {
                step(&mut q, &mut m, Op::Done(0, None), &mut now);
            } else if let Some(at) = q.next_deadline() {
                // Nothing ready: the earliest timer is the earliest request.
                prop_assert_eq!(Some(at), m.due.values().min().copied());
                now = now.max(at);
            } else {
                // Nothing runs, nothing waits: then nothing may be owed.
                let ready = m.ready_namespaces(now);
                prop_assert!(ready.is_empty() && m.due.is_empty(), "lost: {:?}", m.due);
            }
        }
        prop_assert!(q.is_empty(), "{:?}", q);
    }
}
