//! How `main` reports a [`CliError`]: the `hint:` line, the exit status, and the quiet exit
//! on a closed stdout. Kept apart from the enum so the policy (which errors the user can fix,
//! what to tell them) reads as one table instead of being scattered over 50 variants.

use std::io;

use sealed_secrets_api::{OutputError, SealingError, UnsealError};

use super::CliError;
use super::wording::OFFLINE_HINT;
use crate::exit;

impl CliError {
    /// The `hint:` line(s), if any.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Hinted { hint, .. } => Some(hint.clone()),
            CliError::WouldOverwrite { .. } => {
                Some("pass --force to replace it, or choose another -o".to_owned())
            }
            CliError::PlainHttpCert { .. } => Some(
                "use https://, a local file, or pass --allow-insecure-cert-url if this network is trusted"
                    .to_owned(),
            ),
            CliError::ServiceNotFound { .. } => Some(OFFLINE_HINT.to_owned()),
            CliError::NoActiveKey { .. } => {
                Some("is the controller running there? check --controller-namespace".to_owned())
            }
            CliError::RotateTimeout { .. } => Some(
                "check the controller's logs; it must support the rotate-requested-at annotation"
                    .to_owned(),
            ),
            CliError::BackupPlaintext { .. } => Some(
                "restore an encrypted backup (kubeseal keys backup), or pass --insecure-plaintext \
                 if you made this file yourself and it never left your control"
                    .to_owned(),
            ),
            CliError::BackupFutureKey { .. } => Some(
                "a key made by a controller is never dated ahead; check where this backup came \
                 from (and the clocks)"
                    .to_owned(),
            ),
            CliError::RestoreNotConfirmed => Some(
                "check the fingerprints listed above, then run it again with --yes".to_owned(),
            ),
            CliError::KeyNotFound { .. } => Some(
                "kubeseal keys list shows each key's fingerprint and Secret; check --controller-namespace"
                    .to_owned(),
            ),
            CliError::RetireNewest { .. } => Some(
                "rotate first (kubeseal keys rotate), re-encrypt what this key sealed, then retire it"
                    .to_owned(),
            ),
            CliError::KeyInUse { .. } => Some(
                "re-encrypt them to a newer key (kubeseal --re-encrypt, or kubeseal reencrypt on their \
                 source tree) and apply them; then run this again"
                    .to_owned(),
            ),
            CliError::RetireNotConfirmed => Some(
                "back up the keys (kubeseal keys backup), then run it again with --yes".to_owned(),
            ),
            CliError::KeyWrapSetup(_) => Some(
                "pass --key-wrap-backend, --key-wrap-key and --key-wrap-cluster as the controller \
                 has them (AWS credentials from the AWS_* variables, a PKCS#11 PIN from \
                 --key-wrap-pkcs11-pin-file)"
                    .to_owned(),
            ),
            CliError::KeyWrapCall { .. } => Some(
                "check the KMS endpoint, credentials and grant, and that --key-wrap-cluster is \
                 the controller's (it is bound into every wrapped key)"
                    .to_owned(),
            ),
            CliError::KeyConflict { .. } => Some(
                "restore into another controller namespace, or rename the Secret in the backup"
                    .to_owned(),
            ),
            CliError::BackupIncomplete { .. } => Some(
                "refresh the backup after every key renewal: kubeseal keys backup -o FILE"
                    .to_owned(),
            ),
            CliError::ReencryptFailed { .. } => Some(
                "pass every key that sealed them with --recovery-private-key (comma list or repeated)"
                    .to_owned(),
            ),
            CliError::StrictUnparsed { .. } => Some(
                "fix or render them (e.g. scan `helm template` output), or drop --strict"
                    .to_owned(),
            ),
            CliError::OfflineInvalid { .. } => Some(
                "re-seal the Secret with this certificate (kubeseal --cert ...), or validate against the cluster without --cert"
                    .to_owned(),
            ),
            CliError::NoKeyCouldDecrypt { keys: 0, .. } => Some(
                "pass the private key(s) that sealed it with --recovery-private-key \
                 (e.g. a backup from `kubeseal keys backup`)"
                    .to_owned(),
            ),
            CliError::NoKeyCouldDecrypt { .. } => Some(
                "none of the given keys sealed it, or the SealedSecret was renamed or moved \
                 to another namespace after sealing (strict scope); pass every key of the \
                 controller with --recovery-private-key"
                    .to_owned(),
            ),
            CliError::Unseal(e) if e.refused_multi_v1() => Some(
                "reseal the Secret with kubeseal (it writes version 2), or pass \
                 --accept-multi-recipient-v1 to open it once for that"
                    .to_owned(),
            ),
            CliError::Unseal(e) if e.is_no_key() => Some(
                "pass the private key(s) that sealed it with --recovery-private-key \
                 (e.g. a backup from `kubeseal keys backup`)"
                    .to_owned(),
            ),
            CliError::Unseal(UnsealError::Render { .. }) => Some(
                "the reason is withheld even here (see docs/security.md); to debug, unseal a copy \
                 without spec.template.data and check the templates against its values"
                    .to_owned(),
            ),
            CliError::Seal(SealingError::NamespaceMismatch { .. }) => {
                Some("drop -n/--namespace, or change metadata.namespace in the input".to_owned())
            }
            CliError::Seal(SealingError::EmptyData) => None,
            CliError::NoPqRecipient { .. } => Some(
                "the controller publishes one only when its newest key has a post-quantum \
                 identity (sealed-secrets-rs); rotate its key, or seal offline with \
                 --recipients-file FILE"
                    .to_owned(),
            ),
            CliError::PqDowngrade { .. } => Some(
                "re-encrypt offline instead: kubeseal reencrypt --post-quantum \
                 --recovery-private-key BACKUP --recipients-file FILE DIR"
                    .to_owned(),
            ),
            _ => None,
        }
    }

    /// The error without its hint wrapper(s).
    pub fn unhinted(&self) -> &CliError {
        match self {
            CliError::Hinted { error, .. } => error.unhinted(),
            other => other,
        }
    }

    /// True when this is a closed stdout (the reader went away): exit quietly.
    pub fn is_broken_pipe(&self) -> bool {
        match self {
            CliError::Io { source, .. } => source.0.kind() == io::ErrorKind::BrokenPipe,
            CliError::Hinted { error, .. } => error.is_broken_pipe(),
            _ => false,
        }
    }

    /// [`exit::ERROR`] for what the user can fix, [`exit::INTERNAL`] for the unexpected.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Internal(_) | CliError::Output(OutputError::Yaml(_)) => exit::INTERNAL,
            CliError::Output(OutputError::Json(_)) => exit::INTERNAL,
            CliError::Hinted { error, .. } => error.exit_code(),
            _ => exit::ERROR,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Hints that belong to a variant come from `hint()`; an explicit `with_hint` still wins.
    #[test]
    fn variant_hints_and_overrides() {
        let e = CliError::WouldOverwrite {
            path: PathBuf::from("out.key"),
        };
        assert_eq!(e.to_string(), "refusing to overwrite `out.key`");
        assert_eq!(
            e.hint().as_deref(),
            Some("pass --force to replace it, or choose another -o")
        );
        let e = CliError::NoActiveKey {
            namespace: "kube-system".to_owned(),
        }
        .with_hint("other");
        assert_eq!(e.hint().as_deref(), Some("other"));
        assert_eq!(CliError::RotateRefused.hint(), None);
        assert_eq!(
            CliError::ServiceNotFound {
                message: String::new()
            }
            .hint()
            .as_deref(),
            Some(OFFLINE_HINT)
        );
    }

    /// 1 for everything the user can act on (all the former `Usage` messages), 2 only for
    /// the unexpected.
    #[test]
    fn exit_codes() {
        assert_eq!(
            CliError::StrictUnparsed { count: 1 }.exit_code(),
            exit::ERROR
        );
        assert_eq!(
            CliError::Timeout {
                what: "x".to_owned(),
                limit: "1s".to_owned()
            }
            .with_hint("h")
            .exit_code(),
            exit::ERROR
        );
        assert_eq!(
            CliError::Internal("bug".to_owned()).exit_code(),
            exit::INTERNAL
        );
    }
}
