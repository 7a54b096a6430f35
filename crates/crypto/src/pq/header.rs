//! The age v1 header (C2SP age specification, "Header"), read and written byte-for-byte as
//! age 1.3's `internal/format` does, with tighter bounds for hostile input (`FORMAT.md` §3.5).

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

use crate::error::OpenError;

/// First line of every age v1 file; readers dispatch on it (`FORMAT.md` §0).
pub const AGE_INTRO: &[u8] = b"age-encryption.org/v1\n";
/// Largest header we read. age allows 2 MiB; ours are at most 32 recipients of ~1.6 KiB.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Most stanzas we read (age allows 1024).
pub const MAX_STANZAS: usize = 40;
/// Most arguments of one stanza line (age allows 128; ours use at most 33).
const MAX_ARGS: usize = 40;
/// A stanza body line encodes at most 48 bytes (64 base64 columns).
const BYTES_PER_LINE: usize = 48;
const COLUMNS_PER_LINE: usize = 64;
const MAC_LEN: usize = 32;

/// age's base64: standard alphabet, no padding, canonical (no stray trailing bits), the
/// `base64.RawStdEncoding.Strict()` of its Go source.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone),
);

/// One recipient stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stanza<'a> {
    pub kind: &'a str,
    pub args: Vec<&'a str>,
    pub body: Vec<u8>,
}

/// A parsed header: its stanzas, the bytes its MAC covers, the MAC, and where the payload
/// starts.
#[derive(Debug)]
pub(crate) struct Header<'a> {
    pub stanzas: Vec<Stanza<'a>>,
    /// From the intro through the `---` of the closing line: the input of the header MAC.
    pub mac_input: &'a [u8],
    pub mac: [u8; MAC_LEN],
    pub payload: &'a [u8],
}

fn malformed(what: &'static str) -> OpenError {
    OpenError::MalformedAge(what)
}

/// An argument age accepts: non-empty printable ASCII without space.
fn valid_arg(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b))
}

/// Splits a line (without its `\n`) into its prefix and arguments, like age's `splitArgs`:
/// any empty or invalid argument makes the line malformed.
fn split_args(line: &str) -> Option<(&str, Vec<&str>)> {
    let (prefix, rest) = line.split_once(' ')?;
    let mut args = Vec::new();
    for arg in rest.split(' ') {
        if !valid_arg(arg) || args.len() >= MAX_ARGS {
            return None;
        }
        args.push(arg);
    }
    Some((prefix, args))
}

/// Reads the next line, `\n` excluded, from `input[*pos..]`, all within the header bound.
fn next_line<'a>(input: &'a [u8], pos: &mut usize) -> Result<&'a str, OpenError> {
    let rest = &input[*pos..];
    // Never scan past the header bound, whatever the input's length.
    let window = &rest[..rest.len().min(MAX_HEADER_BYTES.saturating_sub(*pos))];
    let Some(end) = window.iter().position(|b| *b == b'\n') else {
        return Err(
            if window.len() < rest.len() || *pos + window.len() == MAX_HEADER_BYTES {
                malformed("header too large")
            } else {
                OpenError::TooShort
            },
        );
    };
    *pos += end + 1;
    std::str::from_utf8(&rest[..end]).map_err(|_| malformed("header is not ASCII"))
}

/// Parses the header at the start of `input` (which starts with [`AGE_INTRO`]).
pub(crate) fn parse(input: &[u8]) -> Result<Header<'_>, OpenError> {
    if !input.starts_with(AGE_INTRO) {
        return Err(malformed("unknown intro line"));
    }
    let mut pos = AGE_INTRO.len();
    let mut stanzas = Vec::new();
    loop {
        if input[pos..].starts_with(b"---") {
            let footer = pos;
            let line = next_line(input, &mut pos)?;
            let Some(("---", args)) = split_args(line) else {
                return Err(malformed("malformed closing line"));
            };
            let mac = match args.as_slice() {
                [mac] => B64.decode(mac).ok(),
                _ => None,
            };
            let mac: [u8; MAC_LEN] = mac
                .and_then(|m| m.try_into().ok())
                .ok_or(malformed("malformed header MAC"))?;
            if stanzas.is_empty() {
                return Err(malformed("no recipient stanzas"));
            }
            return Ok(Header {
                stanzas,
                mac_input: &input[..footer + 3],
                mac,
                payload: &input[pos..],
            });
        }
        if stanzas.len() == MAX_STANZAS {
            return Err(malformed("too many stanzas"));
        }
        let line = next_line(input, &mut pos)?;
        let Some(("->", args)) = split_args(line) else {
            return Err(malformed("malformed stanza line"));
        };
        let Some((kind, args)) = args.split_first() else {
            return Err(malformed("malformed stanza line"));
        };
        let mut body = Vec::new();
        loop {
            let line = next_line(input, &mut pos)?;
            if line.len() > COLUMNS_PER_LINE {
                return Err(malformed("stanza body line too long"));
            }
            let bytes = B64
                .decode(line)
                .map_err(|_| malformed("stanza body is not canonical base64"))?;
            body.extend_from_slice(&bytes);
            if bytes.len() < BYTES_PER_LINE {
                break;
            }
        }
        stanzas.push(Stanza {
            kind,
            args: args.to_vec(),
            body,
        });
    }
}

/// Appends one stanza as age's `Stanza.Marshal` writes it: the line, then the body in
/// 64-column base64 lines ending with a short (possibly empty) one.
pub(crate) fn write_stanza(out: &mut Vec<u8>, kind: &str, args: &[&str], body: &[u8]) {
    out.extend_from_slice(b"-> ");
    out.extend_from_slice(kind.as_bytes());
    for arg in args {
        out.push(b' ');
        out.extend_from_slice(arg.as_bytes());
    }
    out.push(b'\n');
    let text = B64.encode(body);
    let mut chunks = text.as_bytes().chunks(COLUMNS_PER_LINE).peekable();
    while let Some(chunk) = chunks.next() {
        out.extend_from_slice(chunk);
        out.push(b'\n');
        if chunks.peek().is_none() && chunk.len() == COLUMNS_PER_LINE {
            out.push(b'\n');
        }
    }
    if text.is_empty() {
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_with(stanzas: &str) -> Vec<u8> {
        let mut v = AGE_INTRO.to_vec();
        v.extend_from_slice(stanzas.as_bytes());
        v.extend_from_slice(b"--- ");
        v.extend_from_slice(B64.encode([0u8; 32]).as_bytes());
        v.extend_from_slice(b"\npayload");
        v
    }

    #[test]
    fn stanza_bodies_wrap_like_age() {
        for len in [0usize, 1, 47, 48, 49, 96, 100] {
            let body: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut s = Vec::new();
            write_stanza(&mut s, "t", &["a"], &body);
            let text = String::from_utf8(s.clone()).unwrap();
            let v = header_with(&text);
            let h = parse(&v).unwrap();
            assert_eq!(h.stanzas[0].body, body, "len {len}: {text:?}");
            assert_eq!(h.payload, b"payload");
            // A multiple of 48 bytes ends with an empty line, as age writes it.
            assert_eq!(text.ends_with("\n\n"), len % 48 == 0, "{text:?}");
        }
    }

    #[test]
    fn hostile_headers_are_typed_errors() {
        let cases: &[(&[u8], OpenError)] = &[
            (b"age-encryption.org/v2\n", malformed("unknown intro line")),
            (b"age-encryption.org/v1\n", OpenError::TooShort),
            (b"age-encryption.org/v1\n-> x\n", OpenError::TooShort),
            (
                b"age-encryption.org/v1\n--- AAAA\n",
                malformed("malformed header MAC"),
            ),
            (
                b"age-encryption.org/v1\n->  x\n\n--- A\n",
                malformed("malformed stanza line"),
            ),
            (
                b"age-encryption.org/v1\n-> x\nAA=\n",
                malformed("stanza body is not canonical base64"),
            ),
            (
                b"age-encryption.org/v1\n-> x\nAB\n",
                malformed("stanza body is not canonical base64"),
            ),
            (
                b"age-encryption.org/v1\n-> x\n\xff\n",
                malformed("header is not ASCII"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse(input).unwrap_err(),
                *want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let no_stanza = header_with("");
        assert_eq!(
            parse(&no_stanza).unwrap_err(),
            malformed("no recipient stanzas")
        );
        let many = "-> x\n\n".repeat(MAX_STANZAS + 1);
        assert_eq!(
            parse(&header_with(&many)).unwrap_err(),
            malformed("too many stanzas")
        );
        let mut huge = AGE_INTRO.to_vec();
        huge.extend_from_slice(b"-> ");
        huge.extend(std::iter::repeat_n(b'a', MAX_HEADER_BYTES));
        huge.push(b'\n');
        assert_eq!(parse(&huge).unwrap_err(), malformed("header too large"));
    }
}
