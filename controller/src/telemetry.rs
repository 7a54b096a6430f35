//! Logging through `tracing`: `--log-level`, `--log-format text|json`, and upstream's
//! `--log-info-stdout` split (INFO and below on stdout, WARN and ERROR on stderr).
//! Nothing logs secret values or keys: plaintexts and private keys live in redacting types.
//!
//! JSON lines have upstream's field names (Go `slog`'s JSON handler): `time`, `level`, `msg`,
//! then the event's own fields at the top level ([`SlogJson`]), so log queries written for
//! upstream keep working.

use clap::{ArgAction, Args, ValueEnum};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::flags::{Refused, parse_bool};

/// The logging flags.
#[derive(Clone, Copy, Debug, Args)]
pub struct LogArgs {
    /// INFO and below go to stdout, WARN and ERROR to stderr; otherwise everything goes to stderr.
    #[arg(long = "log-info-stdout", default_value = "true", value_parser = parse_bool,
          num_args = 0..=1, require_equals = true, default_missing_value = "true", action = ArgAction::Set)]
    pub info_to_stdout: bool,

    /// Log level (DEBUG, INFO, WARN, ERROR).
    #[arg(long = "log-level", default_value = "INFO", value_parser = parse_level)]
    pub level: Level,

    /// Log format (text or json).
    #[arg(
        long = "log-format",
        value_enum,
        default_value = "text",
        ignore_case = true
    )]
    pub format: LogFormat,
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The JSON line format of upstream's `--log-format json` (slog): `{"time":…,"level":"INFO",
/// "msg":…,<fields>}`. A field named like one of those three is written with a `field.`
/// prefix rather than overwrite it.
#[derive(Clone, Copy, Debug, Default)]
pub struct SlogJson;

impl<S, N> FormatEvent<S, N> for SlogJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        writeln!(writer, "{}", slog_line(jiff::Timestamp::now(), event))
    }
}

/// One JSON line for `event` at `time`.
fn slog_line(time: jiff::Timestamp, event: &Event<'_>) -> serde_json::Value {
    let mut fields = FieldMap::default();
    event.record(&mut fields);
    let mut out = serde_json::Map::new();
    out.insert("time".into(), time.to_string().into());
    out.insert("level".into(), event.metadata().level().as_str().into());
    let msg = fields
        .0
        .remove("message")
        .unwrap_or_else(|| serde_json::Value::String(String::new()));
    out.insert("msg".into(), msg);
    for (k, v) in fields.0 {
        let key = if out.contains_key(&k) {
            format!("field.{k}")
        } else {
            k
        };
        out.insert(key, v);
    }
    serde_json::Value::Object(out)
}

/// Collects an event's fields as JSON values.
#[derive(Default)]
struct FieldMap(serde_json::Map<String, serde_json::Value>);

impl Visit for FieldMap {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().to_owned(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
}

/// `--log-level` in slog's spelling (`DEBUG`, `INFO`, `WARN`, `ERROR`, case-insensitive).
pub fn parse_level(s: &str) -> Result<Level, Refused> {
    match s.to_ascii_uppercase().as_str() {
        "DEBUG" => Ok(Level::DEBUG),
        "INFO" => Ok(Level::INFO),
        "WARN" | "WARNING" => Ok(Level::WARN),
        "ERROR" => Ok(Level::ERROR),
        "TRACE" => Ok(Level::TRACE),
        _ => Err(Refused::value(s, " (use DEBUG, INFO, WARN or ERROR)")),
    }
}

/// Installs the global subscriber. `RUST_LOG` refines the filter when set.
pub fn init(args: &LogArgs) {
    let LogArgs {
        level,
        format,
        info_to_stdout,
    } = *args;
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
            LogFormat::Json => builder.event_format(SlogJson).with_writer(writer).init(),
            LogFormat::Text => builder.with_writer(writer).init(),
        }
    } else {
        match format {
            LogFormat::Json => builder
                .event_format(SlogJson)
                .with_writer(std::io::stderr)
                .init(),
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

    #[derive(Clone, Default)]
    struct Buf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_lines_use_upstream_field_names() {
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .event_format(SlogJson)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                namespace = "ns1",
                attempt = 3u64,
                ok = false,
                msg = "clash",
                "failed to {}",
                "unseal"
            );
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        assert_eq!(line["level"], "WARN");
        assert_eq!(line["msg"], "failed to unseal");
        assert_eq!(line["namespace"], "ns1");
        assert_eq!(line["attempt"], 3);
        assert_eq!(line["ok"], false);
        assert_eq!(line["field.msg"], "clash");
        assert!(
            line["time"]
                .as_str()
                .unwrap()
                .parse::<jiff::Timestamp>()
                .is_ok()
        );
        let keys: Vec<&String> = line.as_object().unwrap().keys().collect();
        assert!(
            !keys.iter().any(|k| *k == "timestamp" || *k == "fields"),
            "{keys:?}"
        );
    }
}
