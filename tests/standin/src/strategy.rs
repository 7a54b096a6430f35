//! What kube-apiserver's registry strategies do per kind: the namespace checks of a create, and the type-specific normalisation
//! (Secret `stringData` and base64, Namespace phase, Service `clusterIP`, CRD conditions and
//! the resource a CRD defines).

use base64::Engine as _;
use serde_json::{Value, json};

use super::error::ApiError;
use super::resources::{self, ResourceType};
use super::store::{CRDS, NAMESPACES, Store, is_terminating, key, now_rfc3339, str_of};

impl Store {
    pub(super) fn check_namespace(&self, rt: &ResourceType, ns: &str) -> Result<(), ApiError> {
        if !rt.namespaced {
            return Ok(());
        }
        match self
            .objects
            .get(&key(NAMESPACES))
            .and_then(|m| m.get(&(String::new(), ns.to_owned())))
        {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_terminating(&n.value) => Err(ApiError::new(
                403,
                "Forbidden",
                format!(
                    "{} is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                    rt.plural
                ),
            )),
            Some(_) => Ok(()),
        }
    }

    /// Type-specific normalisation done by kube-apiserver's registry strategies.
    pub(super) fn normalize(
        &mut self,
        rt: &ResourceType,
        obj: &mut Value,
        creating: bool,
    ) -> Result<(), ApiError> {
        let name = str_of(obj, &["metadata", "name"])
            .unwrap_or_default()
            .to_owned();
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "secrets") => {
                let Some(o) = obj.as_object_mut() else {
                    return Ok(());
                };
                if let Some(Value::Object(sd)) = o.remove("stringData") {
                    let data = o.entry("data").or_insert_with(|| json!({}));
                    if !data.is_object() {
                        *data = json!({});
                    }
                    for (k, v) in sd {
                        let s = v.as_str().unwrap_or_default();
                        data[k.as_str()] =
                            json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                for (k, v) in o
                    .get("data")
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                {
                    let ok = v.as_str().is_some_and(|s| {
                        base64::engine::general_purpose::STANDARD.decode(s).is_ok()
                    });
                    if !ok {
                        return Err(ApiError::bad_request(format!(
                            "Secret in version \"v1\" cannot be handled as a Secret: illegal base64 data in data[{k:?}]"
                        )));
                    }
                }
                // SetDefaults_Secret: an empty type (protobuf bodies always carry one) is
                // Opaque.
                if o.get("type")
                    .and_then(Value::as_str)
                    .is_none_or(str::is_empty)
                {
                    o.insert("type".into(), json!("Opaque"));
                }
            }
            ("", "namespaces") if !is_terminating(obj) => {
                obj["status"] = json!({"phase": "Active"});
            }
            ("", "services") if creating => {
                self.service_ip += 1;
                let spec = &mut obj["spec"];
                if !spec.is_object() {
                    *spec = json!({});
                }
                if spec["type"].is_null() {
                    spec["type"] = json!("ClusterIP");
                }
                if spec["clusterIP"].is_null() {
                    let n = self.service_ip;
                    spec["clusterIP"] = json!(format!("10.96.{}.{}", (n >> 8) & 0xff, n & 0xff));
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let t = resources::from_crd(obj)?;
                let clash = self
                    .types
                    .get(&t.key())
                    .is_some_and(|existing| !existing.custom);
                if clash {
                    return Err(ApiError::invalid(
                        "CustomResourceDefinition",
                        &name,
                        "spec.names.plural: resource is served by a built-in API",
                    ));
                }
                let now = now_rfc3339();
                obj["status"] = json!({
                    "acceptedNames": obj["spec"]["names"].clone(),
                    "storedVersions": [t.storage_version()],
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts",
                         "message": "no conflicts found", "lastTransitionTime": now},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted",
                         "message": "the initial names have been accepted", "lastTransitionTime": now},
                    ],
                });
            }
            _ => {}
        }
        Ok(())
    }

    pub(super) fn after_write(&mut self, rt: &ResourceType, obj: &Value) {
        if rt.key() == key(CRDS)
            && let Ok(t) = resources::from_crd(obj)
        {
            self.objects.entry(t.key()).or_default();
            self.types.insert(t.key(), t);
        }
    }
}
