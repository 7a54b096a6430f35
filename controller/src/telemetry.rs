//! Logging through `tracing`: `--log-level`, `--log-format text|json`, and upstream's
//! `--log-info-stdout` split (INFO and below on stdout, WARN and ERROR on stderr).
//! Nothing logs secret values or keys: plaintexts and private keys live in redacting types.

use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;

use crate::config::LogFormat;

/// `--log-level` in slog's spelling (`DEBUG`, `INFO`, `WARN`, `ERROR`, case-insensitive).
pub fn parse_level(s: &str) -> Result<Level, String> {
    match s.to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(Level::DEBUG),
        "INFO" => Ok(Level::INFO),
        "WARN" | "WARNING" => Ok(Level::WARN),
        "ERROR" => Ok(Level::ERROR),
        "TRACE" => Ok(Level::TRACE),
        _ => Err(format!(
            "invalid --log-level {s:?} (use DEBUG, INFO, WARN or ERROR)"
        )),
    }
}

/// Installs the global subscriber. `RUST_LOG` refines the filter when set.
pub fn init(level: Level, format: LogFormat, info_to_stdout: bool) {
    // Dependencies are noisy at DEBUG; keep them at WARN unless RUST_LOG says otherwise.
    let default = format!("warn,sealed_secrets_controller={level},sealed_secrets_api={level}");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false);
    if info_to_stdout {
        let writer = std::io::stderr
            .with_max_level(Level::WARN)
            .or_else(std::io::stdout);
        match format {
            LogFormat::Json => builder.json().with_writer(writer).init(),
            LogFormat::Text => builder.with_writer(writer).init(),
        }
    } else {
        match format {
            LogFormat::Json => builder.json().with_writer(std::io::stderr).init(),
            LogFormat::Text => builder.with_writer(std::io::stderr).init(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels() {
        assert_eq!(parse_level("info").unwrap(), Level::INFO);
        assert_eq!(parse_level("WARN").unwrap(), Level::WARN);
        assert!(parse_level("loud").is_err());
    }
}
