//! The upstream modes (§6.3): seal, `--raw`, `--merge-into`, `--recovery-unseal`,
//! `--re-encrypt`, `--validate`, `--fetch-cert`.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use sealed_secrets_api::manifest::sealed_secret_from_value;
use sealed_secrets_api::output::{self, OutputFormat};
use sealed_secrets_api::{
    ItemError, ObjectRef, SealOptions, SealedSecret, SealingError, SecretInput, UnsealError,
    UnsealOptions, merge_into, parse_sealed_secrets, parse_secrets, seal_raw, seal_secret, unseal,
};
use sealed_secrets_crypto::{Certificate, MultiV1Policy, PublicKey, Scope};

use crate::cli::{CertArgs, KubeArgs, SealArgs};
use crate::cluster::{self, Controller};
use crate::error::{CliError, Result};
use crate::io::{self, FileMode};
use crate::{certs, keyfiles, validate};

/// Dispatches the flag-selected mode, in upstream's order.
pub fn run_upstream(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if !seal.from_file.is_empty() && !seal.raw {
        return Err(CliError::FlagRequires {
            flag: "--from-file",
            needs: "--raw",
        });
    }
    if !seal.recovery_private_key.is_empty() && !seal.recovery_unseal {
        crate::printer()
            .warn("--recovery-private-key is only used with --recovery-unseal; ignoring it");
    }
    certs::note_repeated_cert(&cert.cert_values);
    // Validate -o up front so a typo fails before any work (upstream's message).
    output_format(seal, None)?;
    if cert.fetch_cert {
        let pem = certs::fetch_raw(cert, kube)?;
        return write_output(seal.sealed_secret_file.as_deref(), &pem);
    }
    if seal.validate {
        return validate_mode(seal, cert, kube);
    }
    if seal.re_encrypt {
        return re_encrypt(seal, cert, kube);
    }
    if seal.recovery_unseal {
        return recovery_unseal(seal);
    }
    if seal.raw {
        return raw(seal, cert, kube);
    }
    if let Some(target) = &seal.merge_into {
        return merge(seal, cert, kube, target);
    }
    seal_mode(seal, cert, kube)
}

/// The output format: `-w`'s `.yaml`/`.yml` extension wins (upstream), then `-o`, then
/// `fallback` (merge-into: the target's own format), then JSON.
fn output_format(seal: &SealArgs, fallback: Option<OutputFormat>) -> Result<OutputFormat> {
    let by_flag = seal
        .format
        .as_deref()
        .map(OutputFormat::from_str)
        .transpose()?;
    let by_ext = seal.sealed_secret_file.as_deref().and_then(yaml_extension);
    Ok(by_ext.or(by_flag).or(fallback).unwrap_or_default())
}

fn yaml_extension(p: &Path) -> Option<OutputFormat> {
    match p.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml") => {
            Some(OutputFormat::Yaml)
        }
        _ => None,
    }
}

/// stdout, or `-w` written atomically.
fn write_output(path: Option<&Path>, data: &[u8]) -> Result<()> {
    match path {
        Some(p) if p.as_os_str() != "-" => io::write_atomic(p, data, FileMode::Public),
        _ => io::write_stdout(data),
    }
}

fn render_all(list: &[SealedSecret], format: OutputFormat) -> Result<String> {
    let mut out = String::new();
    for ss in list {
        out.push_str(&output::sealed_secret(ss, format)?);
    }
    Ok(out)
}

fn parse_scope(s: &str) -> Result<Scope> {
    Ok(Scope::from_str(s)?)
}

fn public_keys(certs: &[Certificate]) -> Vec<&PublicKey> {
    certs.iter().map(Certificate::public_key).collect()
}

/// Default mode: seal every Secret of the input.
fn seal_mode(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let format = output_format(seal, None)?;
    let scope = parse_scope(&seal.scope)?;
    // Upstream opens the certificate before reading the input.
    let certs = certs::recipients(cert, kube)?;
    certs::announce_format(&certs);
    let input = io::read_input(seal.secret_file.as_deref())?;
    let opts = SealOptions {
        scope,
        name: seal.name.clone().filter(|n| !n.is_empty()),
        explicit_namespace: kube.namespace.clone().filter(|n| !n.is_empty()),
        default_namespace: cluster::default_namespace(kube),
        allow_empty_data: seal.allow_empty_data,
    };
    let sealed = seal_all(&input, &public_keys(&certs), &opts, cores())?;
    let text = render_all(&sealed, format)?;
    write_output(seal.sealed_secret_file.as_deref(), text.as_bytes())
}

/// The cores this process may use (1 when unknown).
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// Seals every Secret of the input, like the api crate's `seal_manifests`, on up to `threads`
/// threads. Each value costs one RSA public-key operation (about 45 µs at 4,096 bits, two
/// thirds of the CPU of sealing a large file; parsing and printing are the rest), and Secrets
/// are independent, so a multi-document file seals in about 1/cores of the time on an idle
/// machine. The threads take small runs of consecutive Secrets from a shared queue, so a thread
/// the OS holds back on a busy machine does not hold up the others. The output keeps the input
/// order, and the error returned is the one a sequential run returns: that of the first failing
/// Secret in input order.
fn seal_all(
    input: &[u8],
    recipients: &[&PublicKey],
    opts: &SealOptions,
    threads: usize,
) -> std::result::Result<Vec<SealedSecret>, SealingError> {
    let secrets = parse_secrets(input)?;
    if secrets.is_empty() {
        return Err(SealingError::NoSecrets);
    }
    let seal_run = |run: Vec<SecretInput>| -> std::result::Result<Vec<_>, SealingError> {
        run.into_iter()
            .map(|s| seal_secret(s, recipients, opts))
            .collect()
    };
    let threads = threads.clamp(1, secrets.len());
    if threads == 1 {
        return seal_run(secrets);
    }
    // About four runs per thread, at most 16 Secrets (under 50 RSA operations) each.
    let run_len = (secrets.len() / (threads * 4)).clamp(1, 16);
    let mut runs = Vec::with_capacity(secrets.len().div_ceil(run_len));
    let mut rest = secrets.into_iter();
    loop {
        let run: Vec<SecretInput> = rest.by_ref().take(run_len).collect();
        if run.is_empty() {
            break;
        }
        runs.push(run);
    }
    let queue = std::sync::Mutex::new(runs.into_iter().enumerate());
    let next = || {
        queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .next()
    };
    let mut results: Vec<_> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    while let Some((index, run)) = next() {
                        done.push((index, seal_run(run)));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| {
                w.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    results.sort_unstable_by_key(|(index, _)| *index);
    let mut sealed = Vec::new();
    for (_, result) in results {
        sealed.extend(result?);
    }
    Ok(sealed)
}

/// `--raw`: one value, bare base64, no newline.
fn raw(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if seal.from_file.len() > 1 {
        return Err(CliError::RawTakesOneFile);
    }
    let scope = parse_scope(&seal.scope)?;
    let namespace = cluster::default_namespace(kube);
    let name = seal.name.clone().unwrap_or_default();
    // Check the flags before fetching anything (same messages as seal_raw).
    if scope != Scope::ClusterWide && namespace.is_empty() {
        return Err(sealed_secrets_api::SealingError::RawNeedsNamespace.into());
    }
    if scope == Scope::Strict && name.is_empty() {
        return Err(sealed_secrets_api::SealingError::RawNeedsName.into());
    }
    let certs = certs::recipients(cert, kube)?;
    certs::announce_format(&certs);
    let value = match seal.from_file.first() {
        Some(spec) => {
            let path = spec.split_once('=').map_or(spec.as_str(), |(_, p)| p);
            io::read_file(Path::new(path))?
        }
        None => io::read_stdin()?,
    };
    let out = seal_raw(
        &value,
        &public_keys(&certs),
        scope,
        Some(&namespace),
        Some(&name),
    )?;
    write_output(seal.sealed_secret_file.as_deref(), out.as_bytes())
}

/// Reads one SealedSecret file (exactly one object).
pub fn read_one_sealed(path: &Path) -> Result<(SealedSecret, OutputFormat)> {
    let bytes = io::read_file(path)?;
    let format = detect_format(&bytes);
    let mut list = parse_sealed_secrets(&bytes).map_err(|source| CliError::Manifest {
        context: format!("cannot read SealedSecret from `{}`", path.display()),
        source,
    })?;
    match list.len() {
        1 => Ok((list.remove(0), format)),
        found => Err(CliError::NotOneSealedSecret {
            path: path.to_owned(),
            found,
        }),
    }
}

/// JSON when the first non-blank byte opens an object, else YAML.
pub fn detect_format(bytes: &[u8]) -> OutputFormat {
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') | Some(b'[') => OutputFormat::Json,
        _ => OutputFormat::Yaml,
    }
}

/// `--merge-into F`: seal stdin's Secret(s) for F's namespace/name/scope and rewrite F.
fn merge(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs, target: &Path) -> Result<()> {
    let (mut sealed, file_format) = read_one_sealed(target)?;
    let format = match &seal.format {
        Some(f) => OutputFormat::from_str(f)?,
        None => file_format,
    };
    let certs = certs::recipients(cert, kube)?;
    certs::announce_format(&certs);
    let input = io::read_input(seal.secret_file.as_deref())?;
    let secrets = parse_secrets(&input).map_err(|source| CliError::Manifest {
        context: "cannot read the Secret to merge".to_owned(),
        source,
    })?;
    if secrets.is_empty() {
        return Err(sealed_secrets_api::SealingError::NoSecrets.into());
    }
    // Nothing to merge: the target is left exactly as it is (not even re-rendered), and
    // without --allow-empty-data that is upstream's empty-data error.
    if secrets.iter().all(|s| s.data.is_empty()) {
        if !seal.allow_empty_data {
            return Err(sealed_secrets_api::SealingError::EmptyData.into());
        }
        crate::printer().note(format_args!(
            "the input Secret has no data; `{}` is left unchanged",
            target.display()
        ));
        return Ok(());
    }
    merge_into(&mut sealed, secrets, &public_keys(&certs))?;
    let text = output::sealed_secret(&sealed, format)?;
    io::write_atomic(target, text.as_bytes(), FileMode::Public)
}

/// `--recovery-unseal`: decrypt offline with the given private keys and print the Secret(s).
fn recovery_unseal(seal: &SealArgs) -> Result<()> {
    let format = output_format(seal, None)?;
    let mut ring = keyfiles::load_ring(&seal.recovery_private_key, &seal.key_backup)?;
    if seal.accept_multi_recipient_v1 {
        ring.set_multi_v1_policy(MultiV1Policy::accept(Default::default()));
    }
    let list = read_sealed_docs(seal)?;
    let mut out = String::new();
    for ss in &list {
        let secret = unseal(ss, &ring, &UnsealOptions::default())
            .map_err(|e| no_key_in_upstream_words(e, ss, ring.len()))?;
        out.push_str(&output::secret(secret.secret(), format)?);
    }
    // Plaintext Secrets: owner-only, like key backups, whatever the file's mode was.
    match seal.sealed_secret_file.as_deref() {
        Some(p) if p.as_os_str() != "-" => io::write_atomic(p, out.as_bytes(), FileMode::OwnerOnly),
        _ => io::write_stdout(out.as_bytes()),
    }
}

/// An unseal failure where no key opened anything, in upstream's words (see
/// [`CliError::NoKeyCouldDecrypt`]); every other failure is kept as it is.
fn no_key_in_upstream_words(e: UnsealError, ss: &SealedSecret, keys: usize) -> CliError {
    if !e.is_no_key() {
        return e.into();
    }
    let items = match &e {
        UnsealError::Items { errors, .. } => errors
            .iter()
            .filter_map(|i| match i {
                ItemError::Decrypt { item, .. } => Some(item.clone()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    CliError::NoKeyCouldDecrypt {
        object: ObjectRef::of(&ss.metadata).to_string(),
        items,
        keys,
    }
}

/// The SealedSecrets of the input (`-f` or stdin); none is an error.
fn read_sealed_docs(seal: &SealArgs) -> Result<Vec<SealedSecret>> {
    let input = io::read_input(seal.secret_file.as_deref())?;
    let list = parse_sealed_secrets(&input).map_err(|source| CliError::Manifest {
        context: "cannot read the SealedSecret input".to_owned(),
        source,
    })?;
    if list.is_empty() {
        return Err(CliError::NoSealedSecret);
    }
    Ok(list)
}

/// `--validate`: through the controller's `/v1/verify`, or offline with `--cert` (ours).
fn validate_mode(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    if cert.given() {
        let certs = certs::load_all(
            cert.cert(),
            &cert.recipient_cert,
            certs::HttpPolicy::from_flag(cert.allow_insecure_cert_url),
        )?;
        let list = read_sealed_docs(seal)?;
        return validate::offline(&list, &certs, seal.accept_multi_recipient_v1);
    }
    let list = read_sealed_docs(seal)?;
    crate::runtime::block_on(cluster::bounded(
        kube,
        "cannot validate sealed secret",
        async {
            let controller =
                Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
                    .await?;
            for ss in &list {
                let body = output::to_json(ss).into_bytes();
                let resp = controller
                    .call(http::Method::POST, "/v1/verify", body)
                    .await?;
                match resp.status.as_u16() {
                    200..=299 => {}
                    409 => {
                        return Err(CliError::NotDecryptable {
                            name: ss.metadata.name.clone().unwrap_or_default(),
                        });
                    }
                    _ => {
                        return Err(CliError::ControllerStatus {
                            action: "cannot validate sealed secret",
                            reason: cluster::reason_of(&resp.body),
                            status: resp.status.as_u16(),
                        });
                    }
                }
            }
            Ok(())
        },
    ))?
}

/// `--re-encrypt`: one `/v1/rotate` call per document. With only `-f`, the input file is
/// rewritten (upstream #405).
fn re_encrypt(seal: &SealArgs, cert: &CertArgs, kube: &KubeArgs) -> Result<()> {
    let list = read_sealed_docs(seal)?;
    let out_path: Option<PathBuf> = seal
        .sealed_secret_file
        .clone()
        .or_else(|| seal.secret_file.clone().filter(|p| p.as_os_str() != "-"));
    let fallback = seal
        .secret_file
        .as_deref()
        .filter(|_| seal.sealed_secret_file.is_none())
        .and_then(yaml_extension);
    let format = output_format(seal, fallback)?;
    let rotated =
        crate::runtime::block_on(cluster::bounded(kube, "cannot re-encrypt secret", async {
            let controller =
                Controller::connect(kube, &cert.controller_namespace, &cert.controller_name)
                    .await?;
            let mut out = Vec::new();
            for ss in &list {
                let body = output::to_json(ss).into_bytes();
                let resp = controller
                    .call(http::Method::POST, "/v1/rotate", body)
                    .await?;
                match resp.status.as_u16() {
                    200..=299 => out.push(parse_rotated(&resp.body)?),
                    409 => return Err(CliError::RotateRefused),
                    _ => {
                        return Err(CliError::ControllerStatus {
                            action: "cannot re-encrypt secret",
                            reason: cluster::reason_of(&resp.body),
                            status: resp.status.as_u16(),
                        });
                    }
                }
            }
            Ok(out)
        }))??;
    let text = render_all(&rotated, format)?;
    write_output(out_path.as_deref(), text.as_bytes())
}

/// The rotate answer has no apiVersion/kind (upstream quirk): add them, then clear the
/// server fields upstream clears.
fn parse_rotated(body: &[u8]) -> Result<SealedSecret> {
    let mut value: serde_json::Value =
        serde_json::from_slice(body).map_err(CliError::ControllerAnswer)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("apiVersion")
            .or_insert_with(|| sealed_secrets_api::API_VERSION.into());
        obj.entry("kind")
            .or_insert_with(|| sealed_secrets_api::KIND.into());
    }
    let mut ss = sealed_secret_from_value(1, value).map_err(|source| CliError::Manifest {
        context: "cannot re-encrypt secret: invalid answer from the controller".to_owned(),
        source,
    })?;
    ss.metadata.creation_timestamp = None;
    ss.metadata.deletion_timestamp = None;
    ss.metadata.generation = None;
    ss.status = None;
    Ok(ss)
}

#[cfg(test)]
mod tests {
    use sealed_secrets_crypto::{KeyRing, PrivateKey};

    use super::*;

    fn cert() -> Certificate {
        Certificate::from_pem(include_bytes!(
            "../../tests/fixtures/upstream-vectors/cert-a.pem"
        ))
        .unwrap()
    }

    /// `n` Secrets `s0`..: Secret `i` lives in `namespaces(i)` and holds `v=value-i`.
    fn input(n: usize, namespace: impl Fn(usize) -> &'static str) -> String {
        (0..n)
            .map(|i| {
                format!(
                    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\n  namespace: {}\n\
                     stringData:\n  v: value-{i}\n",
                    namespace(i)
                )
            })
            .collect::<Vec<_>>()
            .join("---\n")
    }

    #[test]
    fn parallel_sealing_keeps_input_order_and_every_value() {
        let cert = cert();
        let mut ring = KeyRing::new();
        ring.insert(
            PrivateKey::from_pem(include_bytes!(
                "../../tests/fixtures/upstream-vectors/key-a.pem"
            ))
            .unwrap(),
        );
        let opts = SealOptions::default();
        for threads in [1, 3, 64] {
            let sealed = seal_all(
                input(7, |_| "team").as_bytes(),
                &[cert.public_key()],
                &opts,
                threads,
            )
            .unwrap();
            let names: Vec<_> = sealed
                .iter()
                .map(|s| s.metadata.name.clone().unwrap())
                .collect();
            assert_eq!(
                names,
                ["s0", "s1", "s2", "s3", "s4", "s5", "s6"],
                "{threads} threads"
            );
            for (i, ss) in sealed.iter().enumerate() {
                let secret = unseal(ss, &ring, &UnsealOptions::default()).unwrap();
                let data = secret.secret().data.clone().unwrap();
                assert_eq!(
                    data["v"].0,
                    format!("value-{i}").into_bytes(),
                    "{threads} threads"
                );
            }
        }
    }

    #[test]
    fn parallel_sealing_reports_the_first_failing_secret_in_input_order() {
        // 6 Secrets on 3 threads: one Secret per run; Secrets 3 and 4 contradict --namespace
        // and may fail in either order. A sequential run stops at Secret 3.
        let cert = cert();
        let opts = SealOptions {
            explicit_namespace: Some("team".to_owned()),
            ..SealOptions::default()
        };
        let text = input(6, |i| match i {
            3 => "first-wrong",
            4 => "second-wrong",
            _ => "team",
        });
        for threads in [1, 3] {
            let err = seal_all(text.as_bytes(), &[cert.public_key()], &opts, threads).unwrap_err();
            assert!(
                matches!(&err, SealingError::NamespaceMismatch { secret, .. } if secret == "first-wrong"),
                "{threads} threads: {err:?}"
            );
        }
    }

    #[test]
    fn empty_input_is_an_error_whatever_the_threads() {
        let err = seal_all(b"", &[cert().public_key()], &SealOptions::default(), 4).unwrap_err();
        assert!(matches!(err, SealingError::NoSecrets), "{err:?}");
    }
}
