//! Object metadata decoded without `metadata.managedFields`, which nothing in the controller
//! reads. serde would build each field manager's `fieldsV1` into a tree of JSON maps, several
//! times the size of the rest of the metadata; skipped as an unknown field, it is never built.
//! The Secret watch lists in pages of 2,000 that kube decodes whole, so at a restart these
//! trees were most of what a page held (docs/design.md, "Restarts").

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;

/// `ObjectMeta` without `managedFields` (an unknown field, skipped unparsed).
#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct MetaWithoutManagedFields {
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

impl From<MetaWithoutManagedFields> for ObjectMeta {
    fn from(m: MetaWithoutManagedFields) -> Self {
        ObjectMeta {
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            managed_fields: None,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            self_link: m.self_link,
            uid: m.uid,
        }
    }
}

/// The metadata of a `K`, as kube's `PartialObjectMeta<K>` (an `Api` of it lists and watches
/// metadata only), but decoded without `managedFields`.
pub struct LeanMeta<K> {
    pub metadata: ObjectMeta,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for LeanMeta<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for LeanMeta<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeanMeta")
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<K> From<ObjectMeta> for LeanMeta<K> {
    fn from(metadata: ObjectMeta) -> Self {
        Self {
            metadata,
            kind: PhantomData,
        }
    }
}

impl<'de, K> serde::Deserialize<'de> for LeanMeta<K> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// `apiVersion` and `kind` (`PartialObjectMetadata`) are skipped too.
        #[derive(serde::Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: MetaWithoutManagedFields,
        }
        let wire = Wire::deserialize(d)?;
        Ok(ObjectMeta::from(wire.metadata).into())
    }
}

impl<K: Resource> Resource for LeanMeta<K> {
    type DynamicType = K::DynamicType;
    type Scope = K::Scope;

    fn metadata_api() -> bool {
        true
    }

    fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::kind(dt)
    }

    fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::group(dt)
    }

    fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::version(dt)
    }

    fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
        K::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// Metadata with every field set, as the API server serves it (a fixture of this module's
/// tests and the start-up check's).
#[cfg(test)]
pub(super) fn full_metadata_json() -> serde_json::Value {
    serde_json::json!({
        "annotations": {"sealedsecrets.bitnami.com/managed": "true"},
        "creationTimestamp": "2026-12-07T06:14:05Z",
        "deletionGracePeriodSeconds": 30,
        "deletionTimestamp": "2026-12-07T07:14:05Z",
        "finalizers": ["example.com/keep"],
        "generateName": "s-",
        "generation": 3,
        "labels": {"app.kubernetes.io/instance": "web"},
        "managedFields": [{"apiVersion": "v1", "fieldsType": "FieldsV1",
            "fieldsV1": {"f:data": {".": {}, "f:a": {}}, "f:metadata": {"f:ownerReferences": {}}},
            "manager": "sealed-secrets-controller", "operation": "Update",
            "time": "2026-12-07T06:14:05Z"}],
        "name": "s-1",
        "namespace": "team",
        "ownerReferences": [{"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret",
            "name": "s-1", "uid": "u-1", "controller": true}],
        "resourceVersion": "42",
        "selfLink": "/api/v1/namespaces/team/secrets/s-1",
        "uid": "0b0c7d9e-2f0a-4a53-9d4f-5b6f1f4b9f10"
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Secret;
    use kube::core::PartialObjectMeta;

    use super::*;

    /// A Secret's metadata as a metadata-only list or watch serves it.
    fn partial_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadata",
            "metadata": super::full_metadata_json()
        })
    }

    #[test]
    fn lean_metadata_is_kubes_partial_metadata_but_its_managed_fields() {
        let json = partial_json();
        let mut whole: PartialObjectMeta<Secret> = serde_json::from_value(json.clone()).unwrap();
        let lean: LeanMeta<Secret> = serde_json::from_value(json).unwrap();
        assert!(whole.metadata.managed_fields.take().is_some());
        assert_eq!(lean.metadata, whole.metadata);
    }

    #[test]
    fn an_object_without_metadata_decodes_empty() {
        let lean: LeanMeta<Secret> =
            serde_json::from_str(r#"{"kind":"PartialObjectMetadata"}"#).unwrap();
        assert_eq!(lean.metadata, ObjectMeta::default());
    }

    #[test]
    fn an_api_of_it_asks_for_metadata_of_the_same_resource() {
        assert!(LeanMeta::<Secret>::metadata_api());
        assert_eq!(
            LeanMeta::<Secret>::url_path(&(), Some("team")),
            PartialObjectMeta::<Secret>::url_path(&(), Some("team"))
        );
        assert_eq!(LeanMeta::<Secret>::kind(&()), "Secret");
        assert_eq!(LeanMeta::<Secret>::api_version(&()), "v1");
    }
}
