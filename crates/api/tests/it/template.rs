use std::collections::BTreeMap;

use proptest::prelude::*;
use sealed_secrets_api::template::{check, render};

fn data() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("user".to_owned(), "admin".to_owned()),
        ("password".to_owned(), "p\"a<s>s&".to_owned()),
        ("multi".to_owned(), "line1\nline2".to_owned()),
        ("empty".to_owned(), String::new()),
        ("n".to_owned(), "3".to_owned()),
    ])
}

fn r(t: &str) -> String {
    render(t, &data()).unwrap_or_else(|e| panic!("{t}: {e}"))
}

#[test]
fn fields_index_and_text() {
    assert_eq!(r("plain text"), "plain text");
    assert_eq!(r("{{ .user }}"), "admin");
    assert_eq!(r(r#"{{ index . "user" }}"#), "admin");
    assert_eq!(r(r#"{{ index . "missing" }}"#), "");
    assert_eq!(r("{{ .missing }}"), "<no value>");
    assert_eq!(r("{{.user}}:{{.n}}"), "admin:3");
    assert_eq!(r("{{ $.user }}"), "admin");
}

#[test]
fn trimming_and_comments() {
    assert_eq!(r("a  {{- .user -}}  b"), "aadminb");
    assert_eq!(r("a {{/* comment */}} b"), "a  b");
    assert_eq!(r("a {{- /* comment */ -}} b"), "ab");
    assert_eq!(r("x\n{{- if true }}\ny{{ end }}"), "x\ny");
}

#[test]
fn pipelines_and_functions() {
    assert_eq!(r("{{ .user | upper }}"), "ADMIN");
    assert_eq!(r("{{ .user | b64enc }}"), "YWRtaW4=");
    assert_eq!(r("{{ .user | b64enc | b64dec }}"), "admin");
    assert_eq!(r("{{ toJson .password }}"), r#""p\"a\u003cs\u003es\u0026""#);
    assert_eq!(r("{{ .password | toRawJson }}"), r#""p\"a<s>s&""#);
    assert_eq!(r("{{ .user | quote }}"), "\"admin\"");
    assert_eq!(r("{{ .user | squote }}"), "'admin'");
    assert_eq!(r("{{ .empty | default \"fallback\" }}"), "fallback");
    assert_eq!(r("{{ .user | default \"fallback\" }}"), "admin");
    assert_eq!(r(r#"{{ printf "%s:%s@%d" .user "x" 5 }}"#), "admin:x@5");
    assert_eq!(
        r(r#"{{ printf "%05.1f|%-4s|%x|%q|%v" 3.14159 "ab" 255 "q" true }}"#),
        "003.1|ab  |ff|\"q\"|true"
    );
    assert_eq!(r(r#"{{ replace "a" "b" "banana" }}"#), "bbnbnb");
    assert_eq!(r(r#"{{ "  x  " | trim }}"#), "x");
    assert_eq!(r(r#"{{ .multi | indent 2 }}"#), "  line1\n  line2");
    assert_eq!(r(r#"{{ .multi | nindent 2 }}"#), "\n  line1\n  line2");
    assert_eq!(r(r#"{{ list "a" "b" .user | join "," }}"#), "a,b,admin");
    assert_eq!(r(r#"{{ .user | toString | lower }}"#), "admin");
    assert_eq!(r(r#"{{ splitList "," "a,b" | last }}"#), "b");
    assert_eq!(r(r#"{{ (split "," "a,b")._1 }}"#), "b");
    assert_eq!(r(r#"{{ .n | int | add 2 }}"#), "5");
    assert_eq!(
        r(r#"{{ sha256sum "abc" }}"#),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(r(r#"{{ dict "a" .user | toJson }}"#), r#"{"a":"admin"}"#);
    assert_eq!(
        r(r#"{{ trunc 3 .user }}|{{ substr 1 3 .user }}|{{ repeat 2 "ab" }}"#),
        "adm|dm|abab"
    );
    assert_eq!(r(r#"{{ title "hello world" }}"#), "Hello World");
    assert_eq!(r(r#"{{ len .user }}"#), "5");
    assert_eq!(r(r#"{{ ternary "y" "n" (eq .user "admin") }}"#), "y");
    assert_eq!(r(r#"{{ coalesce .empty .user }}"#), "admin");
    assert_eq!(
        r(r#"{{ html "<a>" }} {{ urlquery "a b&c" }} {{ js "it's" }}"#),
        "&lt;a&gt; a+b%26c it\\'s"
    );
    assert_eq!(r(r#"{{ slice .user 1 3 }}"#), "dm");
}

#[test]
fn control_flow_and_variables() {
    assert_eq!(
        r(r#"{{ if eq .user "admin" }}yes{{ else }}no{{ end }}"#),
        "yes"
    );
    assert_eq!(
        r(r#"{{ if .empty }}a{{ else if .user }}b{{ else }}c{{ end }}"#),
        "b"
    );
    assert_eq!(r(r#"{{ with .user }}{{ . }}!{{ end }}"#), "admin!");
    assert_eq!(r(r#"{{ with .empty }}x{{ else }}none{{ end }}"#), "none");
    assert_eq!(
        r(r#"{{ $u := .user }}{{ $u }}-{{ $u = "x" }}{{ $u }}"#),
        "admin-x"
    );
    assert_eq!(
        r(r#"{{ range $i, $v := list "a" "b" }}{{ $i }}={{ $v }};{{ end }}"#),
        "0=a;1=b;"
    );
    assert_eq!(
        r(r#"{{ range $k, $v := . }}{{ if eq $k "user" }}{{ $v }}{{ end }}{{ end }}"#),
        "admin"
    );
    assert_eq!(r(r#"{{ range list }}x{{ else }}empty{{ end }}"#), "empty");
    assert_eq!(
        r(
            r#"{{ range 5 }}{{ if eq . 3 }}{{ break }}{{ end }}{{ if eq . 1 }}{{ continue }}{{ end }}{{ . }}{{ end }}"#
        ),
        "02"
    );
    assert_eq!(
        r(r#"{{ and .user .empty }}|{{ or .empty .user }}|{{ not .empty }}"#),
        "|admin|true"
    );
    assert_eq!(
        r(r#"{{ if and (eq .user "admin") (ne .n "4") }}ok{{ end }}"#),
        "ok"
    );
}

#[test]
fn errors_are_reported_not_panics() {
    for t in [
        "{{ env \"HOME\" }}",
        "{{ expandenv \"$HOME\" }}",
        "{{ getHostByName \"x\" }}",
        "{{ .user ",
        "{{ if .user }}",
        "{{ end }}",
        "{{ else }}",
        "{{ $undefined }}",
        "{{ fail \"x\" }}",
        "{{ div 1 0 }}",
        "{{ index .user 99 }}",
        "{{ .user.field }}",
        "{{ define \"x\" }}{{ end }}",
        "{{ template \"x\" }}",
        "{{ \"unterminated }}",
        "{{ break }}",
        "{{ .user | }}",
        "{{ ( }}",
        "{{ repeat 100000000 \"x\" }}",
        "{{ range 100000000 }}x{{ end }}",
        "{{/* unclosed",
    ] {
        assert!(render(t, &data()).is_err(), "{t} should fail");
    }
    assert!(check("{{ .a }}").is_ok());
    assert!(
        check("{{ nosuchfunc }}")
            .unwrap_err()
            .to_string()
            .contains("function \"nosuchfunc\" not defined")
    );
}

#[test]
fn deep_nesting_is_refused_not_overflowing() {
    let deep = "{{ if true }}".repeat(10_000) + &"{{ end }}".repeat(10_000);
    assert!(render(&deep, &data()).is_err());
    let parens = format!("{{{{ {}1{} }}}}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(render(&parens, &data()).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn render_never_panics(t in "(\\{\\{-? |\\}\\}| -\\}\\}|\\.user|\\$x|:= |\\| |if |else |end|range |with |\\(|\\)|\"s\"|1|upper|printf \"%d%s\" |index \\. |[a-z ]){0,40}") {
        let _ = render(&t, &data());
    }

    #[test]
    fn render_never_panics_on_arbitrary_text(t in any::<String>()) {
        let _ = render(&t, &data());
    }
}
