//! Go's `encoding/json` output, for sprig's `toJson` family and for kubeseal's JSON output
//! (`sealed_secrets_api::output`): serde_json with Go's HTML-safe string escaping and Go's
//! two-space indentation. A leaf: it knows nothing of templates.

use std::io;

use serde::Serialize;
use serde_json::Value;
use serde_json::ser::{Formatter, PrettyFormatter};

/// Compact JSON like Go's `json.Marshal` (sprig `toJson`); `html_safe: false` is sprig's
/// `toRawJson` (no `\u003c`-style escaping).
pub fn to_json_compact(value: &Value, html_safe: bool) -> String {
    let mut buf = Vec::new();
    let result = if html_safe {
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, GoCompact);
        value.serialize(&mut ser)
    } else {
        value.serialize(&mut serde_json::Serializer::new(&mut buf))
    };
    match result {
        // serde_json writes valid UTF-8.
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Indented JSON like Go's `json.MarshalIndent(v, "", "  ")` (sprig `toPrettyJson`), without
/// a trailing newline.
pub fn to_json_pretty(value: &Value) -> String {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, GoFormatter::default());
    match value.serialize(&mut ser) {
        Ok(()) => String::from_utf8(buf).unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Compact formatter with Go's HTML-safe escaping.
#[derive(Debug, Clone, Copy, Default)]
pub struct GoCompact;

impl Formatter for GoCompact {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_go_fragment(writer, fragment)
    }
}

/// Writes a string fragment escaping `<`, `>`, `&`, U+2028 and U+2029 as Go does.
pub fn write_go_fragment<W: ?Sized + io::Write>(writer: &mut W, fragment: &str) -> io::Result<()> {
    let mut start = 0;
    for (i, c) in fragment.char_indices() {
        let esc = match c {
            '<' => "\\u003c",
            '>' => "\\u003e",
            '&' => "\\u0026",
            '\u{2028}' => "\\u2028",
            '\u{2029}' => "\\u2029",
            _ => continue,
        };
        writer.write_all(&fragment.as_bytes()[start..i])?;
        writer.write_all(esc.as_bytes())?;
        start = i + c.len_utf8();
    }
    writer.write_all(&fragment.as_bytes()[start..])
}

/// Pretty printer (two spaces) with Go's `encoding/json` HTML-safe escaping.
#[derive(Debug, Default)]
pub struct GoFormatter(PrettyFormatter<'static>);

impl Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        write_go_fragment(writer, fragment)
    }
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_and_indentation() {
        let v = serde_json::json!({"a": "<&>\u{2028}", "b": [1, 2]});
        assert_eq!(
            to_json_compact(&v, true),
            r#"{"a":"\u003c\u0026\u003e\u2028","b":[1,2]}"#
        );
        assert_eq!(
            to_json_compact(&v, false),
            "{\"a\":\"<&>\u{2028}\",\"b\":[1,2]}"
        );
        assert_eq!(
            to_json_pretty(&v),
            "{\n  \"a\": \"\\u003c\\u0026\\u003e\\u2028\",\n  \"b\": [\n    1,\n    2\n  ]\n}"
        );
    }
}
