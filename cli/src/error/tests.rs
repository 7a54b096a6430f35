//! The messages of [`CliError`]: upstream's texts that scripts match on, and our own
//! naming what failed and where.

use std::path::PathBuf;

use super::*;
use crate::exit;

/// Upstream's texts (§6.4) that scripts match on, one per variant that carries one.
#[test]
fn upstream_messages_are_kept() {
    let cases: Vec<(CliError, &str)> = vec![
        (
            CliError::FlagRequires {
                flag: "--from-file",
                needs: "--raw",
            },
            "--from-file requires --raw",
        ),
        (
            CliError::RawTakesOneFile,
            "must provide only one --from-file when encrypting a single item with --raw",
        ),
        (
            CliError::NoSealedSecret,
            "no SealedSecret found in the input. Ensure the input is valid and UTF-8 encoded",
        ),
        (
            CliError::NotDecryptable {
                name: "db".to_owned(),
            },
            "unable to decrypt sealed secret: db",
        ),
        (CliError::RotateRefused, "unable to rotate secret"),
        (
            CliError::ControllerStatus {
                action: "cannot fetch certificate",
                reason: "no endpoints".to_owned(),
                status: 503,
            },
            "cannot fetch certificate: no endpoints (HTTP 503)",
        ),
        (
            CliError::ServiceNotFound {
                message: "services \"x\" not found".to_owned(),
            },
            "cannot get sealed secret service: services \"x\" not found. Please, use the flag \
             --controller-name and --controller-namespace to set up the name and namespace \
             of the sealed secrets controller",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
        assert_eq!(e.exit_code(), exit::ERROR, "{want}");
    }
}

#[test]
fn context_is_named_in_the_message() {
    let e = CliError::InvalidFlag {
        flag: "--request-timeout",
        value: "soon".to_owned(),
        reason: "expected e.g. 30s".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        "invalid --request-timeout `soon`: expected e.g. 30s"
    );
    let e = CliError::Kubeconfig {
        path: Some(PathBuf::from("/k/config")),
        cause: "bad yaml".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        "cannot load kubeconfig `/k/config`: bad yaml"
    );
    let e = CliError::Kubeconfig {
        path: None,
        cause: "no context".to_owned(),
    };
    assert_eq!(e.to_string(), "cannot load kubeconfig: no context");
    let e = CliError::Api {
        context: "cannot read Secret `ns/a`".to_owned(),
        failure: Failure::Api {
            code: 403,
            reason: "Forbidden".to_owned(),
            message: "no".to_owned(),
        },
    };
    assert!(
        e.to_string().starts_with("cannot read Secret `ns/a`: "),
        "{e}"
    );
    let e = CliError::SecretWithoutKey {
        path: PathBuf::from("keys.yaml"),
        index: 2,
        name: " (`k2`)".to_owned(),
    };
    assert_eq!(
        e.to_string(),
        "secret must contain a 'tls.data' key: `keys.yaml`: Secret 2 (`k2`) has no data[\"tls.key\"] (the private key)"
    );
    let e = CliError::NoKeyCouldDecrypt {
        object: "team-a/db".to_owned(),
        items: vec!["password".to_owned(), "username".to_owned()],
        keys: 0,
    };
    assert_eq!(
        e.to_string(),
        "no key could decrypt secret (password, username): SealedSecret `team-a/db`, no private key given (--recovery-private-key)"
    );
    let e = CliError::NoKeyCouldDecrypt {
        object: "team-a/db".to_owned(),
        items: (0..12).map(|i| format!("k{i:02}")).collect(),
        keys: 2,
    };
    assert_eq!(
        e.to_string(),
        "no key could decrypt secret (k00, k01, k02, k03, k04, k05, k06, k07, k08, k09, and 2 more): SealedSecret `team-a/db`, tried 2 private keys"
    );
    assert_eq!(
        CliError::Passphrase(PassphraseError::Mismatch).to_string(),
        "the passphrases do not match"
    );
}
