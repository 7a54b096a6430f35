//! Hand-written schema fragments where upstream's CRD (§2.2) differs from what schemars would
//! derive: preserve-unknown-fields, `nullable`, and `format: byte`.

use schemars::{Schema, SchemaGenerator, json_schema};

/// `spec.encryptedData`: string map that preserves unknown fields (upstream #505 workaround).
pub(crate) fn encrypted_data(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": { "type": "string" },
        "x-kubernetes-preserve-unknown-fields": true
    })
}

/// Deprecated `spec.data`: one base64 blob.
pub(crate) fn legacy_data(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Data is deprecated and will be removed eventually. Use per-value EncryptedData instead.",
        "type": "string",
        "format": "byte"
    })
}

/// `spec.template.metadata`: the embedded-ObjectMeta subset controller-gen emits.
pub(crate) fn template_metadata(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Standard object's metadata.",
        "type": "object",
        "nullable": true,
        "x-kubernetes-preserve-unknown-fields": true,
        "properties": {
            "annotations": { "type": "object", "additionalProperties": { "type": "string" } },
            "finalizers": { "type": "array", "items": { "type": "string" } },
            "labels": { "type": "object", "additionalProperties": { "type": "string" } },
            "name": { "type": "string" },
            "namespace": { "type": "string" }
        }
    })
}

/// `spec.template.data`: nullable string map of Go templates.
pub(crate) fn template_data(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "description": "Keys that should be templated using decrypted data.",
        "type": "object",
        "nullable": true,
        "additionalProperties": { "type": "string" }
    })
}
