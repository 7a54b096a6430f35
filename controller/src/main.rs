//! `sealed-secrets-controller`: parses the flags, sets up logging, and runs the library.

use sealed_secrets_controller::config::{Config, ConfigError};
use sealed_secrets_controller::version::VERSION;
use sealed_secrets_controller::{allocator, run, telemetry};

fn main() -> std::process::ExitCode {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let allocator_tuned = allocator::tune(cores);
    // Every flag is checked here, before logging or any API call; a value the controller
    // cannot use is a usage error like clap's own (exit 2).
    let cfg = match Config::try_parse_from(std::env::args_os()) {
        Ok(c) => c,
        Err(ConfigError::Usage(e)) => e.exit(),
        Err(e @ ConfigError::Invalid(_)) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if cfg.version {
        // Upstream's exact format (§4.1).
        println!("controller version: {VERSION}");
        return std::process::ExitCode::SUCCESS;
    }
    telemetry::init(&cfg.log);
    if !allocator_tuned {
        tracing::warn!("glibc refused the allocator's settings; running with its defaults");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: failed to start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cfg)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let err = anyhow::Error::from(e);
            tracing::error!(error = format!("{err:#}"), "controller failed");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
