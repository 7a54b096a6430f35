//! The CRD, generated from the types (never hand-kept). `crds/sealedsecrets.bitnami.com.yaml`
//! holds its YAML; a test regenerates it and fails on drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps,
};
use kube::CustomResourceExt;

use crate::error::OutputError;
use crate::types::SealedSecret;

/// The `sealedsecrets.bitnami.com` CRD, schema-equivalent to upstream's Helm CRD (§2.1-2.3).
///
/// kube-derive's output is adjusted where it differs from upstream's controller-gen CRD:
/// Rust `Option`s are not `nullable` there (only template metadata/data are), serde defaults
/// are not schema defaults, `encryptedData` is required, and `listKind` is explicit.
pub fn crd() -> CustomResourceDefinition {
    let mut crd = SealedSecret::crd();
    crd.spec.names.list_kind = Some("SealedSecretList".to_owned());
    for version in &mut crd.spec.versions {
        if let Some(schema) = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
        {
            schema.title = None;
            strip_nullable_and_defaults(schema);
            if let Some(spec) = schema.properties.as_mut().and_then(|p| p.get_mut("spec")) {
                spec.required = Some(vec!["encryptedData".to_owned()]);
                if let Some(template) = spec.properties.as_mut().and_then(|p| p.get_mut("template"))
                {
                    for key in ["metadata", "data"] {
                        if let Some(p) = template.properties.as_mut().and_then(|p| p.get_mut(key)) {
                            p.nullable = Some(true);
                        }
                    }
                }
            }
        }
    }
    crd
}

fn strip_nullable_and_defaults(schema: &mut JSONSchemaProps) {
    schema.nullable = None;
    schema.default = None;
    for child in schema.properties.iter_mut().flat_map(|p| p.values_mut()) {
        strip_nullable_and_defaults(child);
    }
    if let Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSONSchemaPropsOrArray::Schema(items)) =
        schema.items.as_mut()
    {
        strip_nullable_and_defaults(items);
    }
}

/// [`crd()`] as YAML (a `---` line first, keys sorted as kubectl would print them).
pub fn crd_yaml() -> Result<String, OutputError> {
    let value = serde_json::to_value(crd()).map_err(OutputError::Json)?;
    crate::output::value_to_yaml(&value)
}
