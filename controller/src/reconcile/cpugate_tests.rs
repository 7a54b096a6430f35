//! The CPU gate's decisions ([`super::GateState`], pure), unit cases and a property test
//! against a naive model; the async wrapper's cancellation safety; the bulk threads.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt as _;
use proptest::prelude::*;

use super::{BULK_NICE, Class, CpuGate, GateState, LastPrompts, SHARE_WINDOW, Ticket, permits};

const PROMPT: Class = Class::Prompt;
const BULK: Class = Class::Bulk;

#[test]
fn the_flag_sets_the_permits_else_the_cores() {
    assert_eq!(permits(3), 3);
    assert_eq!(
        permits(0),
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    );
}

#[test]
fn a_namespace_s_backlog_gets_bulk_permits_up_to_the_limit() {
    let mut g = GateState::new(2);
    // Nothing else of "a" decrypting or waiting: prompt.
    let (a, now) = g.arrive("a");
    assert_eq!(now, [(a, PROMPT)]);
    // "a" already decrypts: bulk, up to two.
    let (b, now) = g.arrive("a");
    assert_eq!(now, [(b, BULK)]);
    let (c, now) = g.arrive("a");
    assert_eq!(now, [(c, BULK)]);
    let (d, now) = g.arrive("a");
    assert_eq!(now, []);
    assert_eq!(g.class(d), None);
    assert_eq!((g.admitted(), g.waiting()), (3, 1));
    // A freed prompt permit is not for a backlog...
    assert_eq!(g.leave(a), []);
    // ...a freed bulk one is.
    assert_eq!(g.leave(b), [(d, BULK)]);
    assert_eq!(g.class(d), Some(BULK));
}

#[test]
fn a_quiet_namespace_does_not_wait_for_a_burst() {
    let mut g = GateState::new(2);
    // The burst holds the bulk permits (and its first object the prompt one) and has more
    // waiting.
    let burst: Vec<(Ticket, Vec<(Ticket, Class)>)> = (0..7).map(|_| g.arrive("busy")).collect();
    assert_eq!(burst[0].1, [(burst[0].0, PROMPT)]);
    assert_eq!(burst[2].1, [(burst[2].0, BULK)]);
    assert_eq!(burst[3].1, []);
    // The quiet namespace's decryption is admitted at once, at normal priority.
    let (quiet, now) = g.arrive("quiet");
    assert_eq!(now, [(quiet, PROMPT)]);
    // Two of its own at once: the second is bulk, and waits its fair turn: the first bulk
    // permit freed goes to the namespace holding fewer.
    let (quiet2, now) = g.arrive("quiet");
    assert_eq!(now, []);
    assert_eq!(g.leave(burst[1].0), [(quiet2, BULK)]);
    assert_eq!(g.leave(burst[2].0), [(burst[3].0, BULK)]);
    // Quiet holds two, busy two (prompt and bulk): busy's next bulk waiter is first.
    assert_eq!(g.leave(quiet2), [(burst[4].0, BULK)]);
}

#[test]
fn namespaces_that_hold_as_many_are_served_in_arrival_order() {
    let mut g = GateState::new(1);
    let (x, _) = g.arrive("x");
    let (x2, _) = g.arrive("x");
    assert_eq!((g.class(x), g.class(x2)), (Some(PROMPT), Some(BULK)));
    // All below wait behind x's two permits; "a" and "c" have one waiter each but the prompt
    // permit is held.
    let (a, _) = g.arrive("a");
    let (c, _) = g.arrive("c");
    let (b, _) = g.arrive("b");
    let (a2, _) = g.arrive("a");
    // The prompt permit goes to the earliest namespace with one waiter and none held: c ("a"
    // has two waiting).
    assert_eq!(g.leave(x), [(c, PROMPT)]);
    // The bulk permit: a, c and b hold... a and b none, c one: a (earlier) first.
    assert_eq!(g.leave(x2), [(a, BULK)]);
    assert_eq!(g.leave(a), [(b, BULK)]);
    // "a" holds nothing now and has one waiter: the freed prompt permit is its.
    assert_eq!(g.leave(c), [(a2, PROMPT)]);
    assert_eq!(g.leave(b), []);
}

#[test]
fn a_waiter_that_leaves_gives_its_place_and_a_holder_its_permit() {
    let mut g = GateState::new(1);
    let (a, _) = g.arrive("a");
    let (a2, _) = g.arrive("a");
    let (b, _) = g.arrive("a");
    let (c, _) = g.arrive("a");
    // b gives up before its turn: c is next.
    assert_eq!(g.leave(b), []);
    assert_eq!(g.leave(a2), [(c, BULK)]);
    // Leaving twice changes nothing.
    assert_eq!(g.leave(a2), []);
    assert_eq!(g.leave(c), []);
    assert_eq!(g.leave(a), []);
    assert_eq!((g.admitted(), g.waiting()), (0, 0));
    assert!(g.is_empty());
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

/// The rule, written as plainly as possible: while a prompt permit is free, admit the
/// earliest waiter whose namespace holds no permit and has no other waiter; while a bulk
/// permit is free, the waiter whose namespace holds the fewest permits, the earliest among
/// equals.
#[derive(Default)]
struct Model {
    permits: usize,
    /// Live tickets: namespace and class once admitted.
    live: BTreeMap<Ticket, (u8, Option<Class>)>,
}

impl Model {
    fn held(&self, ns: u8) -> usize {
        self.live
            .values()
            .filter(|(n, c)| *n == ns && c.is_some())
            .count()
    }

    fn held_of(&self, class: Class) -> usize {
        self.live
            .values()
            .filter(|(_, c)| *c == Some(class))
            .count()
    }

    fn waiters(&self, ns: u8) -> usize {
        self.live
            .values()
            .filter(|(n, c)| *n == ns && c.is_none())
            .count()
    }

    fn admit(&mut self) -> Vec<(Ticket, Class)> {
        let mut out = Vec::new();
        loop {
            let waiting = || self.live.iter().filter(|(_, (_, c))| c.is_none());
            let prompt = (self.held_of(PROMPT) < self.permits)
                .then(|| {
                    waiting()
                        .filter(|(_, (ns, _))| self.held(*ns) == 0 && self.waiters(*ns) == 1)
                        .map(|(t, _)| *t)
                        .min()
                })
                .flatten();
            let next = match prompt {
                Some(t) => Some((t, PROMPT)),
                None if self.held_of(BULK) < self.permits => waiting()
                    .map(|(t, (ns, _))| (self.held(*ns), *t))
                    .min()
                    .map(|(_, t)| (t, BULK)),
                None => None,
            };
            let Some((t, class)) = next else { break };
            if let Some(e) = self.live.get_mut(&t) {
                e.1 = Some(class);
            }
            out.push((t, class));
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn admissions_follow_the_rule_and_no_permit_is_lost(
        ops in proptest::collection::vec(op(), 1..200),
        permits in 1usize..5,
    ) {
        let mut g = GateState::new(permits);
        let mut m = Model { permits, ..Model::default() };
        for op in ops {
            let (got, want) = match op {
                Op::Arrive(ns) => {
                    let (t, got) = g.arrive(ns);
                    m.live.insert(t, (ns, None));
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
            let (prompt, bulk) = (m.held_of(PROMPT), m.held_of(BULK));
            prop_assert_eq!(g.admitted(), prompt + bulk);
            prop_assert_eq!(g.waiting(), m.live.len() - prompt - bulk);
            prop_assert!(prompt <= permits && bulk <= permits);
            // Work-conserving: nobody waits while a bulk permit is free.
            prop_assert!(bulk == permits || prompt + bulk == m.live.len());
            for (t, (_, c)) in &m.live {
                prop_assert_eq!(g.class(*t), *c);
            }
        }
        // Everyone leaves: the gate is empty again.
        let all: Vec<Ticket> = m.live.keys().copied().collect();
        for t in all {
            g.leave(t);
        }
        prop_assert!(g.is_empty());
    }
}

#[tokio::test]
async fn a_dropped_waiter_leaves_no_permit_held() {
    let gate = CpuGate::new(1);
    let held = gate.enter("a").await;
    let bulk = gate.enter("a").await;
    assert_eq!((held.class(), bulk.class()), (PROMPT, BULK));
    // Dropped while waiting.
    let mut waiting = Box::pin(gate.enter("a"));
    assert!((&mut waiting).now_or_never().is_none());
    drop(waiting);
    assert_eq!(gate.load(), (2, 0));
    // Dropped after being handed the permit, before it noticed.
    let mut handed = Box::pin(gate.enter("a"));
    assert!((&mut handed).now_or_never().is_none());
    drop(bulk);
    assert_eq!(gate.load(), (2, 0), "the permit went to the waiter");
    drop(handed);
    assert_eq!(gate.load(), (1, 0));
    drop(held);
    assert_eq!(gate.load(), (0, 0));
    // The gate still admits.
    let again = gate.enter("c").now_or_never();
    assert!(again.is_some());
}

#[tokio::test]
async fn a_waiter_is_woken_when_a_permit_frees() {
    let gate = CpuGate::new(1);
    let prompt = gate.enter("a").await;
    let held = gate.enter("a").await;
    let waiter = tokio::spawn({
        let gate = gate.clone();
        async move { gate.enter("a").await.class() }
    });
    tokio::task::yield_now().await;
    drop(held);
    assert_eq!(waiter.await.unwrap(), BULK);
    drop(prompt);
    assert_eq!(gate.load(), (0, 0));
}

/// The nice value of the calling thread, from /proc (Linux).
#[cfg(target_os = "linux")]
fn own_nice() -> i32 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the command's closing parenthesis; nice is field 19 of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    rest.split(' ').nth(16).unwrap().parse().unwrap()
}

#[test]
fn bulk_is_lowered_only_just_after_another_namespace_s_prompt_permit() {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_millis(n);
    let (a, b, c): (Arc<str>, Arc<str>, Arc<str>) = ("a".into(), "b".into(), "c".into());
    let mut p = LastPrompts::default();
    assert!(!p.lowered("a", t0), "no one to share with");
    p.record(t0, &a);
    assert!(!p.lowered("a", t0), "only its own");
    assert!(p.lowered("b", ms(10)));
    // The busy namespace's own prompt permits do not hide the quiet one's.
    p.record(ms(100), &b);
    p.record(ms(200), &a);
    p.record(ms(300), &a);
    assert!(p.lowered("a", ms(400)), "b's, 300 ms ago");
    assert!(p.lowered("b", ms(400)));
    let window = u64::try_from(SHARE_WINDOW.as_millis()).unwrap();
    assert!(p.lowered("a", ms(100 + window - 1)));
    assert!(!p.lowered("a", ms(100 + window)), "b's is too old");
    assert!(p.lowered("c", ms(300 + window - 1)), "a's is recent");
    p.record(ms(2000), &c);
    assert!(p.lowered("a", ms(2000)) && p.lowered("b", ms(2000)));
    assert!(!p.lowered("c", ms(2000)), "a's, 1.7 s ago, is too old");
}

#[tokio::test]
async fn bulk_decryptions_run_at_lower_priority_while_another_namespace_decrypts() {
    let gate = CpuGate::new(2);
    let prompt_a = gate.enter("a").await;
    assert_eq!(prompt_a.class(), PROMPT);
    // A backlog with no other namespace about: the process's priority.
    let bulk = gate.enter("a").await;
    assert_eq!(bulk.class(), BULK);
    #[cfg(target_os = "linux")]
    let base = own_nice();
    #[cfg(target_os = "linux")]
    assert_eq!(bulk.run(own_nice).await.unwrap(), base);
    #[cfg(not(target_os = "linux"))]
    drop(bulk);
    // Another namespace decrypts: the backlog's next decryption is lowered, its is not.
    let prompt_b = gate.enter("b").await;
    assert_eq!(prompt_b.class(), PROMPT);
    let bulk = gate.enter("a").await;
    assert_eq!(bulk.class(), BULK);
    #[cfg(target_os = "linux")]
    {
        assert_eq!(
            bulk.run(own_nice).await.unwrap(),
            (base + BULK_NICE).min(19)
        );
        assert_eq!(prompt_b.run(own_nice).await.unwrap(), base);
    }
    #[cfg(not(target_os = "linux"))]
    {
        assert_eq!(bulk.run(|| 1).await.unwrap(), 1);
        assert_eq!(prompt_b.run(|| 2).await.unwrap(), 2);
    }
    drop(prompt_a);
    // Every permit went back when its work ended.
    assert_eq!(gate.load(), (0, 0));
}

#[tokio::test]
async fn a_panicking_decryption_is_an_error_and_frees_its_permit() {
    let gate = CpuGate::new(2);
    let _prompt_a = gate.enter("a").await;
    let _prompt_b = gate.enter("b").await;
    // On the lowered threads, and on the blocking pool.
    for _ in 0..2 {
        let bulk = gate.enter("a").await;
        let e = bulk
            .run(|| -> u8 { panic!("bad input") })
            .await
            .unwrap_err();
        assert_eq!(e.to_string(), "the decryption task panicked");
        assert_eq!(gate.load(), (2, 0));
        // The thread survived: the next decryption runs.
        let bulk = gate.enter("a").await;
        assert_eq!(bulk.run(|| 7).await.unwrap(), 7);
        gate.lock().last_prompts = LastPrompts::default();
    }
}
