//! AWS credentials: from the environment or a shared credentials file (a mounted Secret),
//! never from command-line flags (which `ps` and pod specs show), never logged.

use std::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

use crate::error::WrapError;

/// Access key ID variable.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Secret access key variable.
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Session token variable (temporary credentials).
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";
/// Path of a shared credentials file (INI: `[profile]` sections of `key = value`).
pub const ENV_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// Profile to read from the credentials file (default `default`).
pub const ENV_PROFILE: &str = "AWS_PROFILE";

const BACKEND: &str = "aws-kms";

/// One set of AWS credentials. `Debug` shows the access key ID only; the secret key and
/// session token are zeroised on drop.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

impl Credentials {
    /// Credentials given directly (tests, or a caller with its own source).
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Credentials {
        Credentials {
            access_key_id: access_key_id.into(),
            secret_access_key: Zeroizing::new(secret_access_key.into()),
            session_token: session_token.map(Zeroizing::new),
        }
    }

    /// The access key ID (not secret: it appears in every request and in CloudTrail).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    pub(crate) fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    pub(crate) fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }
}

/// Where credentials come from. Read again for every call, so rotated credentials (a
/// re-mounted Secret, a refreshed session token) are picked up without a restart.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CredentialSource {
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optionally `AWS_SESSION_TOKEN`.
    Environment,
    /// A shared credentials file and the profile to read.
    File {
        /// Path of the file.
        path: PathBuf,
        /// Profile (section) name.
        profile: String,
    },
    /// Fixed credentials.
    Static(Credentials),
}

impl CredentialSource {
    /// The source the AWS tools would use: the credentials file named by
    /// `AWS_SHARED_CREDENTIALS_FILE` (profile `AWS_PROFILE`) when set, else the environment.
    pub fn from_env() -> CredentialSource {
        match std::env::var_os(ENV_CREDENTIALS_FILE) {
            Some(path) if std::env::var_os(ENV_ACCESS_KEY_ID).is_none() => CredentialSource::File {
                path: PathBuf::from(path),
                profile: std::env::var(ENV_PROFILE).unwrap_or_else(|_| "default".to_owned()),
            },
            _ => CredentialSource::Environment,
        }
    }

    /// Reads the credentials now.
    pub fn load(&self) -> Result<Credentials, WrapError> {
        match self {
            CredentialSource::Static(c) => Ok(c.clone()),
            CredentialSource::Environment => {
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
                let (Some(id), Some(secret)) = (var(ENV_ACCESS_KEY_ID), var(ENV_SECRET_ACCESS_KEY))
                else {
                    return Err(WrapError::Credentials {
                        backend: BACKEND,
                        reason: format!(
                            "{ENV_ACCESS_KEY_ID} and {ENV_SECRET_ACCESS_KEY} are not both set"
                        ),
                    });
                };
                Ok(Credentials::new(id, secret, var(ENV_SESSION_TOKEN)))
            }
            CredentialSource::File { path, profile } => {
                let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    WrapError::Credentials {
                        backend: BACKEND,
                        reason: format!("cannot read `{}`: {}", path.display(), e.kind()),
                    }
                })?);
                parse_profile(&text, profile).ok_or_else(|| WrapError::Credentials {
                    backend: BACKEND,
                    reason: format!(
                        "profile `{profile}` of `{}` lacks aws_access_key_id or aws_secret_access_key",
                        path.display()
                    ),
                })
            }
        }
    }
}

/// The keys of `[profile]` in an AWS shared credentials file.
fn parse_profile(text: &str, profile: &str) -> Option<Credentials> {
    let (mut in_section, mut id, mut secret, mut token) = (false, None, None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = name.trim() == profile;
            continue;
        }
        if !in_section {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_owned();
            match k.trim() {
                "aws_access_key_id" => id = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    Some(Credentials::new(id?, secret?, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_named_profile_only() {
        let text = "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n\n\
                    [ci]\n# comment\naws_access_key_id=A2\naws_secret_access_key = S2\naws_session_token = T2\n";
        let c = parse_profile(text, "ci").unwrap_or_else(|| panic!("profile ci"));
        assert_eq!(
            (c.access_key_id(), c.secret_access_key(), c.session_token()),
            ("A2", "S2", Some("T2"))
        );
        let d = parse_profile(text, "default").unwrap_or_else(|| panic!("profile default"));
        assert_eq!((d.access_key_id(), d.session_token()), ("A1", None));
        assert!(parse_profile(text, "missing").is_none());
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = Credentials::new("AKID", "very-secret", Some("tok-secret".into()));
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID"));
        assert!(
            !shown.contains("very-secret") && !shown.contains("tok-secret"),
            "{shown}"
        );
    }

    #[test]
    fn unreadable_file_names_the_path_not_contents() {
        let src = CredentialSource::File {
            path: "/nonexistent/credentials".into(),
            profile: "default".into(),
        };
        let err = src.load().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/credentials"), "{err}");
    }
}
