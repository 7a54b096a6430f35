//! Golden cases of the kubeseal binary, one file each in `tests/cmd/` (as rage does): the
//! arguments, stdin and exit status in `NAME.toml`, the expected output in `NAME.stdout` and
//! `NAME.stderr`. They run in the shared fixtures directory (`--cert cert-a.pem`), with an
//! empty environment but for the few variables set below, so nothing from the caller's
//! `SEALED_SECRETS_*` or kubeconfig leaks in. `TRYCMD=overwrite cargo test -p kubeseal --test
//! cmd` rewrites the expected files after an intended change (review the diff).

#[test]
fn cli_cases() {
    trycmd::TestCases::new()
        .register_bin("kubeseal", trycmd::cargo::cargo_bin!("kubeseal"))
        .env("NO_COLOR", "1")
        .env("COLUMNS", "100")
        .env("HOME", "/nonexistent")
        .env("KUBECONFIG", "/nonexistent/kubeconfig")
        .case("tests/cmd/*.toml");
}
