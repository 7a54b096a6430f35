//! The `SealedSecret` custom resource (`bitnami.com/v1alpha1`), shaped like upstream's Go types
//! (spec §2.1-2.3) so that objects round-trip through both implementations unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::schema;

/// API group of the SealedSecret CRD.
pub const GROUP: &str = "bitnami.com";
/// The only served (and storage) version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of SealedSecret objects.
pub const API_VERSION: &str = "bitnami.com/v1alpha1";
/// `kind` of SealedSecret objects.
pub const KIND: &str = "SealedSecret";
/// Name of the CRD object itself.
pub const CRD_NAME: &str = "sealedsecrets.bitnami.com";
/// The only condition type upstream ever writes (§2.3).
pub const CONDITION_SYNCED: &str = "Synced";

/// SealedSecretSpec is the specification of a SealedSecret.
// The encrypted values plus the (unencrypted) template of the Secret to produce. Field order
// matches upstream's Go struct so that JSON output has the same key order (§2.6).
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(...) legitimately repeats `type_ = \"string\"`"
)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[kube(
    group = "bitnami.com",
    version = "v1alpha1",
    kind = "SealedSecret",
    plural = "sealedsecrets",
    singular = "sealedsecret",
    namespaced,
    status = "SealedSecretStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "SealedSecret is the K8s representation of a \"sealed Secret\" - a regular k8s Secret that has been sealed (encrypted) using the controller's key.",
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[0].message"
    ),
    printcolumn(
        name = "Synced",
        type_ = "string",
        json_path = ".status.conditions[0].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretSpec {
    /// Template defines the structure of the Secret that will be created from this sealed secret.
    #[serde(default)]
    pub template: SecretTemplateSpec,

    /// Data is deprecated and will be removed eventually. Use per-value EncryptedData instead.
    // Kept as the raw base64 text (not decoded bytes) so that a malformed value cannot make the
    // whole object undeserialisable; it is decoded when unsealing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::legacy_data")]
    pub data: Option<String>,

    // Per-item encrypted values (standard base64 with padding, §1.2). Upstream's schema has no
    // description here.
    #[serde(default)]
    #[schemars(schema_with = "schema::encrypted_data")]
    pub encrypted_data: EncryptedData,
}

/// SecretTemplateSpec describes the structure a Secret should have when created from a template.
// Not covered by any cryptographic binding: only namespace, name and scope are (§9.2).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplateSpec {
    /// Standard object's metadata.
    // The full ObjectMeta is kept (the CRD preserves unknown fields here) and copied into the
    // produced Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::template_metadata")]
    pub metadata: Option<ObjectMeta>,

    /// Used to facilitate programmatic handling of secret data.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,

    /// Immutable, if set to true, ensures that data stored in the Secret cannot be updated (only object metadata can be modified). If not set to true, the field can be modified at any time. Defaulted to nil.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub immutable: Option<bool>,

    /// Keys that should be templated using decrypted data.
    // Go text/template, §2.5.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "schema::template_data")]
    pub data: Option<BTreeMap<String, String>>,
}

/// SealedSecretStatus is the most recently observed status of the SealedSecret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretStatus {
    /// Represents the latest available observations of a sealed secret's current state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<SealedSecretCondition>,

    /// ObservedGeneration reflects the generation most recently observed by the sealed-secrets controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// SourceDigest identifies what the produced Secret was made from (this object's uid, generation, scope and spec, the Secret's uid, and the fingerprints of the keys that opened the values), so that a restarted controller need not decrypt again. Set by sealed-secrets-rs; unknown to upstream, whose CRD prunes it.
    // Kept here rather than on the Secret, whose annotations must be exactly the template's
    // as upstream writes them (docs/design.md, "Source digest").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_digest: Option<String>,
}

/// SealedSecretCondition describes the state of a sealed secret at a certain point.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SealedSecretCondition {
    /// Type of condition for a sealed secret. Valid value: "Synced"
    #[serde(rename = "type")]
    pub type_: String,

    /// Status of the condition for a sealed secret. Valid values for "Synced": "True", "False", or "Unknown".
    pub status: String,

    /// The last time this condition was updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update_time: Option<Time>,

    /// Last time the condition transitioned from one status to another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<Time>,

    /// The reason for the condition's last transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// A human readable message indicating details about the transition.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `spec.encryptedData`: item name -> base64 ciphertext, read leniently.
///
/// Upstream issue #505: one SealedSecret whose `encryptedData` holds a non-string value used
/// to break the informer for every object. Here such values are dropped while deserialising and
/// their keys remembered in [`EncryptedData::invalid_keys`], so the object still loads and the
/// caller can report exactly what is wrong. Serialising writes only the valid items.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EncryptedData {
    items: BTreeMap<String, String>,
    invalid: BTreeSet<String>,
    not_a_map: bool,
}

impl EncryptedData {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The ciphertext (base64 text) of `item`.
    pub fn get(&self, item: &str) -> Option<&str> {
        self.items.get(item).map(String::as_str)
    }

    /// Adds or replaces an item, clearing any "invalid" mark it had.
    pub fn insert(&mut self, item: impl Into<String>, ciphertext_b64: impl Into<String>) {
        let item = item.into();
        self.invalid.remove(&item);
        self.items.insert(item, ciphertext_b64.into());
    }

    /// Removes an item, returning its ciphertext.
    pub fn remove(&mut self, item: &str) -> Option<String> {
        self.invalid.remove(item);
        self.items.remove(item)
    }

    /// Valid items in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.items.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Names of the valid items.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.items.keys().map(String::as_str)
    }

    /// Number of valid items.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there are no valid items (invalid ones are not counted).
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Keys whose value was not a string when deserialised (and were therefore dropped).
    pub fn invalid_keys(&self) -> impl Iterator<Item = &str> {
        self.invalid.iter().map(String::as_str)
    }

    /// True when `encryptedData` itself was neither a map nor null (e.g. a string or a list).
    pub fn was_not_a_map(&self) -> bool {
        self.not_a_map
    }

    /// True when anything was dropped while deserialising.
    pub fn has_invalid(&self) -> bool {
        self.not_a_map || !self.invalid.is_empty()
    }

    /// The valid items as a plain map.
    pub fn as_map(&self) -> &BTreeMap<String, String> {
        &self.items
    }
}

impl From<BTreeMap<String, String>> for EncryptedData {
    fn from(items: BTreeMap<String, String>) -> Self {
        Self {
            items,
            ..Self::default()
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for EncryptedData {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> Self {
        iter.into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect::<BTreeMap<_, _>>()
            .into()
    }
}

impl Serialize for EncryptedData {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.items.len()))?;
        for (k, v) in &self.items {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for EncryptedData {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(EncryptedDataVisitor)
    }
}

struct EncryptedDataVisitor;

impl EncryptedDataVisitor {
    fn not_a_map<E>() -> Result<EncryptedData, E> {
        Ok(EncryptedData {
            not_a_map: true,
            ..EncryptedData::default()
        })
    }
}

impl<'de> Visitor<'de> for EncryptedDataVisitor {
    type Value = EncryptedData;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of item name to base64 ciphertext")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut out = EncryptedData::default();
        while let Some(key) = access.next_key::<String>()? {
            match access.next_value::<MaybeString>()?.0 {
                Some(v) => {
                    out.invalid.remove(&key);
                    out.items.insert(key, v);
                }
                None => {
                    out.items.remove(&key);
                    out.invalid.insert(key);
                }
            }
        }
        Ok(out)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(EncryptedData::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(EncryptedData::default())
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Self::not_a_map()
    }
    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Self::not_a_map()
    }
}

/// A value that is kept if it is a string and skipped (consumed) otherwise.
struct MaybeString(Option<String>);

impl<'de> Deserialize<'de> for MaybeString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybeString;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<MaybeString, E> {
                Ok(MaybeString(Some(v)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_none<E: de::Error>(self) -> Result<MaybeString, E> {
                Ok(MaybeString(None))
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<MaybeString, D2::Error> {
                MaybeString::deserialize(d)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<MaybeString, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybeString, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(MaybeString(None))
            }
        }
        deserializer.deserialize_any(V)
    }
}

impl SealedSecret {
    /// `namespace/name` (or just `name` when there is no namespace), for messages.
    pub fn object_ref(&self) -> ObjectRef {
        ObjectRef::of(&self.metadata)
    }

    /// Items whose value is in multi-recipient version 1, which has no key commitment
    /// (`crates/crypto/FORMAT.md` §2.2); `spec.data` is named `spec.data`. Needs no key: the
    /// version is in the value's header. For `kubeseal audit`, `scan` and `reencrypt`.
    pub fn multi_v1_items(&self) -> Vec<&str> {
        let legacy = self.spec.data.iter().map(|v| ("spec.data", v.as_str()));
        self.spec
            .encrypted_data
            .iter()
            .chain(legacy)
            .filter(|(_, value)| {
                sealed_secrets_crypto::decode_base64(value)
                    .is_ok_and(|ct| sealed_secrets_crypto::is_multi_v1(&ct))
            })
            .map(|(item, _)| item)
            .collect()
    }

    /// The keys the controller last opened this object's values with, as its status records
    /// them: `None` unless the status is of the current generation, `Synced` is `True`, and
    /// `status.sourceDigest` lists the keys (`sha256:<hex>;keys=<fp>,<fp>`, written by the
    /// controller's `reconcile::decide::source_digest`; docs/design.md "Source digest"). The
    /// digest covers the generation, so a spec changed since is never answered from an older
    /// record. For `kubeseal keys list` and `keys retire`. Pure.
    pub fn recorded_keys(&self) -> Option<BTreeSet<sealed_secrets_crypto::Fingerprint>> {
        let status = self.status.as_ref()?;
        if self.metadata.generation.is_none()
            || status.observed_generation != self.metadata.generation
        {
            return None;
        }
        let synced = status
            .conditions
            .iter()
            .any(|c| c.type_ == CONDITION_SYNCED && c.status == "True");
        if !synced {
            return None;
        }
        digest_keys(status.source_digest.as_deref()?)
    }
}

/// The key fingerprints a source digest (`sha256:<hex>;keys=<fp>,<fp>`, the controller's
/// `status.sourceDigest`) lists; `None` when it lists none in that form or one does not parse.
/// The one reader of that format, for the controller's restart check and for kubeseal. Pure.
pub fn digest_keys(digest: &str) -> Option<BTreeSet<sealed_secrets_crypto::Fingerprint>> {
    let (_, keys) = digest.split_once(";keys=")?;
    keys.split(',')
        .filter(|k| !k.is_empty())
        .map(|k| k.parse().ok())
        .collect()
}

/// `namespace/name` of an object, used in error messages.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectRef {
    /// Namespace; empty for cluster-wide SealedSecrets without one.
    pub namespace: String,
    /// Name.
    pub name: String,
}

impl ObjectRef {
    /// Reads namespace and name from object metadata.
    pub fn of(meta: &ObjectMeta) -> Self {
        Self {
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            f.write_str(&self.name)
        } else {
            write!(f, "{}/{}", self.namespace, self.name)
        }
    }
}
