//! Upstream Sealed Secrets' own integration suite (`integration/` of the Go module pinned by
//! `tests/upstream/go.mod`, Ginkgo, build tag `integration`), compiled from that module by
//! `tests/upstream/integration.sh` and run here on a real control plane against one set of
//! binaries: upstream's own (the control group) or ours.
//!
//! The world the suite expects is the one of upstream's install: a controller running in
//! `kube-system` whose key Secrets carry upstream's label, and `kubeseal` reaching it through
//! the API server's service proxy (`kube-system/sealed-secrets-controller`). It is built as the
//! upstream_peers suite builds it (`../upstream_peers/common.rs`): a private control plane with
//! `deploy/base` and upstream's own RBAC, the controller run with in-cluster configuration only
//! (tests/upstream/run-controller.sh), the Service routed to its loopback listener through a
//! network namespace and relays (needs root).
//!
//! What a run must show is written in files beside the script, so that it is reviewed like code:
//! - `tests/upstream/suite-racy.txt`: specs that race against any controller, skipped by name in
//!   a full run, with the failure rates measured for each set of binaries;
//! - `tests/upstream/suite-known-failures-ours.txt`: specs that fail with our binaries today.
//!
//! A full run (no focus) must fail exactly the known failures (none with upstream's binaries)
//! and skip exactly the racy specs: a spec that starts passing, a new failure, or a listed name
//! the suite no longer has fails the test, so the list can only shrink. With a focus
//! (`UPSTREAM_SUITE_FOCUS`, a Ginkgo regex) nothing is skipped and nothing is asserted but that
//! the focus matched: the run measures, printing how often each spec failed.
//!
//! Environment (set by tests/upstream/integration.sh):
//! - `UPSTREAM_SUITE_BIN`: the compiled suite; without it the tests are skipped with the reason;
//! - `UPSTREAM_SUITE_REPEAT`: how many times to run the suite on the same control plane
//!   (default 1; every full run is checked);
//! - `UPSTREAM_SUITE_FOCUS`: a Ginkgo focus regex (measurement mode);
//! - `UPSTREAM_SUITE_CONTROLLER_LOG`: a file to copy the controller's log to (it is printed
//!   anyway when the test fails).

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a failure

#[allow(dead_code)] // shared with upstream_peers; this suite uses only its set-up
#[path = "../upstream_peers/common.rs"]
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use harness::cluster::{binary_path, workspace_root};
use harness::upstream::{InCluster, skip_unless_real, upstream_binary};
use serde_json::Value;

use common::{Env, route_service_to};

const BIN_ENV: &str = "UPSTREAM_SUITE_BIN";
const REPEAT_ENV: &str = "UPSTREAM_SUITE_REPEAT";
const FOCUS_ENV: &str = "UPSTREAM_SUITE_FOCUS";
const LOG_ENV: &str = "UPSTREAM_SUITE_CONTROLLER_LOG";

/// Whose binaries the suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Binaries {
    Upstream,
    Ours,
}

impl Binaries {
    fn name(self) -> &'static str {
        match self {
            Self::Upstream => "upstream",
            Self::Ours => "ours",
        }
    }

    /// `(kubeseal, controller)`.
    fn paths(self) -> (PathBuf, PathBuf) {
        match self {
            Self::Upstream => (
                upstream_binary("kubeseal").unwrap_or_else(|e| panic!("{e}")),
                upstream_binary("controller").unwrap_or_else(|e| panic!("{e}")),
            ),
            Self::Ours => (
                binary_path("kubeseal").unwrap_or_else(|e| panic!("{e}")),
                binary_path("sealed-secrets-controller").unwrap_or_else(|e| panic!("{e}")),
            ),
        }
    }

    /// The specs expected to fail in a full run.
    fn known_failures(self) -> BTreeSet<String> {
        match self {
            Self::Upstream => BTreeSet::new(),
            Self::Ours => spec_list("suite-known-failures-ours.txt"),
        }
    }
}

/// Full spec names (container texts and leaf text joined by spaces, as Ginkgo matches focus
/// and skip against them), one per line of `tests/upstream/<file>`; `#` starts a comment.
fn spec_list(file: &str) -> BTreeSet<String> {
    let path = workspace_root().join("tests/upstream").join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines()
        .map(|l| l.split_once('#').map_or(l, |(before, _)| before).trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `s` as a Go (RE2) regular expression matching itself literally.
fn regex_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A regex matching exactly the full names of `specs` (Ginkgo's `-ginkgo.skip`). Ginkgo
/// matches it against the suite's description, a space and the spec's full name, so a name
/// is anchored at the end and after a space.
fn exact_names_regex(specs: &BTreeSet<String>) -> String {
    let alternatives: Vec<String> = specs.iter().map(|s| regex_quote(s)).collect();
    format!("(^| )({})$", alternatives.join("|"))
}

/// The outcome of each `It` of one run, by full spec name, from Ginkgo's JSON report; states
/// other than passed/skipped/pending (failed, panicked, timedout, ...) are failures.
fn outcomes(report: &Value) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for suite in report.as_array().into_iter().flatten() {
        for spec in suite["SpecReports"].as_array().into_iter().flatten() {
            if spec["LeafNodeType"] != "It" {
                continue;
            }
            let mut texts: Vec<&str> = spec["ContainerHierarchyTexts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            texts.push(spec["LeafNodeText"].as_str().unwrap_or_default());
            let state = spec["State"].as_str().unwrap_or("unknown").to_owned();
            out.insert(texts.join(" "), state);
        }
    }
    out
}

fn failed(state: &str) -> bool {
    !matches!(state, "passed" | "skipped" | "pending")
}

/// Runs the compiled suite once against `kubeseal` and `controller`, its output on this
/// process's stdout and stderr (Ginkgo prints each failure and its summary); returns the
/// outcome of each spec.
fn run_suite(
    suite: &Path,
    env: &Env,
    kubeseal: &Path,
    controller: &Path,
    focus: Option<&str>,
    skip: Option<&str>,
    run: usize,
) -> BTreeMap<String, String> {
    let report = env.path(&format!("ginkgo-report-{run}.json"));
    let home = env.path("home");
    std::fs::create_dir_all(&home).unwrap();
    let mut cmd = Command::new(suite);
    cmd.arg(format!(
        "-kubeconfig={}",
        env.cluster.kubeconfig().display()
    ))
    .arg(format!("-kubeseal-bin={}", kubeseal.display()))
    .arg(format!("-controller-bin={}", controller.display()))
    .arg(format!("-ginkgo.json-report={}", report.display()))
    .arg("-ginkgo.no-color")
    // A hung spec must not hang CI; a full run takes about a minute.
    .arg("-ginkgo.timeout=10m");
    if let Some(f) = focus {
        cmd.arg(format!("-ginkgo.focus={f}"));
    }
    if let Some(s) = skip {
        cmd.arg(format!("-ginkgo.skip={s}"));
    }
    // The suite runs kubeseal with its own environment: no user kubeconfig, no certificate
    // or insecure-URL settings of the caller's may leak into the binaries under test.
    cmd.current_dir(env.work.path())
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .env_remove("SEALED_SECRETS_CERT")
        .env_remove("SEALED_SECRETS_ALLOW_INSECURE_CERT_URL")
        .stdin(Stdio::null());
    let started = Instant::now();
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", suite.display()));
    let text = std::fs::read_to_string(&report).unwrap_or_else(|e| {
        panic!(
            "the suite ({status}) wrote no JSON report {}: {e}",
            report.display()
        )
    });
    let report: Value = serde_json::from_str(&text).unwrap();
    let outcomes = outcomes(&report);
    eprintln!(
        "upstream suite run {run}: {status} in {:.0}s, {} specs",
        started.elapsed().as_secs_f64(),
        outcomes.len()
    );
    outcomes
}

/// Compares a full run with what it must show; returns the differences, one per line.
fn check_full_run(
    outcomes: &BTreeMap<String, String>,
    known: &BTreeSet<String>,
    racy: &BTreeSet<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for name in known.iter().chain(racy) {
        if !outcomes.contains_key(name) {
            problems.push(format!(
                "listed spec not in the suite (renamed upstream?): {name}"
            ));
        }
    }
    for (name, state) in outcomes {
        let listed_racy = racy.contains(name);
        let listed_failing = known.contains(name);
        match (state.as_str(), listed_racy, listed_failing) {
            ("skipped", true, _) => {}
            ("skipped", false, _) => problems.push(format!("skipped but not listed racy: {name}")),
            (_, true, _) => problems.push(format!("listed racy but ran ({state}): {name}")),
            (s, false, true) if !failed(s) => problems.push(format!(
                "NOW PASSES, remove it from the known failures: {name}"
            )),
            (s, false, false) if failed(s) => problems.push(format!("NEW FAILURE ({s}): {name}")),
            _ => {}
        }
    }
    problems
}

fn run_against(binaries: Binaries) {
    let test = format!("upstream_suite_against_{}", binaries.name());
    if skip_unless_real(&test) {
        return;
    }
    let Some(suite) = std::env::var_os(BIN_ENV).map(PathBuf::from) else {
        eprintln!(
            "SKIPPED {test}: {BIN_ENV} is not set; run bash tests/upstream/integration.sh, which \
             compiles upstream's suite and sets it"
        );
        return;
    };
    assert!(suite.is_file(), "{BIN_ENV}={} is no file", suite.display());
    let repeat: usize = std::env::var(REPEAT_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or(1, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{REPEAT_ENV}={v} is not a count"))
        });
    let focus = std::env::var(FOCUS_ENV).ok().filter(|f| !f.is_empty());
    let (kubeseal, controller_bin) = binaries.paths();
    let known = binaries.known_failures();
    let racy = spec_list("suite-racy.txt");
    let skip = focus.is_none().then(|| exact_names_regex(&racy));

    let env = Env::new();
    let controller: InCluster = match binaries {
        Binaries::Upstream => env.start_upstream(),
        Binaries::Ours => env.start_ours(),
    };
    route_service_to(&env, &controller);

    let mut failures: BTreeMap<String, usize> = BTreeMap::new();
    let mut ran: BTreeMap<String, usize> = BTreeMap::new();
    let mut problems = Vec::new();
    for run in 1..=repeat {
        let outcomes = run_suite(
            &suite,
            &env,
            &kubeseal,
            &controller_bin,
            focus.as_deref(),
            skip.as_deref(),
            run,
        );
        assert!(!outcomes.is_empty(), "the suite reported no spec");
        for (name, state) in &outcomes {
            if matches!(state.as_str(), "skipped" | "pending") {
                continue;
            }
            *ran.entry(name.clone()).or_default() += 1;
            if failed(state) {
                *failures.entry(name.clone()).or_default() += 1;
            }
        }
        if focus.is_none() {
            problems.extend(
                check_full_run(&outcomes, &known, &racy)
                    .into_iter()
                    .map(|p| format!("run {run}: {p}")),
            );
        }
    }

    eprintln!(
        "== upstream's integration suite against {} binaries: {repeat} run(s){}",
        binaries.name(),
        focus
            .as_deref()
            .map(|f| format!(", focus {f:?}"))
            .unwrap_or_default()
    );
    for (name, n) in &ran {
        let f = failures.get(name).copied().unwrap_or(0);
        if f > 0 || focus.is_some() {
            eprintln!("  failed {f:>3} of {n:>3}: {name}");
        }
    }
    eprintln!(
        "  {} specs ran, {} failed at least once",
        ran.len(),
        failures.len()
    );
    if let Some(path) = std::env::var_os(LOG_ENV).filter(|p| !p.is_empty()) {
        std::fs::write(&path, controller.process.log()).unwrap();
        eprintln!("  the controller's log: {}", Path::new(&path).display());
    }
    if focus.is_some() {
        assert!(!ran.is_empty(), "the focus matched no spec");
    }
    assert!(
        problems.is_empty(),
        "upstream's suite against {} binaries differs from tests/upstream/suite-*.txt:\n  {}\n\
         (the controller's log follows)\n{}",
        binaries.name(),
        problems.join("\n  "),
        controller.process.log()
    );
}

#[test]
fn upstream_suite_against_upstream() {
    run_against(Binaries::Upstream);
}

#[test]
fn upstream_suite_against_ours() {
    run_against(Binaries::Ours);
}

#[test]
fn spec_names_are_quoted_literally_for_ginkgo() {
    let specs: BTreeSet<String> = [
        "create Same name, wrong key should *not* produce a Secret".to_owned(),
        "create Simple change With no existing object (create) should produce expected Secret"
            .to_owned(),
    ]
    .into();
    assert_eq!(
        exact_names_regex(&specs),
        "(^| )(create Same name, wrong key should \\*not\\* produce a Secret|create Simple change \
         With no existing object \\(create\\) should produce expected Secret)$"
    );
}

#[test]
fn a_full_run_must_match_the_lists_exactly() {
    let set =
        |names: &[&str]| -> BTreeSet<String> { names.iter().map(|s| (*s).to_owned()).collect() };
    let outcomes = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect()
    };
    let known = set(&["a fails"]);
    let racy = set(&["r races"]);
    let good = outcomes(&[
        ("a fails", "failed"),
        ("r races", "skipped"),
        ("p", "passed"),
    ]);
    assert!(check_full_run(&good, &known, &racy).is_empty());

    let fixed = outcomes(&[
        ("a fails", "passed"),
        ("r races", "skipped"),
        ("p", "passed"),
    ]);
    assert!(check_full_run(&fixed, &known, &racy)[0].starts_with("NOW PASSES"));

    let new = outcomes(&[
        ("a fails", "failed"),
        ("r races", "skipped"),
        ("p", "panicked"),
    ]);
    assert!(check_full_run(&new, &known, &racy)[0].starts_with("NEW FAILURE (panicked)"));

    let renamed = outcomes(&[("r races", "skipped"), ("p", "passed")]);
    assert!(check_full_run(&renamed, &known, &racy)[0].starts_with("listed spec not in the suite"));

    let ran_racy = outcomes(&[("a fails", "failed"), ("r races", "passed")]);
    assert!(check_full_run(&ran_racy, &known, &racy)[0].starts_with("listed racy but ran"));
}
