//! Sealing a whole YAML/JSON stream of Secrets: the one pipeline behind `kubeseal`'s default
//! mode (and every test or tool that seals manifests).
//!
//! Each value costs one RSA public-key operation (about 45 µs at 4,096 bits, two thirds of the
//! CPU of sealing a large file; parsing and printing are the rest), and Secrets are
//! independent, so the Secrets are sealed on every core: a multi-document file seals in about
//! 1/cores of the time on an idle machine. Threads take small runs of consecutive Secrets from a
//! shared queue, so a thread the OS holds back on a busy machine does not hold up the others.
//! The output keeps the input order, and the error returned is the one a sequential run
//! returns: that of the first failing Secret in input order.

use std::num::NonZeroUsize;
use std::sync::{Mutex, PoisonError};

use super::recipients::Recipients;
use super::secret::{SealOptions, seal_secret};
use crate::error::SealingError;
use crate::manifest::{SecretInput, parse_secrets};
use crate::types::SealedSecret;

/// Seals every Secret of a YAML/JSON stream, on as many threads as the process may use.
/// Errors on empty input (§6.4) and on documents that are not Secrets.
pub fn seal_manifests<'r>(
    input: &[u8],
    recipients: impl Into<Recipients<'r>>,
    opts: &SealOptions,
) -> Result<Vec<SealedSecret>, SealingError> {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    seal_manifests_on(input, recipients, opts, cores)
}

/// [`seal_manifests`] on at most `threads` threads (1 seals on the calling thread). The result,
/// error included, does not depend on `threads`.
pub fn seal_manifests_on<'r>(
    input: &[u8],
    recipients: impl Into<Recipients<'r>>,
    opts: &SealOptions,
    threads: usize,
) -> Result<Vec<SealedSecret>, SealingError> {
    let recipients = recipients.into();
    let secrets = parse_secrets(input)?;
    if secrets.is_empty() {
        return Err(SealingError::NoSecrets);
    }
    let seal_run = |run: Vec<SecretInput>| -> Result<Vec<_>, SealingError> {
        run.into_iter()
            .map(|s| seal_secret(s, recipients, opts))
            .collect()
    };
    let threads = threads.clamp(1, secrets.len());
    if threads == 1 {
        return seal_run(secrets);
    }
    // About four runs per thread, at most 16 Secrets (under 50 RSA operations) each.
    let run_len = (secrets.len() / (threads * 4)).clamp(1, 16);
    let mut runs = Vec::with_capacity(secrets.len().div_ceil(run_len));
    let mut rest = secrets.into_iter();
    loop {
        let run: Vec<SecretInput> = rest.by_ref().take(run_len).collect();
        if run.is_empty() {
            break;
        }
        runs.push(run);
    }
    let queue = Mutex::new(runs.into_iter().enumerate());
    let next = || queue.lock().unwrap_or_else(PoisonError::into_inner).next();
    let mut results: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((index, run)) = next() {
                        done.push((index, seal_run(run)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    let mut sealed = Vec::new();
    for (_, result) in results {
        sealed.extend(result?);
    }
    Ok(sealed)
}
