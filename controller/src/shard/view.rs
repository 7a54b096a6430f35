//! What the sharder reads of a SealedSecret (docs/design.md "Shards"): name, namespace,
//! resourceVersion and the shard and drain labels, nothing else.
//!
//! The sharder sees every object of the ring, in a list page or a watch event, and a label
//! patch answers with the object's metadata too. Decoded as kube's `PartialObjectMeta`, each
//! carries its managedFields (a tree of maps per field manager, several times its JSON size
//! once decoded), annotations and labels: at 3,000 SealedSecrets that made the leader's heap
//! peak three times a member's (heaptrack). [`Placement`] skips all of it while decoding, so
//! the sharder's memory no longer grows with what tenants put in their objects' metadata.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use sealed_secrets_api::SealedSecret;
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The prefixes of the label keys the sharder reads, of any ring: [`super::shard_label`] and
/// [`super::drain_label`] without the ring's name.
const KEPT_LABEL_PREFIXES: [&str; 2] = [
    "shard.alpha.sharding.timebertt.dev/",
    "drain.alpha.sharding.timebertt.dev/",
];

/// A SealedSecret as the sharder needs it: `metadata` holds only name, namespace,
/// resourceVersion and the shard and drain labels. Read through the metadata API
/// ([`Resource::metadata_api`]): lists, watches and patches of an `Api<Placement>` ask for
/// `PartialObjectMetadata`, so no spec reaches the sharder either.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    pub metadata: ObjectMeta,
}

impl Resource for Placement {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        SealedSecret::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        SealedSecret::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        SealedSecret::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        SealedSecret::plural(dt)
    }

    fn metadata_api() -> bool {
        true
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<'de> Deserialize<'de> for Placement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Unknown fields (kind, apiVersion; in the metadata managedFields, annotations,
        // uid, ...) are skipped by serde's derive without being built.
        #[derive(Deserialize)]
        struct Object {
            #[serde(default)]
            metadata: Meta,
        }
        #[derive(Default, Deserialize)]
        #[serde(rename_all = "camelCase", default)]
        struct Meta {
            name: Option<String>,
            namespace: Option<String>,
            resource_version: Option<String>,
            #[serde(deserialize_with = "kept_labels")]
            labels: Option<BTreeMap<String, String>>,
        }
        let Object { metadata: m } = Object::deserialize(d)?;
        Ok(Self {
            metadata: ObjectMeta {
                name: m.name,
                namespace: m.namespace,
                resource_version: m.resource_version,
                labels: m.labels,
                ..ObjectMeta::default()
            },
        })
    }
}

/// The shard and drain labels of a label map (`None` when it has neither); the values of
/// the other labels are skipped unread.
fn kept_labels<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Labels;
    impl<'de> Visitor<'de> for Labels {
        type Value = Option<BTreeMap<String, String>>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of labels or null")
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if KEPT_LABEL_PREFIXES.iter().any(|p| key.starts_with(p)) {
                    kept.insert(key, map.next_value::<String>()?);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok((!kept.is_empty()).then_some(kept))
        }
    }
    d.deserialize_option(Labels)
}

#[cfg(test)]
mod tests {
    use kube::core::{ObjectList, WatchEvent};

    use super::*;
    use crate::shard::{drain_label, shard_label};

    /// A SealedSecret's metadata as the API server sends it, with what tenants and field
    /// managers add.
    fn metadata_json(labels: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "kind": "PartialObjectMetadata",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": {
                "name": "db",
                "namespace": "prod",
                "uid": "0b9d4c3e-2f2a-4b8e-9c61-1d2e3f4a5b6c",
                "resourceVersion": "4711",
                "generation": 3,
                "creationTimestamp": "2026-12-07T06:00:00Z",
                "labels": labels,
                "annotations": { "note": "x".repeat(10_000) },
                "managedFields": [{
                    "manager": "kubectl",
                    "operation": "Update",
                    "apiVersion": "bitnami.com/v1alpha1",
                    "fieldsType": "FieldsV1",
                    "fieldsV1": { "f:spec": { "f:encryptedData": { "f:a": {}, "f:b": {} } } }
                }]
            }
        })
    }

    #[test]
    fn keeps_only_what_the_sharder_reads() {
        let (shard, drain) = (shard_label("r"), drain_label("r"));
        let json = metadata_json(serde_json::json!({
            "app.kubernetes.io/instance": "db",
            "team": "payments",
            shard.clone(): "member-a",
            drain.clone(): "true",
            shard_label("other-ring"): "member-b",
        }));
        let p: Placement = serde_json::from_value(json).unwrap();
        let m = &p.metadata;
        assert_eq!(m.name.as_deref(), Some("db"));
        assert_eq!(m.namespace.as_deref(), Some("prod"));
        assert_eq!(m.resource_version.as_deref(), Some("4711"));
        // No managedFields, annotations, uid or other labels are kept.
        assert_eq!(
            *m,
            ObjectMeta {
                name: m.name.clone(),
                namespace: m.namespace.clone(),
                resource_version: m.resource_version.clone(),
                labels: m.labels.clone(),
                ..ObjectMeta::default()
            }
        );
        let labels = m.labels.as_ref().unwrap();
        assert_eq!(labels.len(), 3, "{labels:?}");
        assert_eq!(labels.get(&shard).map(String::as_str), Some("member-a"));
        assert_eq!(labels.get(&drain).map(String::as_str), Some("true"));
    }

    #[test]
    fn objects_without_ring_labels_have_none() {
        for labels in [
            serde_json::json!({ "team": "payments" }),
            serde_json::json!(null),
            serde_json::json!({}),
        ] {
            let p: Placement = serde_json::from_value(metadata_json(labels)).unwrap();
            assert_eq!(p.metadata.labels, None);
            assert_eq!(p.metadata.name.as_deref(), Some("db"));
        }
        // No labels field at all.
        let mut json = metadata_json(serde_json::json!(null));
        json["metadata"].as_object_mut().unwrap().remove("labels");
        let p: Placement = serde_json::from_value(json).unwrap();
        assert_eq!(p.metadata.labels, None);
    }

    #[test]
    fn decodes_list_pages_and_watch_events() {
        let item = metadata_json(serde_json::json!({ shard_label("r"): "a" }));
        let page = serde_json::json!({
            "kind": "PartialObjectMetadataList",
            "apiVersion": "meta.k8s.io/v1",
            "metadata": { "resourceVersion": "9", "continue": "next" },
            "items": [item.clone(), item.clone()],
        });
        let list: ObjectList<Placement> = serde_json::from_value(page).unwrap();
        assert_eq!(list.items.len(), 2);
        assert_eq!(list.metadata.continue_.as_deref(), Some("next"));
        let event: WatchEvent<Placement> =
            serde_json::from_value(serde_json::json!({ "type": "ADDED", "object": item })).unwrap();
        let WatchEvent::Added(p) = event else {
            panic!("not an ADDED event: {event:?}")
        };
        assert_eq!(p.metadata.resource_version.as_deref(), Some("4711"));
        // The metadata API is asked for: no spec is sent.
        assert!(Placement::metadata_api());
        assert_eq!(Placement::plural(&()), SealedSecret::plural(&()));
    }
}
