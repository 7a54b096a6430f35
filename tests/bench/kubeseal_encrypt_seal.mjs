// The @linode/kubeseal-encrypt side of tests/bench/cli.sh: seals every Secret of a JSON array
// (the same Secrets as the YAML file the others read) with the package's API, in one Node
// process, and writes one SealedSecret JSON document per line.
//
// The package is a library only (no CLI, no YAML parser, zero dependencies): it encrypts one
// value per call, `encryptSecretItem(publicKeyPEM, namespace, value)`, with the namespace as
// the label, i.e. the namespace-wide scope. The driver extracts the public key from the
// certificate once, issues every call of the run at once (Promise.all: WebCrypto runs them on
// libuv's thread pool, so the peer may use every core) and builds the SealedSecrets around the
// values. Kept in the peer's favour: JSON input (JSON.parse) instead of YAML.
//
// Usage: node kubeseal_encrypt_seal.mjs MODULE_DIR CERT.pem INPUT.json OUTPUT.json
import { X509Certificate } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [moduleDir, certPath, inputPath, outputPath] = process.argv.slice(2);
if (!outputPath) {
  console.error("usage: node kubeseal_encrypt_seal.mjs MODULE_DIR CERT.pem INPUT.json OUTPUT.json");
  process.exit(2);
}
const require = createRequire(join(resolve(moduleDir), "package.json"));
const { encryptSecretItem } = require("@linode/kubeseal-encrypt");

const publicKeyPEM = new X509Certificate(readFileSync(certPath))
  .publicKey.export({ type: "spki", format: "pem" });
const secrets = JSON.parse(readFileSync(inputPath, "utf8"));

const sealed = await Promise.all(
  secrets.map(async (secret) => {
    const { name, namespace } = secret.metadata;
    const entries = await Promise.all(
      Object.entries(secret.data).map(async ([key, b64]) => [
        key,
        await encryptSecretItem(
          publicKeyPEM,
          namespace,
          Buffer.from(b64, "base64").toString("utf8"),
        ),
      ]),
    );
    return {
      apiVersion: "bitnami.com/v1alpha1",
      kind: "SealedSecret",
      metadata: {
        name,
        namespace,
        annotations: { "sealedsecrets.bitnami.com/namespace-wide": "true" },
      },
      spec: {
        encryptedData: Object.fromEntries(entries),
        template: { metadata: { name, namespace }, type: secret.type ?? "Opaque" },
      },
    };
  }),
);
writeFileSync(outputPath, sealed.map((s) => JSON.stringify(s)).join("\n") + "\n");
