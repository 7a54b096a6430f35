//! `sealed-secrets-controller`: parses flags, sets up logging, and runs the library.

use clap::Parser as _;
use sealed_secrets_controller::config::{Config, VERSION};
use sealed_secrets_controller::{run, telemetry};

fn main() -> std::process::ExitCode {
    let cfg = Config::parse();
    if cfg.version {
        // Upstream's exact format (§4.1).
        println!("controller version: {VERSION}");
        return std::process::ExitCode::SUCCESS;
    }
    let level = match telemetry::parse_level(&cfg.log_level) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(level, cfg.log_format, cfg.log_info_stdout);
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
