//! kubeseal-shaped output (§2.6).
//!
//! JSON: Go's `MarshalIndent` shape: 2-space indent, field order `kind`, `apiVersion`,
//! `metadata`, `spec` (Go struct order inside), HTML-safe escaping of `<`, `>`, `&`, trailing
//! newline, no `status`. YAML: a `---` line, then keys sorted as sigs.k8s.io/yaml prints them.

use std::collections::BTreeMap;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use sealed_secrets_gotemplate::json::GoFormatter;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;

use crate::error::OutputError;
use crate::types::{API_VERSION, KIND, SealedSecret, SecretTemplateSpec};

/// `-o/--format`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// Pretty JSON (upstream's default).
    #[default]
    Json,
    /// YAML preceded by `---`.
    Yaml,
}

impl FromStr for OutputFormat {
    type Err = OutputError;
    /// Case-insensitive `json` or `yaml`, else upstream's "unsupported output format".
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "json" => Ok(OutputFormat::Json),
            "yaml" => Ok(OutputFormat::Yaml),
            _ => Err(OutputError::UnsupportedFormat(s.to_owned())),
        }
    }
}

/// Writes a SealedSecret in the given format.
pub fn sealed_secret(ss: &SealedSecret, format: OutputFormat) -> Result<String, OutputError> {
    match format {
        OutputFormat::Json => Ok(to_json(ss)),
        OutputFormat::Yaml => to_yaml(ss),
    }
}

/// Writes a Secret (e.g. `--recovery-unseal` output) in the given format.
pub fn secret(secret: &Secret, format: OutputFormat) -> Result<String, OutputError> {
    match format {
        OutputFormat::Json => secret_to_json(secret),
        OutputFormat::Yaml => {
            let value = serde_json::to_value(GoSecret(secret)).map_err(OutputError::Json)?;
            value_to_yaml(&value)
        }
    }
}

/// kubeseal's JSON for a SealedSecret (infallible: every field is a string, map or bool).
pub fn to_json(ss: &SealedSecret) -> String {
    // Serialising these types into a Vec cannot fail (no non-string map keys, no I/O).
    go_json(&GoSealedSecret(ss)).unwrap_or_default()
}

/// kubeseal's YAML for a SealedSecret.
pub fn to_yaml(ss: &SealedSecret) -> Result<String, OutputError> {
    let value = serde_json::to_value(GoSealedSecret(ss)).map_err(OutputError::Json)?;
    value_to_yaml(&value)
}

/// JSON for a Secret in Go field order.
pub fn secret_to_json(secret: &Secret) -> Result<String, OutputError> {
    go_json(&GoSecret(secret)).map_err(OutputError::Json)
}

fn go_json<T: Serialize>(v: &T) -> Result<String, serde_json::Error> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, GoFormatter::default());
    v.serialize(&mut ser)?;
    buf.push(b'\n');
    // serde_json writes valid UTF-8.
    Ok(String::from_utf8(buf).unwrap_or_default())
}

/// Any JSON value as `---`-prefixed YAML with sorted keys.
pub fn value_to_yaml(value: &Value) -> Result<String, OutputError> {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    let body =
        serde_saphyr::to_string_with_options(&Sorted(value), options).map_err(OutputError::Yaml)?;
    let body = body.strip_prefix("---\n").unwrap_or(&body);
    let mut out = String::with_capacity(body.len() + 4);
    out.push_str("---\n");
    out.push_str(body);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    Ok(out)
}

/// Serialises a JSON value with map keys sorted, whatever serde_json's map ordering feature.
struct Sorted<'a>(&'a Value);

impl Serialize for Sorted<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Value::Object(m) => {
                let sorted: BTreeMap<&String, &Value> = m.iter().collect();
                let mut map = s.serialize_map(Some(sorted.len()))?;
                for (k, v) in sorted {
                    map.serialize_entry(k, &Sorted(v))?;
                }
                map.end()
            }
            Value::Array(a) => s.collect_seq(a.iter().map(Sorted)),
            other => other.serialize(s),
        }
    }
}

/// ObjectMeta in Go's struct field order.
struct GoMeta<'a>(&'a ObjectMeta);

impl Serialize for GoMeta<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let m = self.0;
        let mut map = s.serialize_map(None)?;
        macro_rules! field {
            ($key:literal, $val:expr) => {
                if let Some(v) = &$val {
                    map.serialize_entry($key, v)?;
                }
            };
        }
        field!("name", m.name);
        field!("generateName", m.generate_name);
        field!("namespace", m.namespace);
        field!("selfLink", m.self_link);
        field!("uid", m.uid);
        field!("resourceVersion", m.resource_version);
        field!("generation", m.generation);
        field!("creationTimestamp", m.creation_timestamp);
        field!("deletionTimestamp", m.deletion_timestamp);
        field!(
            "deletionGracePeriodSeconds",
            m.deletion_grace_period_seconds
        );
        if let Some(v) = m.labels.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("labels", v)?;
        }
        if let Some(v) = m.annotations.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("annotations", v)?;
        }
        if let Some(v) = m.owner_references.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("ownerReferences", v)?;
        }
        if let Some(v) = m.finalizers.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("finalizers", v)?;
        }
        if let Some(v) = m.managed_fields.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("managedFields", v)?;
        }
        map.end()
    }
}

struct GoTemplate<'a>(&'a SecretTemplateSpec);

impl Serialize for GoTemplate<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let empty = ObjectMeta::default();
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("metadata", &GoMeta(t.metadata.as_ref().unwrap_or(&empty)))?;
        if let Some(v) = t.type_.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("type", v)?;
        }
        if let Some(v) = &t.immutable {
            map.serialize_entry("immutable", v)?;
        }
        if let Some(v) = t.data.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("data", v)?;
        }
        map.end()
    }
}

struct GoSealedSecret<'a>(&'a SealedSecret);

impl Serialize for GoSealedSecret<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Spec<'a>(&'a SealedSecret);
        impl Serialize for Spec<'_> {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let spec = &self.0.spec;
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("template", &GoTemplate(&spec.template))?;
                if let Some(d) = spec.data.as_ref().filter(|d| !d.is_empty()) {
                    map.serialize_entry("data", d)?;
                }
                map.serialize_entry("encryptedData", &spec.encrypted_data)?;
                map.end()
            }
        }
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("kind", KIND)?;
        map.serialize_entry("apiVersion", API_VERSION)?;
        map.serialize_entry("metadata", &GoMeta(&self.0.metadata))?;
        map.serialize_entry("spec", &Spec(self.0))?;
        map.end()
    }
}

struct GoSecret<'a>(&'a Secret);

impl Serialize for GoSecret<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let sec = self.0;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("kind", "Secret")?;
        map.serialize_entry("apiVersion", "v1")?;
        map.serialize_entry("metadata", &GoMeta(&sec.metadata))?;
        if let Some(v) = &sec.immutable {
            map.serialize_entry("immutable", v)?;
        }
        if let Some(v) = sec.data.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("data", v)?;
        }
        if let Some(v) = sec.string_data.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("stringData", v)?;
        }
        if let Some(v) = sec.type_.as_ref().filter(|v| !v.is_empty()) {
            map.serialize_entry("type", v)?;
        }
        map.end()
    }
}
