//! What the binary was built from: printed by `--version`, logged at start-up and exported in
//! `build_info`.

/// The version printed by `--version` (`controller version: v0.1.0`, upstream's format, §4.1)
/// and exported in `build_info{revision}`.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// The git commit the binary was built from (`build.rs`; `unknown` without git), exported in
/// `build_info{commit}` and logged at start-up.
pub const GIT_COMMIT: &str = env!("SEALED_SECRETS_GIT_COMMIT");
