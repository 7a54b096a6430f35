//! Which keys to try first for values that do not name their key. Pure: no
//! I/O, no clock; the reconciler keeps one [`KeyOrderMemory`] behind a lock, asks it for an
//! order before unsealing and tells it what opened the values afterwards.
//!
//! Upstream's kubeseal records no key, so every value it ever sealed costs up to one RSA
//! operation per loaded key (13 keys after a year of monthly rotations). But kubeseal reads
//! one certificate per run, so objects sealed together share a key, and a repository is
//! written in bursts between rotations, usually per namespace. The memory therefore guesses,
//! most specific first:
//!
//! 1. the keys that most recently opened a value of an unhinted object in the same namespace;
//! 2. the keys that followed, in an earlier object, the key of the previous object (objects
//!    arrive in creation order on a cold start, so this learns the sequence of a repository
//!    whose keys alternate object by object);
//! 3. the keys that most recently opened one anywhere (a rotation seen in another namespace);
//! 4. every key by the number of values it opened so far, most first (the order used before
//!    this memory existed, still the best guess for a namespace seen for the first time).
//!
//! Within one object, `sealed_secrets_api::unseal` then tries first the key that opened its
//! previous value. The order is never trusted: every key is still tried after the guesses, and
//! the OAEP label and AES-GCM decide what opens.
//!
//! Memory is bounded: [`RECENT_PER_NAMESPACE`] keys for each of at most [`MAX_NAMESPACES`]
//! namespaces (the least recently used namespace is forgotten first), [`RECENT_GLOBAL`] keys
//! overall, [`SUCCESSORS`] successors for each of at most [`MAX_KEYS`] keys, and one counter
//! per key (keys are few: one per rotation).

use std::collections::{BTreeMap, HashMap};

use sealed_secrets_crypto::Fingerprint;

/// Keys remembered per namespace. Three covers a namespace written across a rotation and a
/// re-seal with an older certificate, and costs at most three wrong tries when all miss.
pub const RECENT_PER_NAMESPACE: usize = 3;
/// Keys remembered across namespaces.
pub const RECENT_GLOBAL: usize = 2;
/// Namespaces remembered; beyond, the least recently used one is forgotten.
pub const MAX_NAMESPACES: usize = 4096;
/// Successors remembered per key.
pub const SUCCESSORS: usize = 2;
/// Keys whose successors and usage are remembered; beyond, both are started afresh (a
/// controller sees one key per rotation, so this is never reached in practice).
pub const MAX_KEYS: usize = 1024;

/// Most recently used first, at most `cap` distinct keys.
fn remember(list: &mut Vec<Fingerprint>, key: &Fingerprint, cap: usize) {
    list.retain(|k| k != key);
    list.insert(0, key.clone());
    list.truncate(cap);
}

#[derive(Debug, Default)]
struct Recent {
    keys: Vec<Fingerprint>,
    /// [`KeyOrderMemory::clock`] when last written, for forgetting the oldest namespace.
    touched: u64,
}

/// What opened values so far, and the key order it suggests for the next object.
#[derive(Debug, Default)]
pub struct KeyOrderMemory {
    namespaces: HashMap<String, Recent>,
    recent: Vec<Fingerprint>,
    /// The key of the last unhinted object recorded.
    last: Option<Fingerprint>,
    /// Per key, the keys of the objects that came right after one of its objects (most
    /// recent first).
    successors: HashMap<Fingerprint, Vec<Fingerprint>>,
    usage: HashMap<Fingerprint, u64>,
    /// Counts records; orders namespaces by recency.
    clock: u64,
}

impl KeyOrderMemory {
    /// An empty memory (a cold start).
    pub fn new() -> Self {
        Self::default()
    }

    /// The keys to try first for an object in `namespace`, most likely first, restricted to
    /// `available` (the keys loaded now). Keys never seen to open anything are left out: the
    /// key ring tries them afterwards in its own order.
    pub fn order<'a>(
        &self,
        namespace: &str,
        available: impl IntoIterator<Item = &'a Fingerprint>,
    ) -> Vec<Fingerprint> {
        let available: Vec<&Fingerprint> = available.into_iter().collect();
        let mut out: Vec<Fingerprint> = Vec::new();
        let next = self
            .last
            .as_ref()
            .and_then(|k| self.successors.get(k))
            .map(Vec::as_slice)
            .unwrap_or_default();
        let guesses = self
            .namespaces
            .get(namespace)
            .map(|r| r.keys.as_slice())
            .unwrap_or_default()
            .iter()
            .chain(next)
            .chain(&self.recent);
        for key in guesses {
            if available.contains(&key) && !out.contains(key) {
                out.push(key.clone());
            }
        }
        for key in self.usage_order(available) {
            if !out.contains(&key) {
                out.push(key);
            }
        }
        out
    }

    /// The keys of `available` that opened anything, most values first; ties keep the order
    /// of `available`. Alone, this is the order used before per-namespace memory (kept for
    /// comparison in the benchmark, `examples/unhinted_key_order.rs`).
    pub fn usage_order<'a>(
        &self,
        available: impl IntoIterator<Item = &'a Fingerprint>,
    ) -> Vec<Fingerprint> {
        let mut used: Vec<(u64, &Fingerprint)> = available
            .into_iter()
            .filter_map(|fp| self.usage.get(fp).map(|n| (*n, fp)))
            .filter(|(n, _)| *n > 0)
            .collect();
        used.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
        used.into_iter().map(|(_, fp)| fp.clone()).collect()
    }

    /// Records which keys opened how many values of one object in `namespace`. `hinted`: the
    /// object named its sealing key, so its values did not need a guess; they still count in
    /// the usage totals, but only unhinted objects update the recency lists, which serve
    /// unhinted objects.
    pub fn record(&mut self, namespace: &str, opened: &BTreeMap<Fingerprint, u64>, hinted: bool) {
        if self.usage.len() >= MAX_KEYS || self.successors.len() >= MAX_KEYS {
            self.usage.clear();
            self.successors.clear();
        }
        for (key, n) in opened {
            let count = self.usage.entry(key.clone()).or_insert(0);
            *count = count.saturating_add(*n);
        }
        if hinted || opened.is_empty() {
            return;
        }
        self.clock += 1;
        if !self.namespaces.contains_key(namespace) && self.namespaces.len() >= MAX_NAMESPACES {
            self.forget_oldest_namespace();
        }
        let recent = self.namespaces.entry(namespace.to_owned()).or_default();
        recent.touched = self.clock;
        // The key that opened most of the object's values ends up first.
        let mut by_count: Vec<(&Fingerprint, &u64)> = opened.iter().collect();
        by_count.sort_by_key(|(_, n)| **n);
        for (key, _) in &by_count {
            remember(&mut recent.keys, key, RECENT_PER_NAMESPACE);
            remember(&mut self.recent, key, RECENT_GLOBAL);
        }
        if let Some((main, _)) = by_count.last() {
            if let Some(prev) = self.last.take() {
                let next = self.successors.entry(prev).or_default();
                remember(next, main, SUCCESSORS);
            }
            self.last = Some((*main).clone());
        }
    }

    /// Namespaces currently remembered.
    pub fn namespaces(&self) -> usize {
        self.namespaces.len()
    }

    fn forget_oldest_namespace(&mut self) {
        let oldest = self
            .namespaces
            .iter()
            .min_by_key(|(_, r)| r.touched)
            .map(|(ns, _)| ns.clone());
        if let Some(ns) = oldest {
            self.namespaces.remove(&ns);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distinct valid fingerprints (the last base64 digit must have its low two bits clear).
    fn fps(n: usize) -> Vec<Fingerprint> {
        const DIGITS: &[u8] = b"AEIMQUYcgkosw048";
        (0..n)
            .map(|i| {
                let c = char::from(DIGITS[i % DIGITS.len()]);
                let d = char::from(DIGITS[i / DIGITS.len()]);
                format!("SHA256:{}{}", d, c.to_string().repeat(42))
                    .parse()
                    .unwrap()
            })
            .collect()
    }

    fn refs(v: &[Fingerprint]) -> Vec<&Fingerprint> {
        v.iter().collect()
    }

    fn one(key: &Fingerprint, n: u64) -> BTreeMap<Fingerprint, u64> {
        BTreeMap::from([(key.clone(), n)])
    }

    #[test]
    fn empty_memory_suggests_nothing() {
        let k = fps(3);
        assert!(KeyOrderMemory::new().order("ns", &k).is_empty());
    }

    #[test]
    fn namespace_recency_beats_global_usage() {
        let k = fps(4);
        let mut m = KeyOrderMemory::new();
        m.record("a", &one(&k[0], 30), false);
        m.record("b", &one(&k[1], 3), false);
        m.record("a", &one(&k[2], 3), false);
        // "a": its own recent keys (2 then 0), then the global recent (1), then usage.
        assert_eq!(refs(&m.order("a", &k)), [&k[2], &k[0], &k[1]]);
        // "b": its own key, then what opened values most recently anywhere.
        assert_eq!(refs(&m.order("b", &k)), [&k[1], &k[2], &k[0]]);
        // A namespace never seen: the global recent keys first (a rotation seen elsewhere),
        // then the usage counts.
        assert_eq!(refs(&m.order("new", &k)), [&k[2], &k[1], &k[0]]);
        // Only keys still loaded.
        assert_eq!(refs(&m.order("a", &k[1..2])), [&k[1]]);
    }

    #[test]
    fn usage_order_is_most_values_first_ties_in_ring_order() {
        let k = fps(4);
        let mut m = KeyOrderMemory::new();
        m.record("a", &one(&k[3], 5), true);
        m.record("a", &one(&k[1], 2), true);
        m.record("a", &one(&k[2], 2), true);
        assert_eq!(refs(&m.usage_order(&k)), [&k[3], &k[1], &k[2]]);
        // Hinted objects count in the usage totals but not in the recency lists.
        assert_eq!(m.order("a", &k), m.usage_order(&k));
    }

    #[test]
    fn the_key_of_most_of_an_objects_values_comes_first() {
        let k = fps(3);
        let mut m = KeyOrderMemory::new();
        let opened = BTreeMap::from([(k[0].clone(), 1), (k[2].clone(), 2)]);
        m.record("a", &opened, false);
        assert_eq!(refs(&m.order("a", &k)), [&k[2], &k[0]]);
    }

    /// Keys that alternate object by object (each object sealed with the next key): once the
    /// sequence has been seen, the key that followed the previous object's key comes right
    /// after the namespace's own recent keys.
    #[test]
    fn the_successor_of_the_previous_objects_key_is_guessed() {
        let k = fps(6);
        let mut m = KeyOrderMemory::new();
        for key in k.iter().chain(&k[..2]) {
            m.record("a", &one(key, 1), false);
        }
        // Last: k1; k1 was followed by k2 before. Namespace "b" is new: the successor leads.
        assert_eq!(refs(&m.order("b", &k)[..1]), [&k[2]]);
        // In "a", after its three recent keys (k1, k0, k5).
        assert_eq!(refs(&m.order("a", &k)[..4]), [&k[1], &k[0], &k[5], &k[2]]);
        // Hinted objects do not move the sequence.
        m.record("a", &one(&k[4], 1), true);
        assert_eq!(refs(&m.order("b", &k)[..1]), [&k[2]]);
    }

    #[test]
    fn recency_lists_are_bounded() {
        let k = fps(10);
        let mut m = KeyOrderMemory::new();
        for key in &k {
            m.record("a", &one(key, 1), false);
        }
        let order = m.order("a", &k);
        // Recent keys of the namespace first (the global ones are among them), then usage
        // (all equal: ring order).
        assert_eq!(refs(&order[..RECENT_PER_NAMESPACE]), [&k[9], &k[8], &k[7]]);
        assert_eq!(order.len(), 10);
        assert_eq!(m.namespaces["a"].keys.len(), RECENT_PER_NAMESPACE);
        assert_eq!(m.recent.len(), RECENT_GLOBAL);
        assert!(m.successors.values().all(|s| s.len() <= SUCCESSORS));
    }

    #[test]
    fn least_recently_used_namespace_is_forgotten() {
        let k = fps(2);
        let mut m = KeyOrderMemory::new();
        for i in 0..MAX_NAMESPACES {
            m.record(&format!("ns{i}"), &one(&k[0], 1), false);
        }
        // Touch ns0 again: ns1 is now the oldest.
        m.record("ns0", &one(&k[1], 1), false);
        m.record("another", &one(&k[1], 1), false);
        assert_eq!(m.namespaces(), MAX_NAMESPACES);
        assert!(m.namespaces.contains_key("ns0"));
        assert!(!m.namespaces.contains_key("ns1"));
        assert!(m.namespaces.contains_key("another"));
    }
}
