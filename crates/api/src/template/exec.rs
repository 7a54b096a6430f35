//! Evaluator: walks the parsed nodes with `.` bound to the decrypted values.

use std::collections::BTreeMap;

use super::TemplateError;
use super::funcs;
use super::parse::{Arg, Command, Node, Pipeline};
use super::value::Value;

/// Output cap: a Secret cannot exceed 1 MiB, so neither can one rendered value.
pub(crate) const MAX_OUTPUT: usize = 1 << 20;
/// Cap on loop iterations over all ranges of one template (bounds CPU on hostile input).
const MAX_STEPS: usize = 1_000_000;

pub(crate) enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec {
    out: String,
    vars: Vec<(String, Value)>,
    steps: usize,
}

fn err(line: usize, msg: impl std::fmt::Display) -> TemplateError {
    TemplateError::new(format!("line {line}: {msg}"))
}

impl Exec {
    pub(crate) fn run(nodes: &[Node], dot: Value) -> Result<String, TemplateError> {
        let mut ex = Exec {
            out: String::new(),
            vars: vec![("$".to_owned(), dot.clone())],
            steps: 0,
        };
        ex.walk(nodes, &dot)?;
        Ok(ex.out)
    }

    fn write(&mut self, s: &str) -> Result<(), TemplateError> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return Err(TemplateError::new("template output exceeds 1 MiB"));
        }
        self.out.push_str(s);
        Ok(())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, TemplateError> {
        for node in nodes {
            match node {
                Node::Text(t) => self.write(t)?,
                Node::Action { line, pipe } => {
                    let v = self.pipeline(*line, pipe, dot)?;
                    if pipe.decls.is_empty() {
                        let s = v.print();
                        self.write(&s)?;
                    }
                }
                Node::If {
                    line,
                    pipe,
                    then,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(*line, pipe, dot)?;
                    let flow = if v.truthy() {
                        self.walk(then, dot)?
                    } else {
                        self.walk(otherwise, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::With {
                    line,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    let v = self.pipeline(*line, pipe, dot)?;
                    let flow = if v.truthy() {
                        self.walk(body, &v)?
                    } else {
                        self.walk(otherwise, dot)?
                    };
                    self.vars.truncate(mark);
                    if !matches!(flow, Flow::Normal) {
                        return Ok(flow);
                    }
                }
                Node::Range {
                    line,
                    pipe,
                    body,
                    otherwise,
                } => {
                    let mark = self.vars.len();
                    // Evaluate the pipeline without its declarations: they bind per element.
                    let bare = Pipeline {
                        decls: Vec::new(),
                        assign: false,
                        cmds: pipe.cmds.clone(),
                    };
                    let v = self.pipeline(*line, &bare, dot)?;
                    let items: Vec<(Value, Value)> = match v {
                        Value::List(l) => l
                            .into_iter()
                            .enumerate()
                            .map(|(i, x)| (Value::Int(i as i64), x))
                            .collect(),
                        Value::Map(m) => m.into_iter().map(|(k, x)| (Value::Str(k), x)).collect(),
                        Value::Int(n) => {
                            if n > MAX_STEPS as i64 {
                                return Err(err(*line, "range over too large an integer"));
                            }
                            (0..n.max(0))
                                .map(|i| (Value::Int(i), Value::Int(i)))
                                .collect()
                        }
                        Value::Nil => Vec::new(),
                        other => {
                            return Err(err(
                                *line,
                                format!("range can't iterate over {}", other.type_name()),
                            ));
                        }
                    };
                    if items.is_empty() {
                        let flow = self.walk(otherwise, dot)?;
                        self.vars.truncate(mark);
                        if !matches!(flow, Flow::Normal) {
                            return Ok(flow);
                        }
                        continue;
                    }
                    for (k, x) in items {
                        self.steps += 1;
                        if self.steps > MAX_STEPS {
                            return Err(err(*line, "template runs too long"));
                        }
                        let inner = self.vars.len();
                        match pipe.decls.as_slice() {
                            [] => {}
                            [v] => self.bind(v, x.clone(), pipe.assign),
                            [kv, vv, ..] => {
                                self.bind(kv, k, pipe.assign);
                                self.bind(vv, x.clone(), pipe.assign);
                            }
                        }
                        let flow = self.walk(body, &x)?;
                        self.vars.truncate(inner);
                        if matches!(flow, Flow::Break) {
                            break;
                        }
                    }
                    self.vars.truncate(mark);
                }
                Node::Break => return Ok(Flow::Break),
                Node::Continue => return Ok(Flow::Continue),
            }
        }
        Ok(Flow::Normal)
    }

    fn bind(&mut self, name: &str, v: Value, assign: bool) {
        if assign && let Some(slot) = self.vars.iter_mut().rev().find(|(n, _)| n == name) {
            slot.1 = v;
            return;
        }
        self.vars.push((name.to_owned(), v));
    }

    fn var(&self, line: usize, name: &str) -> Result<Value, TemplateError> {
        self.vars
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| err(line, format!("undefined variable: {name}")))
    }

    fn pipeline(
        &mut self,
        line: usize,
        pipe: &Pipeline,
        dot: &Value,
    ) -> Result<Value, TemplateError> {
        let mut last: Option<Value> = None;
        for cmd in &pipe.cmds {
            last = Some(self.command(line, cmd, dot, last)?);
        }
        let v = last.unwrap_or(Value::Nil);
        for d in &pipe.decls {
            self.bind(d, v.clone(), pipe.assign);
        }
        Ok(v)
    }

    fn command(
        &mut self,
        line: usize,
        cmd: &Command,
        dot: &Value,
        piped: Option<Value>,
    ) -> Result<Value, TemplateError> {
        let Some(first) = cmd.args.first() else {
            return Err(err(line, "empty command"));
        };
        if let Arg::Ident(name) = first {
            // and/or evaluate lazily, like Go 1.18+.
            if name == "and" || name == "or" {
                let mut last = Value::Nil;
                let n = cmd.args.len() - 1 + usize::from(piped.is_some());
                if n == 0 {
                    return Err(err(
                        line,
                        format!("wrong number of args for {name}: want at least 1 got 0"),
                    ));
                }
                for a in &cmd.args[1..] {
                    last = self.arg(line, a, dot)?;
                    if (name == "and") != last.truthy() {
                        return Ok(last);
                    }
                }
                if let Some(p) = piped {
                    last = p;
                }
                return Ok(last);
            }
            let mut args = Vec::with_capacity(cmd.args.len());
            for a in &cmd.args[1..] {
                args.push(self.arg(line, a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return funcs::call(name, args)
                .map_err(|m| err(line, format!("error calling {name}: {m}")));
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(err(line, "can't give argument to non-function"));
        }
        self.arg(line, first, dot)
    }

    fn arg(&mut self, line: usize, arg: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match arg {
            Arg::Dot => dot.clone(),
            Arg::Field(chain) => fields(line, dot.clone(), chain)?,
            Arg::Variable(name, chain) => fields(line, self.var(line, name)?, chain)?,
            Arg::Ident(name) => funcs::call(name, Vec::new())
                .map_err(|m| err(line, format!("error calling {name}: {m}")))?,
            Arg::Str(s) => Value::Str(s.clone()),
            Arg::Int(n) => Value::Int(*n),
            Arg::Float(f) => Value::Float(*f),
            Arg::Bool(b) => Value::Bool(*b),
            Arg::Nil => Value::Nil,
            Arg::Pipe(p, chain) => {
                let v = self.pipeline(line, p, dot)?;
                fields(line, v, chain)?
            }
        })
    }
}

fn fields(line: usize, mut v: Value, chain: &[String]) -> Result<Value, TemplateError> {
    for f in chain {
        v = match v {
            // A missing key gives Go's invalid value, printed as "<no value>".
            Value::Map(mut m) => m.remove(f).unwrap_or(Value::Nil),
            Value::Nil => return Err(err(line, format!("nil pointer evaluating .{f}"))),
            other => {
                return Err(err(
                    line,
                    format!("can't evaluate field {f} in type {}", other.type_name()),
                ));
            }
        };
    }
    Ok(v)
}

/// Builds the dot from decrypted values.
pub(crate) fn dot_from(data: &BTreeMap<String, String>) -> Value {
    Value::Map(
        data.iter()
            .map(|(k, v)| (k.clone(), Value::Str(v.clone())))
            .collect(),
    )
}
