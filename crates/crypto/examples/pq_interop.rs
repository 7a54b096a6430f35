//! Test-only driver of the post-quantum format for `tests/age/interop.sh`, which checks it
//! against implementations nobody here wrote (the age CLI, Go's crypto/hpke, pyca/cryptography).
//!
//! - `pq_interop seal DIR`: generates two identities and seals values in every scope (one
//!   multi-recipient) into DIR: `identity-{1,2}.txt` (age's identity file), `seed-{1,2}.hex`,
//!   `recipient-{1,2}.txt`, and per value `NAME.age`, `NAME.plain`, `NAME.label`.
//! - `pq_interop open IDENTITY_FILE LABEL VALUE_FILE`: opens a value under LABEL with our key
//!   ring; writes the plaintext to stdout.
//! - `pq_interop seal-to SEED_HEX LABEL OUT`: seals stdin for the identity with that seed
//!   (fixtures and fuzz seeds).
//! - `pq_interop bench [N]`: seal/open per value, post-quantum against RSA-4096 OAEP, and the
//!   ciphertext sizes (run it with `--release`).

use std::path::Path;
use std::time::Instant;

use sealed_secrets_crypto::{KeyRing, PqIdentity, PrivateKey, Scope, seal, seal_pq};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    std::fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn seal_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let ids = [PqIdentity::generate()?, PqIdentity::generate()?];
    for (i, id) in ids.iter().enumerate() {
        let n = i + 1;
        let file = format!(
            "# created: by crates/crypto/examples/pq_interop.rs\n# public key: {}\n{}\n",
            id.recipient(),
            id.to_age_string().as_str()
        );
        write(dir, &format!("identity-{n}.txt"), file.as_bytes())?;
        write(dir, &format!("seed-{n}.hex"), hex(id.seed()).as_bytes())?;
        write(
            dir,
            &format!("recipient-{n}.txt"),
            id.recipient().to_string().as_bytes(),
        )?;
    }
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let values: [(&str, &[u8]); 4] = [
        ("empty", b""),
        ("short", b"s3cr3t-p4ssw0rd"),
        ("binary", &[0, 1, 2, 255, 254, 10, 13]),
        ("multichunk", &big),
    ];
    for scope in Scope::ALL {
        let label = scope.label("team-a", "db-creds");
        for (name, plaintext) in values {
            let sealed = seal_pq(&[ids[0].recipient()], &label, plaintext)?;
            let base = format!("{scope}-{name}");
            write(dir, &format!("{base}.age"), &sealed)?;
            write(dir, &format!("{base}.plain"), plaintext)?;
            write(dir, &format!("{base}.label"), &label)?;
        }
    }
    // Sealed for two clusters: each identity opens it.
    let label = Scope::Strict.label("team-a", "multi");
    let sealed = seal_pq(
        &[ids[1].recipient(), ids[0].recipient()],
        &label,
        b"two clusters",
    )?;
    write(dir, "multi.age", &sealed)?;
    write(dir, "multi.plain", b"two clusters")?;
    write(dir, "multi.label", &label)?;
    Ok(())
}

fn open(identity_file: &Path, label: &str, value: &Path) -> Result<()> {
    let text = std::fs::read_to_string(identity_file)?;
    let mut ring = KeyRing::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("AGE-SECRET-KEY-PQ-1"))
    {
        ring.insert_pq(line.parse::<PqIdentity>()?);
    }
    let opened = ring.open(label.as_bytes(), &std::fs::read(value)?, &[])?;
    use std::io::Write as _;
    std::io::stdout().write_all(opened.plaintext.as_bytes())?;
    Ok(())
}

fn seal_to(seed_hex: &str, label: &str, out: &Path) -> Result<()> {
    let seed = (0..seed_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(seed_hex.get(i..i + 2).unwrap_or("xx"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()?;
    let id = PqIdentity::from_seed(&seed)?;
    let mut plaintext = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut plaintext)?;
    std::fs::write(
        out,
        seal_pq(&[id.recipient()], label.as_bytes(), &plaintext)?,
    )?;
    Ok(())
}

fn per_op(start: Instant, n: u32) -> f64 {
    start.elapsed().as_secs_f64() * 1e6 / f64::from(n)
}

fn bench(n: u32) -> Result<()> {
    let label = Scope::Strict.label("team-a", "db-creds");
    let plaintext = b"s3cr3t-p4ssw0rd";
    let id = PqIdentity::generate()?;
    let mut pq_ring = KeyRing::new();
    pq_ring.insert_pq(id.clone());
    let rsa = PrivateKey::generate(4096)?;
    let mut rsa_ring = KeyRing::new();
    rsa_ring.insert(rsa.clone());

    let start = Instant::now();
    let mut pq_value = Vec::new();
    for _ in 0..n {
        pq_value = seal_pq(&[id.recipient()], &label, plaintext)?;
    }
    let pq_seal = per_op(start, n);
    let start = Instant::now();
    for _ in 0..n {
        pq_ring.open(&label, &pq_value, &[])?;
    }
    let pq_open = per_op(start, n);

    let start = Instant::now();
    let mut rsa_value = Vec::new();
    for _ in 0..n {
        rsa_value = seal(rsa.public_key(), &label, plaintext)?;
    }
    let rsa_seal = per_op(start, n);
    let start = Instant::now();
    for _ in 0..n {
        rsa_ring.open(&label, &rsa_value, &[])?;
    }
    let rsa_open = per_op(start, n);

    println!("per value of {} bytes, {n} runs each", plaintext.len());
    println!("format          seal µs   open µs   ciphertext bytes");
    println!(
        "post-quantum   {pq_seal:8.1}  {pq_open:8.1}   {}",
        pq_value.len()
    );
    println!(
        "RSA-4096 OAEP  {rsa_seal:8.1}  {rsa_open:8.1}   {}",
        rsa_value.len()
    );
    println!(
        "ratio pq/rsa   {:8.2}  {:8.3}   {:.2}",
        pq_seal / rsa_seal,
        pq_open / rsa_open,
        pq_value.len() as f64 / rsa_value.len() as f64
    );
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["seal", dir] => seal_dir(Path::new(dir)),
        ["open", id, label, value] => open(Path::new(id), label, Path::new(value)),
        ["seal-to", seed, label, out] => seal_to(seed, label, Path::new(out)),
        ["bench"] => bench(200),
        ["bench", n] => bench(n.parse()?),
        _ => Err("usage: pq_interop seal DIR | open IDENTITY_FILE LABEL VALUE | seal-to SEED_HEX LABEL OUT | bench [N]".into()),
    }
}
