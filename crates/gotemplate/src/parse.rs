//! Parser for the Go `text/template` subset (tokens from `lex.rs`): text, actions with pipelines,
//! variables, `if`/`else if`/`else`/`range`/`with`/`end`, `break`/`continue`, comments and
//! `{{-`/`-}}` trimming. `define`/`template`/`block` are refused (one template per key).

use crate::TemplateError;
use crate::budget::MAX_DEPTH;
use crate::error::err;
use crate::lex::{Piece, Tok, split};

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
