//! The CRD, generated from the types (never hand-kept). `crds/sealedsecrets.bitnami.com.yaml`
//! holds its YAML; a test regenerates it and fails on drift.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::error::OutputError;
use crate::types::SealedSecret;

/// The `sealedsecrets.bitnami.com` CRD, schema-equivalent to upstream's Helm CRD (§2.1-2.3).
pub fn crd() -> CustomResourceDefinition {
    SealedSecret::crd()
}

/// [`crd()`] as YAML (a `---` line first, keys sorted as kubectl would print them).
pub fn crd_yaml() -> Result<String, OutputError> {
    let value = serde_json::to_value(crd()).map_err(OutputError::Json)?;
    crate::output::value_to_yaml(&value)
}
