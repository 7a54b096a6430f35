//! Lexer of the Go `text/template` subset: splits the source into text and actions, applies
//! `{{-`/`-}}` trimming and comments, and turns each action into tokens.

use crate::TemplateError;
use crate::budget::MAX_DEPTH;
use crate::error::err;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Str(String),
    Int(i64),
    Float(f64),
    Char(i64),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
    Space,
}

/// A piece of the source: text, or the tokens of one action and the line it starts on.
pub(crate) enum Piece {
    Text(String),
    Action { line: usize, toks: Vec<Tok> },
}

/// Splits the source into text and action token lists, applying trim markers and dropping
/// comments.
pub(crate) fn split(src: &str) -> Result<Vec<Piece>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = src;
    let mut line = 1;
    let mut trim_next_text = false;
    loop {
        let Some(open) = rest.find("{{") else {
            let mut text = rest;
            if trim_next_text {
                text = text.trim_start();
            }
            if !text.is_empty() {
                pieces.push(Piece::Text(text.to_owned()));
            }
            return Ok(pieces);
        };
        let mut text = &rest[..open];
        let after_open = &rest[open + 2..];
        let trim_left = after_open.starts_with("- ")
            || after_open.starts_with("-\t")
            || after_open.starts_with("-\n")
            || after_open.starts_with("-\r");
        if trim_next_text {
            text = text.trim_start();
        }
        if trim_left {
            text = text.trim_end();
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.to_owned()));
        }
        line += rest[..open].matches('\n').count();
        let body_start = if trim_left { 2 } else { 0 };
        let body_src = &after_open[body_start..];
        let action_line = line;
        // Comments: {{/* ... */}} possibly with trim markers.
        let trimmed = body_src.trim_start();
        if trimmed.starts_with("/*") {
            let Some(end) = trimmed.find("*/") else {
                return Err(err(action_line, "unclosed comment"));
            };
            let after = trimmed[end + 2..].trim_start_matches([' ', '\t', '\r', '\n']);
            let (trim_right, after) = if let Some(a) = after.strip_prefix("-}}") {
                (true, a)
            } else if let Some(a) = after.strip_prefix("}}") {
                (false, a)
            } else {
                return Err(err(action_line, "comment ends before closing delimiter"));
            };
            let consumed = rest.len() - after.len();
            line += rest[open..consumed].matches('\n').count();
            rest = after;
            trim_next_text = trim_right;
            continue;
        }
        let (toks, consumed_in_body, trim_right) = lex_action(body_src, action_line)?;
        let consumed = open + 2 + body_start + consumed_in_body;
        line += rest[open..consumed].matches('\n').count();
        rest = &rest[consumed..];
        trim_next_text = trim_right;
        pieces.push(Piece::Action {
            line: action_line,
            toks,
        });
    }
}

/// Lexes one action body up to and including `}}`; returns tokens, bytes consumed and whether
/// it ended with ` -}}`.
fn lex_action(src: &str, line: usize) -> Result<(Vec<Tok>, usize, bool), TemplateError> {
    let bytes = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    let mut parens = 0usize;
    while i < bytes.len() {
        let c = bytes[i];
        // End of action.
        if c == b'}' && bytes.get(i + 1) == Some(&b'}') {
            return Ok((toks, i + 2, false));
        }
        if (c == b' ' || c == b'\t' || c == b'\r' || c == b'\n')
            && src[i..].trim_start().starts_with("-}}")
        {
            let ws = src[i..].len() - src[i..].trim_start().len();
            return Ok((toks, i + ws + 3, true));
        }
        match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
                if toks.last() != Some(&Tok::Space) {
                    toks.push(Tok::Space);
                }
                continue;
            }
            b'|' => toks.push(Tok::Pipe),
            b'(' => {
                parens += 1;
                if parens > MAX_DEPTH {
                    return Err(err(line, "parentheses nested too deeply"));
                }
                toks.push(Tok::LParen)
            }
            b')' => {
                parens = parens.saturating_sub(1);
                toks.push(Tok::RParen)
            }
            b',' => toks.push(Tok::Comma),
            b':' if bytes.get(i + 1) == Some(&b'=') => {
                toks.push(Tok::Declare);
                i += 1;
            }
            b'=' => toks.push(Tok::Assign),
            b'"' => {
                let (s, n) = lex_quoted(&src[i..], line)?;
                toks.push(Tok::Str(s));
                i += n;
                continue;
            }
            b'`' => {
                let Some(end) = src[i + 1..].find('`') else {
                    return Err(err(line, "unterminated raw quoted string"));
                };
                toks.push(Tok::Str(src[i + 1..i + 1 + end].to_owned()));
                i += end + 2;
                continue;
            }
            b'\'' => {
                let (s, n) = lex_quoted(&src[i..], line)?;
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(ch), None) => toks.push(Tok::Char(ch as i64)),
                    _ => return Err(err(line, "malformed character constant")),
                }
                i += n;
                continue;
            }
            b'.' => {
                let start = i + 1;
                let mut j = start;
                while j < bytes.len() && is_ident_byte(bytes[j]) {
                    j += 1;
                }
                if j == start {
                    if bytes.get(j).is_some_and(u8::is_ascii_digit) {
                        // .5 style number
                        let (tok, n) = lex_number(&src[i..], line)?;
                        toks.push(tok);
                        i += n;
                        continue;
                    }
                    toks.push(Tok::Dot);
                } else {
                    toks.push(Tok::Field(src[start..j].to_owned()));
                }
                i = j;
                continue;
            }
            b'$' => {
                let mut j = i + 1;
                while j < bytes.len() && is_ident_byte(bytes[j]) {
                    j += 1;
                }
                toks.push(Tok::Var(src[i..j].to_owned()));
                i = j;
                continue;
            }
            b'0'..=b'9' | b'-' | b'+' => {
                let (tok, n) = lex_number(&src[i..], line)?;
                toks.push(tok);
                i += n;
                continue;
            }
            c if is_ident_byte(c) => {
                let mut j = i;
                while j < bytes.len() && is_ident_byte(bytes[j]) {
                    j += 1;
                }
                toks.push(Tok::Ident(src[i..j].to_owned()));
                i = j;
                continue;
            }
            _ => {
                let ch = src[i..].chars().next().unwrap_or('?');
                return Err(err(line, format!("unexpected {ch:?} in command")));
            }
        }
        i += 1;
    }
    Err(err(line, "unclosed action"))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

fn lex_number(src: &str, line: usize) -> Result<(Tok, usize), TemplateError> {
    let bytes = src.as_bytes();
    let mut j = 0;
    if matches!(bytes.first(), Some(b'-') | Some(b'+')) {
        j += 1;
    }
    while j < bytes.len()
        && (bytes[j].is_ascii_alphanumeric()
            || bytes[j] == b'.'
            || bytes[j] == b'_'
            || ((bytes[j] == b'-' || bytes[j] == b'+')
                && matches!(bytes[j - 1], b'e' | b'E')
                && !src[..j].contains("0x")))
    {
        j += 1;
    }
    let text: String = src[..j].chars().filter(|&c| c != '_').collect();
    let (neg, digits) = match text.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    let parsed_int = if let Some(h) = digits.strip_prefix("0x").or(digits.strip_prefix("0X")) {
        i64::from_str_radix(h, 16).ok()
    } else if let Some(o) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        i64::from_str_radix(o, 8).ok()
    } else if let Some(b) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        i64::from_str_radix(b, 2).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&digits[1..], 8).ok()
    } else {
        digits.parse::<i64>().ok()
    };
    if let Some(v) = parsed_int {
        return Ok((Tok::Int(if neg { -v } else { v }), j));
    }
    match digits.parse::<f64>() {
        Ok(f) if !digits.is_empty() && f.is_finite() => {
            Ok((Tok::Float(if neg { -f } else { f }), j))
        }
        _ => Err(err(line, format!("bad number syntax: {:?}", &src[..j]))),
    }
}

/// Lexes a Go interpreted string or char literal starting at the quote; returns the value and
/// the bytes consumed.
fn lex_quoted(src: &str, line: usize) -> Result<(String, usize), TemplateError> {
    let mut chars = src.char_indices();
    let Some((_, quote)) = chars.next() else {
        return Err(err(line, "unterminated quoted string"));
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c == quote => return Ok((out, i + 1)),
            '\n' => break,
            '\\' => {
                let Some((_, e)) = chars.next() else { break };
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'a' => out.push('\u{7}'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'v' => out.push('\u{b}'),
                    '\\' => out.push('\\'),
                    '"' => out.push('"'),
                    '\'' => out.push('\''),
                    'x' | 'u' | 'U' => {
                        let n = match e {
                            'x' => 2,
                            'u' => 4,
                            _ => 8,
                        };
                        let mut code = 0u32;
                        for _ in 0..n {
                            let d = chars
                                .next()
                                .and_then(|(_, h)| h.to_digit(16))
                                .ok_or_else(|| err(line, "invalid escape in string"))?;
                            code = code * 16 + d;
                        }
                        out.push(
                            char::from_u32(code)
                                .ok_or_else(|| err(line, "invalid escape in string"))?,
                        );
                    }
                    _ => return Err(err(line, "invalid escape in string")),
                }
            }
            c => out.push(c),
        }
    }
    Err(err(line, "unterminated quoted string"))
}
