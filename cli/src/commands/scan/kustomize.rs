//! kustomize `secretGenerator` entries that carry values.

use std::path::Path;

use serde_json::Value;

use super::finding::Finding;

/// `kustomization.yaml`, `kustomization.yml` or `Kustomization`.
pub(super) fn is_kustomization(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
        matches!(
            n,
            "kustomization.yaml" | "kustomization.yml" | "Kustomization"
        )
    })
}

/// kustomize `secretGenerator` entries that put values into the repository: `literals`, or
/// `envs`/`env`/`files` naming files beside it (kustomize reads them at build time).
pub(super) fn secret_generators(path: &Path, text: &str) -> Vec<Finding> {
    let Ok(docs) = sealed_secrets_api::manifest::parse_documents(text.as_bytes()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for doc in docs {
        let Some(gens) = doc.get("secretGenerator").and_then(Value::as_array) else {
            continue;
        };
        for g in gens {
            let non_empty = |k: &str| match g.get(k) {
                Some(Value::Array(a)) => !a.is_empty(),
                Some(Value::String(s)) => !s.is_empty(),
                _ => false,
            };
            let sources: Vec<&str> = ["literals", "envs", "env", "files"]
                .into_iter()
                .filter(|k| non_empty(k))
                .collect();
            if sources.is_empty() {
                continue;
            }
            let name = g.get("name").and_then(Value::as_str).unwrap_or("");
            let name_line = text.lines().position(|l| {
                let t = l.trim_start().trim_start_matches("- ").trim();
                t.strip_prefix("name:")
                    .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
            });
            let line = name_line
                .or_else(|| text.lines().position(|l| l.starts_with("secretGenerator")))
                .unwrap_or(0)
                + 1;
            out.push(Finding {
                path: path.to_owned(),
                line,
                object: format!("{name} ({})", sources.join(", ")),
                what: "kustomize secretGenerator with values",
            });
        }
    }
    out
}
