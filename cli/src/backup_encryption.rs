//! Backup files of the controller's keys: a `v1.List` of key Secrets (the shape upstream's
//! docs recommend, usable as `--recovery-private-key` once decrypted), encrypted with age
//! (<https://age-encryption.org>): a passphrase (scrypt) by default, or X25519 recipients
//! (`age1...`). ASCII-armored so the file can be pasted into a password manager.
//! Plaintext only with `--insecure-plaintext`.
//!
//! A new backup's passphrase must have [`MIN_PASSPHRASE_CHARS`] characters, [`MIN_DISTINCT_CHARS`]
//! of them different: the file may end up anywhere, and scrypt only slows down guessing. An
//! existing backup's passphrase is not judged when opening it (refusing would lock its owner
//! out, and the file is already in the reader's hands); a weak one gets a warning.

use std::io::{Read, Write};
use std::path::Path;

use age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::args::{DecryptArgs, EncryptArgs};
use crate::env;
use crate::error::{CliError, GoIoError, PassphraseError, Result};

/// Minimum length, in characters, of a new backup's passphrase.
pub const MIN_PASSPHRASE_CHARS: usize = 12;
/// Minimum number of distinct characters in a new backup's passphrase (rules out
/// `aaaaaaaaaaaa` and `121212121212`).
pub const MIN_DISTINCT_CHARS: usize = 5;

/// Whether `p` meets the minimum strength of a new backup's passphrase.
pub fn strong_enough(p: &str) -> bool {
    let distinct: std::collections::BTreeSet<char> = p.chars().collect();
    p.chars().count() >= MIN_PASSPHRASE_CHARS && distinct.len() >= MIN_DISTINCT_CHARS
}

/// Start of an armored age file.
const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
/// Start of a binary age file.
const BINARY_BEGIN: &[u8] = b"age-encryption.org/v1";

/// True when `data` is an age file (armored or binary).
pub fn is_encrypted(data: &[u8]) -> bool {
    let start = data
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    let data = &data[start..];
    data.starts_with(ARMOR_BEGIN.as_bytes()) || data.starts_with(BINARY_BEGIN)
}

/// Encrypts a backup for the recipients of `args`, else a passphrase.
pub fn encrypt(plaintext: &[u8], args: &EncryptArgs) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| CliError::BackupEncrypt {
        cause: e.to_string(),
    };
    let encryptor = if args.recipient.is_empty() {
        let pass = passphrase(args.passphrase_file.as_deref(), true)?;
        age::Encryptor::with_user_passphrase(pass)
    } else {
        let mut recipients = Vec::new();
        for r in &args.recipient {
            let parsed: age::x25519::Recipient =
                r.parse().map_err(|e: &str| CliError::InvalidFlag {
                    flag: "--recipient",
                    value: r.clone(),
                    reason: e.to_owned(),
                })?;
            recipients.push(parsed);
        }
        age::Encryptor::with_recipients(recipients.iter().map(|r| r as &dyn age::Recipient))
            .map_err(|e| fail(&e))?
    };
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| fail(&e))?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| fail(&e))?;
    w.write_all(plaintext).map_err(|e| fail(&e))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| fail(&e))?;
    Ok(out)
}

/// Opens a backup file's contents (plaintext backups are returned as they are).
pub fn decrypt(data: &[u8], args: &DecryptArgs, path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    if !is_encrypted(data) {
        return Ok(Zeroizing::new(data.to_vec()));
    }
    let fail = |e: &dyn std::fmt::Display| CliError::BackupDecrypt {
        path: path.to_owned(),
        cause: e.to_string(),
    };
    let decryptor =
        age::Decryptor::new(age::armor::ArmoredReader::new(data)).map_err(|e| fail(&e))?;
    let mut reader = if decryptor.is_scrypt() {
        let pass = passphrase(args.passphrase_file.as_deref(), false)?;
        let id = age::scrypt::Identity::new(pass);
        decryptor
            .decrypt(std::iter::once(&id as &dyn age::Identity))
            .map_err(|e| fail(&e))?
    } else {
        if args.identity.is_empty() {
            return Err(fail(&"it is encrypted to age recipients")
                .with_hint("pass the matching identity file with --identity FILE"));
        }
        let mut ids: Vec<Box<dyn age::Identity>> = Vec::new();
        for f in &args.identity {
            let file = age::IdentityFile::from_file(f.display().to_string())
                .map_err(|e| CliError::io("failed to read identity", f, e))?;
            ids.extend(file.into_identities().map_err(|e| fail(&e))?);
        }
        decryptor
            .decrypt(ids.iter().map(|i| i.as_ref() as &dyn age::Identity))
            .map_err(|e| fail(&e))?
    };
    let mut out = Zeroizing::new(Vec::new());
    reader.read_to_end(&mut out).map_err(|e| fail(&e))?;
    Ok(out)
}

/// The passphrase: `--passphrase-file`, else `$SEALED_SECRETS_BACKUP_PASSPHRASE`, else a
/// prompt on the terminal (twice when creating a backup).
fn passphrase(file: Option<&Path>, confirm: bool) -> Result<SecretString> {
    let pass = read_passphrase(file, confirm)?;
    let strong = strong_enough(age::secrecy::ExposeSecret::expose_secret(&pass));
    match (strong, confirm) {
        (true, _) => Ok(pass),
        (false, true) => Err(CliError::Passphrase(PassphraseError::Weak {
            min_chars: MIN_PASSPHRASE_CHARS,
            min_distinct: MIN_DISTINCT_CHARS,
        })),
        (false, false) => {
            crate::printer().warn(format_args!(
                "this backup's passphrase is weak (fewer than {MIN_PASSPHRASE_CHARS} characters or {MIN_DISTINCT_CHARS} distinct ones): make a new backup with a stronger one"
            ));
            Ok(pass)
        }
    }
}

/// The passphrase as given, not judged.
fn read_passphrase(file: Option<&Path>, confirm: bool) -> Result<SecretString> {
    if let Some(f) = file {
        let data = Zeroizing::new(
            std::fs::read(f).map_err(|e| CliError::io("failed to read passphrase", f, e))?,
        );
        let first = data.split(|b| *b == b'\n').next().unwrap_or(&[]);
        let text = String::from_utf8(first.strip_suffix(b"\r").unwrap_or(first).to_vec())
            .map_err(|_| CliError::Passphrase(PassphraseError::NotUtf8))?;
        return non_empty(text);
    }
    if let Ok(p) = std::env::var(env::BACKUP_PASSPHRASE) {
        return non_empty(p);
    }
    let first = prompt("Passphrase: ", confirm)?;
    if confirm {
        let again = prompt("Confirm passphrase: ", confirm)?;
        if *again != *first {
            return Err(CliError::Passphrase(PassphraseError::Mismatch));
        }
    }
    non_empty(first.to_string())
}

/// Asks on the controlling terminal without echo (rpassword opens `/dev/tty` itself, so the
/// prompt works while stdin and stdout carry data). Without a terminal, says so and how to
/// pass the passphrase instead.
fn prompt(label: &str, encrypting: bool) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(label)
        .map(Zeroizing::new)
        .map_err(|e| {
            // Each side names only its own flags: --recipient when making a backup,
            // --identity when opening one.
            let other = if encrypting {
                "or --recipient age1... to encrypt to a key instead"
            } else {
                "(a backup made with --recipient opens with --identity FILE instead)"
            };
            CliError::Passphrase(PassphraseError::NoTerminal(GoIoError(e))).with_hint(format!(
                "use --passphrase-file FILE or ${} {other}",
                env::BACKUP_PASSPHRASE
            ))
        })
}

fn non_empty(p: String) -> Result<SecretString> {
    if p.is_empty() {
        return Err(CliError::Passphrase(PassphraseError::Empty));
    }
    Ok(SecretString::from(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipient_round_trip() {
        let id = age::x25519::Identity::generate();
        let args = EncryptArgs {
            recipient: vec![id.to_public().to_string()],
            ..EncryptArgs::default()
        };
        let ct = encrypt(b"keys", &args);
        assert!(ct.is_ok());
        let ct = ct.unwrap_or_default();
        assert!(is_encrypted(&ct));
        assert!(!ct.windows(4).any(|w| w == b"keys"));
        let dir = tempfile::tempdir().unwrap();
        let idf = dir.path().join("id.txt");
        std::fs::write(
            &idf,
            age::secrecy::ExposeSecret::expose_secret(&id.to_string()),
        )
        .unwrap();
        let args = DecryptArgs {
            identity: vec![idf],
            ..DecryptArgs::default()
        };
        let pt = decrypt(&ct, &args, Path::new("b")).unwrap();
        assert_eq!(&pt[..], b"keys");
    }

    #[test]
    fn passphrase_file_round_trip_and_wrong_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("p");
        std::fs::write(&pf, "correct horse\n").unwrap();
        let enc = EncryptArgs {
            passphrase_file: Some(pf.clone()),
            ..EncryptArgs::default()
        };
        let dec = DecryptArgs {
            passphrase_file: Some(pf.clone()),
            ..DecryptArgs::default()
        };
        let ct = encrypt(b"keys", &enc).unwrap();
        assert_eq!(&decrypt(&ct, &dec, Path::new("b")).unwrap()[..], b"keys");
        std::fs::write(&pf, "wrong\n").unwrap();
        assert!(decrypt(&ct, &dec, Path::new("b")).is_err());
    }

    #[test]
    fn a_new_backup_needs_a_passphrase_of_minimum_strength() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("p");
        for weak in ["short", "aaaaaaaaaaaaaaaa", "121212121212", "abcdabcdabcd"] {
            std::fs::write(&pf, format!("{weak}\n")).unwrap();
            let enc = EncryptArgs {
                passphrase_file: Some(pf.clone()),
                ..EncryptArgs::default()
            };
            let err = encrypt(b"keys", &enc).unwrap_err();
            assert!(
                matches!(err, CliError::Passphrase(PassphraseError::Weak { .. })),
                "{weak}: {err}"
            );
        }
        assert!(strong_enough("correct horse"));
        assert!(!strong_enough("abcdabcdabcd"));
        assert!(strong_enough("abcdeabcdeab"));
    }
}
