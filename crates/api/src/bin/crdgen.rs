//! Prints the SealedSecret CRD: `cargo run -p sealed-secrets-api --bin crdgen > crds/sealedsecrets.bitnami.com.yaml`.

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    match sealed_secrets_api::crd_yaml() {
        Ok(yaml) => match std::io::stdout().write_all(yaml.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
