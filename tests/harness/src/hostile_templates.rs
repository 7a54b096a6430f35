//! What the hostile-template tests of every suite share: the template attacks and the process
//! figures they are judged by, defined once so that the controller e2e, the chaos suite and the
//! CLI tests attack with the same input.

use std::collections::BTreeMap;

/// Characters the line-number oracle probes for, one template line each.
pub const ORACLE_ALPHABET: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&()*+,-./:;<=>?@";

/// The line-number attack on `.pw`: item `tI` has one line per character of `alphabet` and
/// calls `fail` on the line of the character at position I, so an error that names the item
/// and the line spells the value out. Ten items.
pub fn oracle_templates(alphabet: &str) -> BTreeMap<String, String> {
    (0..10)
        .map(|i| {
            let lines: Vec<String> = alphabet
                .chars()
                .map(|c| {
                    format!(
                        r#"{{{{ if eq (substr {i} {} .pw) "{c}" }}}}{{{{ fail "x" }}}}{{{{ end }}}}"#,
                        i + 1
                    )
                })
                .collect();
            (format!("t{i}"), lines.join("\n"))
        })
        .collect()
}

/// The one message a failed render after decryption may give for SealedSecret `ns/name`
/// (docs/security.md, "Template failures are one bit").
pub fn render_failure_message(ns: &str, name: &str) -> String {
    format!(
        "failed to render spec.template.data of SealedSecret `{ns}/{name}` (the reason is not \
         reported: it could reveal the decrypted values)"
    )
}

/// Peak resident set (`VmHWM`) of process `pid`, in bytes; `None` once it has exited.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_has_ten_items_of_one_line_per_character() {
        let t = oracle_templates("ab");
        assert_eq!(t.len(), 10);
        assert_eq!(
            t["t3"],
            "{{ if eq (substr 3 4 .pw) \"a\" }}{{ fail \"x\" }}{{ end }}\n\
             {{ if eq (substr 3 4 .pw) \"b\" }}{{ fail \"x\" }}{{ end }}"
        );
    }

    #[test]
    fn peak_rss_of_this_process_is_positive() {
        assert!(peak_rss(std::process::id()).unwrap() > 0);
    }
}
