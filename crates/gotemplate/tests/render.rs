//! The template language as SealedSecret templates use it, its errors, and its render budget
//!.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers outside #[test] fns: a panic is the failure report"
)]

use std::collections::BTreeMap;

use std::time::{Duration, Instant};

use proptest::prelude::*;
use sealed_secrets_gotemplate::{
    Exhausted, Limits, Renderer, Template, check, render, render_with,
};

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

/// Renders a template that must be stopped by the render budget: it fails with a budget
/// error, quickly, instead of exhausting memory or time.
fn bomb(t: &str) -> Exhausted {
    let start = Instant::now();
    let e = render(t, &data()).expect_err(t);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "{t}: took {took:?}");
    e.exhausted()
        .unwrap_or_else(|| panic!("{t}: not a budget error: {e}"))
}

// One test per template bomb, so each can be run alone to measure its peak memory
// (`/usr/bin/time -v target/debug/deps/render-* bomb_cat_doubling --exact`).

#[test]
fn bomb_cat_doubling() {
    let t = r#"{{$x := repeat 1048576 "a"}}{{range 24}}{{$x = cat $x $x}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
}

#[test]
fn bomb_printf_doubling() {
    let t = r#"{{$x := repeat 1048576 "a"}}{{range 24}}{{$x = printf "%s%s" $x $x}}{{end}}"#;
    // Refused before formatting: the result would exceed 1 MiB, the largest Secret value.
    assert_eq!(bomb(t), Exhausted::Output);
    let t = r#"{{$x := repeat 1000 "a"}}{{range 24}}{{$x = printf "%s%s" $x $x}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Output);
    let t = r#"{{$x := repeat 1000 "a"}}{{range 10000}}{{$y := printf "%s%s" $x $x}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
}

#[test]
fn bomb_append_growth() {
    // Each append copies the list: quadratic bytes.
    let t = r#"{{$l := list}}{{range 1000000}}{{$l = append $l "xxxxxxxxxxxxxxxx"}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
    // A list holding itself twice doubles per iteration.
    let t = r#"{{$l := list "a"}}{{range 64}}{{$l = append $l $l}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
}

#[test]
fn bomb_list_growth() {
    let t = r#"{{$l := list "a"}}{{range 64}}{{$l = list $l $l}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
    let t = r#"{{$l := until 100000}}{{range 64}}{{$l = concat $l $l}}{{end}}"#;
    assert_eq!(bomb(t), Exhausted::Bytes);
}

#[test]
fn bomb_uniq_is_not_quadratic() {
    // sprig's uniq is quadratic: 100,000 distinct elements took minutes. Now linear.
    let start = Instant::now();
    assert_eq!(r("{{ until 100000 | uniq | len }}"), "100000");
    assert_eq!(
        r(r#"{{ list 1 1 "1" 2.0 2.0 -0.0 0.0 (list 1) (list 1) | uniq | len }}"#),
        "5"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn bomb_string_functions_are_checked_before_allocating() {
    for t in [
        // replace multiplies a 1 MiB string by eight.
        r#"{{$x := repeat 1048575 "a"}}{{ replace "a" "aaaaaaaa" $x }}"#,
        // an empty pattern matches everywhere.
        r#"{{$x := repeat 1048575 "a"}}{{ replace "" "aaaaaaaa" $x }}"#,
        // indent pads every line.
        r#"{{$x := repeat 1000000 "\n"}}{{ indent 1024 $x }}"#,
        // printf widths are not bounded by the inputs.
        r#"{{ range 1000 }}{{ $x := printf "%65536s%65536s%65536s%65536s%65536s" "" "" "" "" "" }}{{ end }}"#,
        // join repeats its separator.
        r#"{{$s := repeat 1000000 "s"}}{{ join $s (until 100000) }}"#,
        // splitting a string into one-character list elements.
        r#"{{$x := repeat 1000000 "a"}}{{ range 20 }}{{ $l := splitList "" $x }}{{ end }}"#,
    ] {
        assert!(
            matches!(bomb(t), Exhausted::Bytes | Exhausted::Output),
            "{t}"
        );
    }
}

#[test]
fn bomb_steps_and_deadline() {
    // The step limit alone, without the clock: 2,000,000 steps of a debug build on a busy
    // machine can take longer than the 1 s deadline, which would then fire first.
    let no_clock = Limits {
        max_time: Duration::from_secs(3600),
        ..Limits::DEFAULT
    };
    for t in [
        "{{ range 100000000 }}{{ end }}",
        "{{ range 1000 }}{{ range 1000 }}{{ range 1000 }}{{ end }}{{ end }}{{ end }}",
    ] {
        let e = render_with(t, &data(), &no_clock).unwrap_err();
        assert_eq!(e.exhausted(), Some(Exhausted::Steps), "{t}");
    }
    let slow = Limits {
        max_steps: u64::MAX,
        max_time: Duration::from_millis(50),
        ..Limits::DEFAULT
    };
    let e = render_with("{{ range 100000000 }}{{ end }}", &data(), &slow).unwrap_err();
    assert_eq!(e.exhausted(), Some(Exhausted::Time));
}

#[test]
fn budget_leaves_real_templates_alone() {
    // Reading one field of a large dot copies that field only, not the whole dot.
    let big: BTreeMap<String, String> = (0..64)
        .map(|i| (format!("k{i}"), "v".repeat(16 << 10)))
        .collect();
    let t = r#"{{ range 2000 }}{{ $x := $.k1 }}{{ $y := index $ "k2" | len }}{{ end }}ok"#;
    // `index $` copies the dot (1 MiB) each time: that is charged, and 2000 copies are not
    // affordable...
    assert_eq!(
        render(t, &big).unwrap_err().exhausted(),
        Some(Exhausted::Bytes)
    );
    // ...but field reads are.
    let t = r#"{{ range 200 }}{{ $x := $.k1 }}{{ $y := len .k2 }}{{ end }}ok"#;
    assert_eq!(render(&t.replace(".k2", "$.k2"), &big).unwrap(), "ok");
    // `{"k0":"vv..",...}`: each entry is its key and value plus five quotes and colon.
    let json_len: usize = big
        .iter()
        .map(|(k, v)| k.len() + v.len() + 5)
        .sum::<usize>()
        + 63
        + 2;
    assert_eq!(
        render(r#"{{ toJson . | len }}"#, &big).unwrap(),
        json_len.to_string()
    );
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

/// All renders of one [`Renderer`] share one budget (the budget of one object): two hundred
/// templates each writing the 1 MiB one value may hold are stopped at the second, and every
/// later render fails at once, without work.
#[test]
fn renders_of_one_renderer_share_one_output_budget() {
    let bomb = Template::parse(r#"{{ repeat 1048576 "a" }}"#).unwrap();
    let mut r = Renderer::new(&data(), &Limits::DEFAULT);
    assert_eq!(r.render(&bomb).unwrap().len(), 1 << 20);
    let e = r.render(&bomb).unwrap_err();
    assert_eq!(e.exhausted(), Some(Exhausted::Output));
    // Exhausted for good: even a template that writes nothing fails now, in no time.
    let small = Template::parse("x").unwrap();
    let start = Instant::now();
    for _ in 0..198 {
        assert_eq!(
            r.render(&small).unwrap_err().exhausted(),
            Some(Exhausted::Output)
        );
    }
    assert!(start.elapsed() < Duration::from_millis(100));

    // The total counts every byte written, text included: three pieces of 1 MiB less one
    // byte fit, two more bytes do not.
    let third = Template::parse(&"b".repeat(349_525)).unwrap();
    let mut r = Renderer::new(&data(), &Limits::DEFAULT);
    for _ in 0..3 {
        r.render(&third).unwrap();
    }
    assert_eq!(
        r.render(&Template::parse("{{ 12 }}").unwrap())
            .unwrap_err()
            .exhausted(),
        Some(Exhausted::Output)
    );
}

/// Steps and bytes produced are shared too: templates each well under the limits fail once
/// their sum is over.
#[test]
fn renders_of_one_renderer_share_steps_and_bytes() {
    let limits = Limits {
        max_steps: 10_000,
        ..Limits::DEFAULT
    };
    let loop_ = Template::parse("{{ range 4000 }}{{ end }}").unwrap();
    let mut r = Renderer::new(&data(), &limits);
    r.render(&loop_).unwrap();
    r.render(&loop_).unwrap();
    assert_eq!(
        r.render(&loop_).unwrap_err().exhausted(),
        Some(Exhausted::Steps)
    );

    let limits = Limits {
        max_bytes: 5 << 20,
        ..Limits::DEFAULT
    };
    // Produces 2 MiB (the string and its copy in `$x`) and writes nothing.
    let burn = Template::parse(r#"{{ $x := repeat 1048576 "a" }}"#).unwrap();
    let mut r = Renderer::new(&data(), &limits);
    r.render(&burn).unwrap();
    r.render(&burn).unwrap();
    assert_eq!(
        r.render(&burn).unwrap_err().exhausted(),
        Some(Exhausted::Bytes)
    );
}

/// The `Debug` of a renderer never shows the values it renders with.
#[test]
fn renderer_debug_hides_values() {
    let r = Renderer::new(&data(), &Limits::DEFAULT);
    let shown = format!("{r:?}");
    assert!(!shown.contains("admin"), "{shown}");
}
