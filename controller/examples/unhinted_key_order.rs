//! RSA operations per value for SealedSecrets sealed without the key hint, as upstream's
//! kubeseal writes them, before and after the controller's key-order memory.
//!
//! ```text
//! cargo run --release -p sealed-secrets-controller --example unhinted_key_order
//! ```
//!
//! No cluster: it seals 500 SealedSecrets x 3 values with 13 keys, strips the `sealing-key`
//! annotation, and unseals them in creation order (as a cold start lists them) through the
//! same code the reconciler runs: `KeyOrderMemory` picks the order, `sealed_secrets_api::
//! decrypt_items` opens the values and reports the RSA operations. The figure is the count of
//! RSA private-key operations, which does not depend on the key size; RSA-2048 keys keep the
//! run short. The key ring lists the keys in a shuffled order, as the controller lists key
//! Secrets by name and upstream's names end in a random suffix.
//!
//! Rows:
//! - `before`: each value opened alone, keys tried by global usage count (the behaviour
//!   before the memory: the old `usage_order` hint written into the object's annotation);
//! - `in-object`: the same global order, plus the API's "the key that opened this object's
//!   previous value goes first";
//! - `after`: what the controller does now: the namespace's and the cluster's most recent
//!   keys, then the usage counts, plus the in-object rule.
//!
//! Data sets (creation order):
//! - `rotations`: 13 keys in turn, rotated every 39 objects (a repository sealed across 13
//!   rotations), objects spread at random over 4 namespaces; goal <= 3.2 ops/value;
//! - `round-robin`: the key changes with every object (the worst case for any memory: only the
//!   in-object rule helps); goal <= 3.2 ops/value;
//! - `newest-two`: 15% of the objects over the 11 older keys, then 85% on the two newest;
//!   goal <= 1.5 ops/value.

// An example that prints a table: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use sealed_secrets_api::{
    SealOptions, SealedSecret, UnsealOptions, annotations, decrypt_items, seal_manifests,
    sealing_key_hints,
};
use sealed_secrets_controller::reconcile::key_order::KeyOrderMemory;
use sealed_secrets_crypto::{Fingerprint, KeyRing, PrivateKey, decode_base64};

const KEYS: usize = 13;
const OBJECTS: usize = 500;
const VALUES: usize = 3;
const NAMESPACES: [&str; 4] = ["team-a", "team-b", "team-c", "payments"];

/// A small deterministic generator (xorshift64*), so every run uses the same data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// (namespace, index of the sealing key; 0 is the oldest key) per object, in creation order.
type Plan = Vec<(&'static str, usize)>;

fn rotations(rng: &mut Rng) -> Plan {
    let burst = OBJECTS.div_ceil(KEYS);
    (0..OBJECTS)
        .map(|i| (NAMESPACES[rng.below(NAMESPACES.len())], i / burst))
        .collect()
}

fn round_robin(rng: &mut Rng) -> Plan {
    (0..OBJECTS)
        .map(|i| (NAMESPACES[rng.below(NAMESPACES.len())], i % KEYS))
        .collect()
}

fn newest_two(rng: &mut Rng) -> Plan {
    let old = OBJECTS * 15 / 100;
    let older_keys = KEYS - 2;
    let burst = old.div_ceil(older_keys);
    let rest = OBJECTS - old;
    (0..OBJECTS)
        .map(|i| {
            let key = if i < old {
                i / burst
            } else if i - old < rest / 2 {
                KEYS - 2
            } else {
                KEYS - 1
            };
            (NAMESPACES[rng.below(NAMESPACES.len())], key)
        })
        .collect()
}

/// Seals the plan's objects, each with its key and without the `sealing-key` hint.
fn seal_plan(plan: &Plan, keys: &[PrivateKey]) -> Vec<SealedSecret> {
    plan.iter()
        .enumerate()
        .map(|(i, (ns, key))| {
            let data: String = (0..VALUES)
                .map(|v| format!("  value{v}: dmFsdWU=\n"))
                .collect();
            let manifest = format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: secret-{i}\n  namespace: {ns}\ndata:\n{data}"
            );
            let mut ss = seal_manifests(
                manifest.as_bytes(),
                &[keys[*key].public_key()],
                &SealOptions::default(),
            )
            .expect("seal")
            .remove(0);
            if let Some(a) = ss.metadata.annotations.as_mut() {
                a.remove(annotations::SEALING_KEY);
            }
            assert!(sealing_key_hints(&ss.metadata).is_empty());
            ss
        })
        .collect()
}

#[derive(Clone, Copy)]
enum Strategy {
    Before,
    InObject,
    After,
}

/// Unseals every object in creation order with `strategy`; returns RSA operations per value.
fn run(objects: &[SealedSecret], ring: &KeyRing, strategy: Strategy) -> f64 {
    let mut memory = KeyOrderMemory::new();
    let mut total = 0u64;
    let mut values = 0u64;
    for ss in objects {
        let ns = ss.metadata.namespace.as_deref().unwrap_or_default();
        let usage: BTreeMap<Fingerprint, u64> = match strategy {
            Strategy::Before => {
                // Each value alone with the usage order, as the old annotation round-trip did.
                let order = memory.usage_order(ring.fingerprints());
                let name = ss.metadata.name.as_deref().unwrap_or_default();
                let label = annotations::scope(ss.metadata.annotations.as_ref()).label(ns, name);
                let mut usage = BTreeMap::new();
                for (_, value) in ss.spec.encrypted_data.iter() {
                    let opened = ring
                        .open(&label, &decode_base64(value).unwrap(), &order)
                        .expect("open");
                    total += opened.rsa_operations;
                    *usage.entry(opened.key).or_insert(0) += 1;
                }
                usage
            }
            Strategy::InObject | Strategy::After => {
                let key_order = match strategy {
                    Strategy::After => memory.order(ns, ring.fingerprints()),
                    _ => memory.usage_order(ring.fingerprints()),
                };
                let opts = UnsealOptions {
                    key_order,
                    ..UnsealOptions::default()
                };
                let items = decrypt_items(ss, ring, &opts).expect("decrypt");
                total += items.rsa_operations();
                items.key_usage()
            }
        };
        values += usage.values().sum::<u64>();
        memory.record(ns, &usage, false);
    }
    total as f64 / values as f64
}

fn main() {
    let mut rng = Rng(0x5eed_2026);
    eprintln!("generating {KEYS} RSA-2048 keys...");
    let keys: Vec<PrivateKey> = (0..KEYS)
        .map(|_| PrivateKey::generate(2048).expect("keygen"))
        .collect();
    // The ring in a shuffled order (Fisher-Yates), as key Secrets listed by random name.
    let mut ring_order: Vec<usize> = (0..KEYS).collect();
    for i in (1..KEYS).rev() {
        ring_order.swap(i, rng.below(i + 1));
    }
    let mut ring = KeyRing::new();
    for i in &ring_order {
        ring.insert(keys[*i].clone());
    }
    eprintln!("key ring order (0 = oldest key): {ring_order:?}");

    let sets: [(&str, Plan, f64); 3] = [
        ("rotations (13 bursts of 39)", rotations(&mut rng), 3.2),
        ("round-robin (key per object)", round_robin(&mut rng), 3.2),
        ("newest-two (85% on 2 keys)", newest_two(&mut rng), 1.5),
    ];
    println!(
        "{OBJECTS} SealedSecrets x {VALUES} values, {KEYS} keys, no key hint; RSA operations per value"
    );
    println!(
        "{:<30} {:>8} {:>10} {:>8} {:>6}  goal met",
        "data set", "before", "in-object", "after", "goal"
    );
    for (name, plan, goal) in sets {
        let objects = seal_plan(&plan, &keys);
        let before = run(&objects, &ring, Strategy::Before);
        let in_object = run(&objects, &ring, Strategy::InObject);
        let after = run(&objects, &ring, Strategy::After);
        println!(
            "{name:<30} {before:>8.2} {in_object:>10.2} {after:>8.2} {goal:>6.1}  {}",
            if after <= goal { "yes" } else { "no" }
        );
    }
}
