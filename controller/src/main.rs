//! `sealed-secrets-controller`: parses flags into settings, sets up logging, and runs the
//! library.

use clap::Parser as _;
use sealed_secrets_controller::config::{Config, VERSION};
use sealed_secrets_controller::settings::Settings;
use sealed_secrets_controller::{run, telemetry};

fn main() -> std::process::ExitCode {
    let cfg = Config::parse();
    if cfg.version {
        // Upstream's exact format (§4.1).
        println!("controller version: {VERSION}");
        return std::process::ExitCode::SUCCESS;
    }
    // Every flag is checked here, before logging or any API call; a bad one is a usage
    // error like clap's own (exit 2).
    let settings = match Settings::try_from(cfg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(
        settings.log.level,
        settings.log.format,
        settings.log.info_to_stdout,
    );
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
    match runtime.block_on(run(settings)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let err = anyhow::Error::from(e);
            tracing::error!(error = format!("{err:#}"), "controller failed");
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
