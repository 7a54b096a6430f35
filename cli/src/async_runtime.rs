//! The async runtime, started only on demand: only the cluster and URL paths need one, so
//! offline runs never start tokio.

use std::future::Future;

use crate::error::{CliError, Result};

/// Runs a future on a fresh single-threaded runtime.
pub fn block_on<F: Future>(fut: F) -> Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Internal(format!("cannot start the async runtime: {e}")))?;
    Ok(rt.block_on(fut))
}
