//! Lexer and parser for the Go `text/template` subset: text, actions with pipelines,
//! variables, `if`/`else if`/`else`/`range`/`with`/`end`, `break`/`continue`, comments and
//! `{{-`/`-}}` trimming. `define`/`template`/`block` are refused (one template per key).

use crate::{ErrorKind, TemplateError};

/// Deepest nesting of blocks and parentheses accepted, so hostile input cannot overflow the
/// stack of the recursive parser or evaluator.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Text(String),
    Action {
        line: usize,
        pipe: Pipeline,
    },
    If {
        line: usize,
        pipe: Pipeline,
        then: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        line: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        line: usize,
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Break,
    Continue,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pipeline {
    /// Variables declared (`$x :=`) or assigned (`$x =`).
    pub decls: Vec<String>,
    pub assign: bool,
    pub cmds: Vec<Command>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Command {
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg {
    Dot,
    Field(Vec<String>),
    Variable(String, Vec<String>),
    /// `and`/`or`, evaluated lazily by the evaluator.
    Ident(String),
    /// A function: its name and its index in the function table.
    Func(String, usize),
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    Nil,
    Pipe(Box<Pipeline>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
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

/// Splits the source into text and action token lists, applying trim markers.
enum Piece {
    Text(String),
    Action { line: usize, toks: Vec<Tok> },
}

/// A parse error: it can quote the template text, never a value (none exists yet).
fn err(line: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::at(line, ErrorKind::Parse(msg.to_string()))
}

fn split(src: &str) -> Result<Vec<Piece>, TemplateError> {
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

/// Parses a template into nodes.
pub(crate) fn parse(src: &str) -> Result<Vec<Node>, TemplateError> {
    let pieces = split(src)?;
    let mut p = Parser {
        pieces: pieces.into_iter().peekable(),
        vars: vec![vec!["$".to_owned()]],
        range_depth: 0,
    };
    let (nodes, end) = p.list(0)?;
    match end {
        End::Eof => Ok(nodes),
        End::Close(line) => Err(err(line, "unexpected {{end}}")),
        End::Else(line, _) => Err(err(line, "unexpected {{else}}")),
    }
}

enum End {
    Eof,
    Close(usize),
    Else(usize, Vec<Tok>),
}

struct Parser {
    pieces: std::iter::Peekable<std::vec::IntoIter<Piece>>,
    /// Variable scopes, innermost last (Go scopes variables to the enclosing block).
    vars: Vec<Vec<String>>,
    range_depth: usize,
}

impl Parser {
    fn list(&mut self, depth: usize) -> Result<(Vec<Node>, End), TemplateError> {
        if depth > MAX_DEPTH {
            return Err(err(0, "template nested too deeply"));
        }
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            match piece {
                Piece::Text(t) => nodes.push(Node::Text(t)),
                Piece::Action { line, toks } => {
                    let toks: Vec<Tok> = trim_spaces(toks);
                    let keyword = match toks.first() {
                        Some(Tok::Ident(k)) => k.as_str(),
                        _ => "",
                    };
                    let rest = || trim_spaces(toks[1..].to_vec());
                    match keyword {
                        "end" => {
                            if toks.len() > 1 {
                                return Err(err(line, "unexpected tokens in end"));
                            }
                            return Ok((nodes, End::Close(line)));
                        }
                        "else" => return Ok((nodes, End::Else(line, rest()))),
                        "if" | "range" | "with" => {
                            let node = self.block(keyword, line, rest(), depth)?;
                            nodes.push(node);
                        }
                        "break" | "continue" => {
                            if self.range_depth == 0 {
                                return Err(err(
                                    line,
                                    format!("{{{{{keyword}}}}} outside {{{{range}}}}"),
                                ));
                            }
                            if toks.len() > 1 {
                                return Err(err(line, format!("unexpected tokens in {keyword}")));
                            }
                            nodes.push(if keyword == "break" {
                                Node::Break
                            } else {
                                Node::Continue
                            });
                        }
                        "define" | "template" | "block" => {
                            return Err(err(
                                line,
                                format!(
                                    "{{{{{keyword}}}}} is not supported in SealedSecret templates"
                                ),
                            ));
                        }
                        _ => {
                            let pipe = self.pipeline(line, toks, false)?;
                            nodes.push(Node::Action { line, pipe });
                        }
                    }
                }
            }
        }
        Ok((nodes, End::Eof))
    }

    fn block(
        &mut self,
        keyword: &str,
        line: usize,
        toks: Vec<Tok>,
        depth: usize,
    ) -> Result<Node, TemplateError> {
        self.vars.push(Vec::new());
        let pipe = self.pipeline(line, toks, keyword == "range")?;
        if keyword == "range" {
            self.range_depth += 1;
        }
        let body = self.list(depth + 1);
        if keyword == "range" {
            self.range_depth -= 1;
        }
        let (body, end) = body?;
        let otherwise = match end {
            End::Eof => {
                return Err(err(
                    line,
                    format!("unexpected EOF: missing {{{{end}}}} for {keyword}"),
                ));
            }
            End::Close(_) => Vec::new(),
            End::Else(eline, else_toks) => {
                // `else if` / `else with` chain into a nested block sharing our {{end}}.
                match else_toks.first() {
                    Some(Tok::Ident(k)) if (k == "if" || k == "with") && keyword != "range" => {
                        let k = k.clone();
                        let rest = trim_spaces(else_toks[1..].to_vec());
                        vec![self.block(&k, eline, rest, depth + 1)?]
                    }
                    Some(_) => return Err(err(eline, "unexpected tokens in else")),
                    None => {
                        let (other, end2) = self.list(depth + 1)?;
                        match end2 {
                            End::Close(_) => other,
                            End::Eof => {
                                return Err(err(
                                    line,
                                    format!("unexpected EOF: missing {{{{end}}}} for {keyword}"),
                                ));
                            }
                            End::Else(l, _) => return Err(err(l, "expected end; found {{else}}")),
                        }
                    }
                }
            }
        };
        self.vars.pop();
        Ok(match keyword {
            "if" => Node::If {
                line,
                pipe,
                then: body,
                otherwise,
            },
            "range" => Node::Range {
                line,
                pipe,
                body,
                otherwise,
            },
            _ => Node::With {
                line,
                pipe,
                body,
                otherwise,
            },
        })
    }

    fn var_known(&self, name: &str) -> bool {
        self.vars
            .iter()
            .any(|scope| scope.iter().any(|v| v == name))
    }

    fn pipeline(
        &mut self,
        line: usize,
        toks: Vec<Tok>,
        in_range: bool,
    ) -> Result<Pipeline, TemplateError> {
        if toks.is_empty() {
            return Err(err(line, "missing value for command"));
        }
        // Declarations: `$x :=`, `$x =`, `$i, $v :=` (range only).
        let mut decls = Vec::new();
        let mut assign = false;
        let mut start = 0;
        let ns: Vec<&Tok> = toks.iter().filter(|t| **t != Tok::Space).collect();
        let decl_len = match (ns.first(), ns.get(1), ns.get(2), ns.get(3)) {
            (Some(Tok::Var(_)), Some(Tok::Declare | Tok::Assign), _, _) => 2,
            (
                Some(Tok::Var(_)),
                Some(Tok::Comma),
                Some(Tok::Var(_)),
                Some(Tok::Declare | Tok::Assign),
            ) if in_range => 4,
            _ => 0,
        };
        if decl_len > 0 {
            let mut seen = 0;
            for (i, t) in toks.iter().enumerate() {
                if *t == Tok::Space {
                    continue;
                }
                seen += 1;
                match t {
                    Tok::Var(v) => decls.push(v.clone()),
                    Tok::Assign => assign = true,
                    _ => {}
                }
                if seen == decl_len {
                    start = i + 1;
                    break;
                }
            }
            if assign {
                for d in &decls {
                    if !self.var_known(d) {
                        return Err(err(line, format!("undefined variable: {d}")));
                    }
                }
            }
        }
        let body = trim_spaces(toks[start..].to_vec());
        let mut pipe = self.commands(line, &body, 0)?;
        if !assign && let Some(scope) = self.vars.last_mut() {
            scope.extend(decls.iter().cloned());
        }
        pipe.decls = decls;
        pipe.assign = assign;
        Ok(pipe)
    }

    fn commands(&self, line: usize, toks: &[Tok], depth: usize) -> Result<Pipeline, TemplateError> {
        if depth > MAX_DEPTH {
            return Err(err(line, "expression nested too deeply"));
        }
        let mut cmds = Vec::new();
        let mut args = Vec::new();
        let mut i = 0;
        while i < toks.len() {
            let t = &toks[i];
            match t {
                Tok::Space => {
                    i += 1;
                    continue;
                }
                Tok::Pipe => {
                    if args.is_empty() {
                        return Err(err(line, "missing command before |"));
                    }
                    cmds.push(Command {
                        args: std::mem::take(&mut args),
                    });
                    i += 1;
                    continue;
                }
                Tok::LParen => {
                    let mut level = 0usize;
                    let mut j = i;
                    loop {
                        match toks.get(j) {
                            Some(Tok::LParen) => level += 1,
                            Some(Tok::RParen) => {
                                level -= 1;
                                if level == 0 {
                                    break;
                                }
                            }
                            None => return Err(err(line, "unclosed left paren")),
                            _ => {}
                        }
                        j += 1;
                    }
                    let inner = trim_spaces(toks[i + 1..j].to_vec());
                    if inner.is_empty() {
                        return Err(err(line, "missing value for parenthesized pipeline"));
                    }
                    let inner = self.commands(line, &inner, depth + 1)?;
                    i = j + 1;
                    let mut chain = Vec::new();
                    while let Some(Tok::Field(f)) = toks.get(i) {
                        chain.push(f.clone());
                        i += 1;
                    }
                    args.push(Arg::Pipe(Box::new(inner), chain));
                    self.need_separator(line, toks, i)?;
                    continue;
                }
                Tok::RParen => return Err(err(line, "unexpected right paren")),
                Tok::Comma | Tok::Declare | Tok::Assign => {
                    return Err(err(line, "unexpected declaration or comma in command"));
                }
                _ => {}
            }
            let arg = match t {
                Tok::Dot => {
                    // `.` followed directly by fields is lexed as Field; bare dot here.
                    Arg::Dot
                }
                Tok::Field(f) => {
                    let mut chain = vec![f.clone()];
                    while let Some(Tok::Field(f)) = toks.get(i + 1) {
                        chain.push(f.clone());
                        i += 1;
                    }
                    Arg::Field(chain)
                }
                Tok::Var(v) => {
                    if !self.var_known(v) {
                        return Err(err(line, format!("undefined variable \"{v}\"")));
                    }
                    let mut chain = Vec::new();
                    while let Some(Tok::Field(f)) = toks.get(i + 1) {
                        chain.push(f.clone());
                        i += 1;
                    }
                    Arg::Variable(v.clone(), chain)
                }
                Tok::Ident(name) => match name.as_str() {
                    "true" => Arg::Bool(true),
                    "false" => Arg::Bool(false),
                    "nil" => Arg::Nil,
                    "and" | "or" => Arg::Ident(name.clone()),
                    _ => match crate::funcs::lookup(name) {
                        Some(index) => Arg::Func(name.clone(), index),
                        None => {
                            return Err(err(line, format!("function \"{name}\" not defined")));
                        }
                    },
                },
                Tok::Str(s) => Arg::Str(s.clone()),
                Tok::Int(n) | Tok::Char(n) => Arg::Int(*n),
                Tok::Float(f) => Arg::Float(*f),
                _ => return Err(err(line, "unexpected token")),
            };
            args.push(arg);
            i += 1;
            self.need_separator(line, toks, i)?;
        }
        if args.is_empty() {
            return Err(err(line, "missing command"));
        }
        cmds.push(Command { args });
        Ok(Pipeline {
            decls: Vec::new(),
            assign: false,
            cmds,
        })
    }

    fn need_separator(&self, line: usize, toks: &[Tok], i: usize) -> Result<(), TemplateError> {
        match toks.get(i) {
            None | Some(Tok::Space) | Some(Tok::Pipe) | Some(Tok::RParen) => Ok(()),
            Some(_) => Err(err(line, "missing space between operands")),
        }
    }
}

fn trim_spaces(mut toks: Vec<Tok>) -> Vec<Tok> {
    while toks.last() == Some(&Tok::Space) {
        toks.pop();
    }
    while toks.first() == Some(&Tok::Space) {
        toks.remove(0);
    }
    toks
}
