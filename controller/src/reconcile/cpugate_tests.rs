//! The CPU gate's decisions ([`super::GateState`], pure), unit cases and a property test
//! against a naive model; and the async wrapper's cancellation safety.

use std::collections::BTreeMap;

use futures::FutureExt as _;
use proptest::prelude::*;

use super::{CpuGate, GateState, Ticket, permits};

#[test]
fn the_flag_sets_the_permits_else_the_cores() {
    assert_eq!(permits(3), 3);
    assert_eq!(
        permits(0),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
}

#[test]
fn permits_are_handed_out_up_to_the_limit() {
    let mut g = GateState::new(2);
    let (a, now) = g.arrive("a");
    assert_eq!(now, [a]);
    let (b, now) = g.arrive("a");
    assert_eq!(now, [b]);
    let (c, now) = g.arrive("a");
    assert_eq!(now, []);
    assert!(!g.is_admitted(c));
    assert_eq!((g.admitted(), g.waiting()), (2, 1));
    assert_eq!(g.leave(a), [c]);
    assert!(g.is_admitted(c));
}

#[test]
fn a_quiet_namespace_is_admitted_before_a_burst_s_waiters() {
    let mut g = GateState::new(2);
    // The burst holds both permits and has five more waiting.
    let burst: Vec<Ticket> = (0..7).map(|_| g.arrive("busy").0).collect();
    let (quiet, now) = g.arrive("quiet");
    assert_eq!(now, []);
    // The first permit freed goes to the quiet namespace, which holds none.
    assert_eq!(g.leave(burst[0]), [quiet]);
    // Then, each holding one, the busy namespace's earliest waiter.
    assert_eq!(g.leave(burst[1]), [burst[2]]);
    // A second quiet waiter; the busy namespace, down to none held, goes first.
    let (quiet2, _) = g.arrive("quiet");
    assert_eq!(g.leave(burst[2]), [burst[3]]);
    // Busy holds one, quiet none: quiet2 goes before the busy waiters that came earlier.
    assert_eq!(g.leave(quiet), [quiet2]);
}

#[test]
fn namespaces_that_hold_as_many_are_served_in_arrival_order() {
    let mut g = GateState::new(1);
    let (a, _) = g.arrive("a");
    let (c, _) = g.arrive("c");
    let (b, _) = g.arrive("b");
    let (a2, _) = g.arrive("a");
    assert_eq!(g.leave(a), [c]);
    assert_eq!(g.leave(c), [b]);
    assert_eq!(g.leave(b), [a2]);
}

#[test]
fn a_waiter_that_leaves_gives_its_place_and_a_holder_its_permit() {
    let mut g = GateState::new(1);
    let (a, _) = g.arrive("a");
    let (b, _) = g.arrive("b");
    let (c, _) = g.arrive("c");
    // b gives up before its turn: c is next.
    assert_eq!(g.leave(b), []);
    assert_eq!(g.leave(a), [c]);
    // Leaving twice changes nothing.
    assert_eq!(g.leave(a), []);
    assert_eq!(g.leave(c), []);
    assert_eq!((g.admitted(), g.waiting()), (0, 0));
    assert!(g.lanes.is_empty() && g.order.is_empty() && g.tickets.is_empty());
}

/// One step of the property test.
#[derive(Debug, Clone)]
enum Op {
    Arrive(u8),
    /// Leave the live ticket at this index (mod their number).
    Leave(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..4).prop_map(Op::Arrive),
        any::<usize>().prop_map(Op::Leave),
    ]
}

/// The rule, written as plainly as possible: while a permit is free, admit the waiter whose
/// namespace holds the fewest permits, the earliest among equals.
#[derive(Default)]
struct Model {
    permits: usize,
    /// Live tickets: namespace and whether admitted.
    live: BTreeMap<Ticket, (u8, bool)>,
}

impl Model {
    fn held(&self, ns: u8) -> usize {
        self.live.values().filter(|(n, a)| *n == ns && *a).count()
    }

    fn admit(&mut self) -> Vec<Ticket> {
        let mut out = Vec::new();
        while self.live.values().filter(|(_, a)| *a).count() < self.permits {
            let next = self
                .live
                .iter()
                .filter(|(_, (_, a))| !a)
                .map(|(t, (ns, _))| (self.held(*ns), *t))
                .min();
            let Some((_, t)) = next else { break };
            if let Some(e) = self.live.get_mut(&t) {
                e.1 = true;
            }
            out.push(t);
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn admissions_follow_the_fair_rule_and_no_permit_is_lost(
        ops in proptest::collection::vec(op(), 1..200),
        permits in 1usize..5,
    ) {
        let mut g = GateState::new(permits);
        let mut m = Model { permits, ..Model::default() };
        for op in ops {
            let (got, want) = match op {
                Op::Arrive(ns) => {
                    let (t, got) = g.arrive(ns);
                    m.live.insert(t, (ns, false));
                    (got, m.admit())
                }
                Op::Leave(i) => {
                    let Some(t) = m.live.keys().nth(i % m.live.len().max(1)).copied() else {
                        continue;
                    };
                    m.live.remove(&t);
                    (g.leave(t), m.admit())
                }
            };
            prop_assert_eq!(got, want);
            let held = m.live.values().filter(|(_, a)| *a).count();
            prop_assert_eq!(g.admitted(), held);
            prop_assert_eq!(g.waiting(), m.live.len() - held);
            prop_assert!(held <= permits);
            // Work-conserving: nobody waits while a permit is free.
            prop_assert!(held == permits || held == m.live.len());
            for (t, (_, a)) in &m.live {
                prop_assert_eq!(g.is_admitted(*t), *a);
            }
        }
        // Everyone leaves: the gate is empty again.
        let all: Vec<Ticket> = m.live.keys().copied().collect();
        for t in all {
            g.leave(t);
        }
        prop_assert!(g.lanes.is_empty() && g.order.is_empty() && g.tickets.is_empty());
    }
}

#[tokio::test]
async fn a_dropped_waiter_leaves_no_permit_held() {
    let gate = CpuGate::new(1);
    let held = gate.enter("a").await;
    // Dropped while waiting.
    let mut waiting = Box::pin(gate.enter("b"));
    assert!((&mut waiting).now_or_never().is_none());
    drop(waiting);
    assert_eq!(gate.load(), (1, 0));
    // Dropped after being handed the permit, before it noticed.
    let mut handed = Box::pin(gate.enter("b"));
    assert!((&mut handed).now_or_never().is_none());
    drop(held);
    assert_eq!(gate.load(), (1, 0), "the permit went to the waiter");
    drop(handed);
    assert_eq!(gate.load(), (0, 0));
    // The gate still admits.
    let again = gate.enter("c").now_or_never();
    assert!(again.is_some());
}

#[tokio::test]
async fn a_waiter_is_woken_when_a_permit_frees() {
    let gate = CpuGate::new(1);
    let held = gate.enter("a").await;
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move { drop(gate.enter("b").await) }
    });
    tokio::task::yield_now().await;
    drop(held);
    waiter.await.unwrap();
    assert_eq!(gate.load(), (0, 0));
}
