//! Evaluator: walks the parsed nodes with `.` bound to the decrypted values, charging every
//! step and every value produced to the render's [`Budget`].

use std::collections::BTreeMap;

use crate::budget::{Budget, Exhausted, MAX_OUTPUT};
use crate::funcs;
use crate::parse::{Arg, Command, Node, Pipeline};
use crate::value::Value;
use crate::{ErrorKind, EvalError, TemplateError};

pub(crate) enum Flow {
    Normal,
    Break,
    Continue,
}

pub(crate) struct Exec<'b> {
    out: String,
    vars: Vec<(String, Value)>,
    budget: &'b mut Budget,
}

fn err(line: usize, e: EvalError) -> TemplateError {
    TemplateError::at(line, ErrorKind::Eval(e))
}

fn over(line: usize, what: Exhausted) -> TemplateError {
    TemplateError::budget(line, what)
}

/// What `range` walks: lists and maps it owns, integers lazily (a `range 1000000` must not
/// allocate a million pairs first).
enum Items {
    List(std::iter::Enumerate<std::vec::IntoIter<Value>>),
    Map(std::collections::btree_map::IntoIter<String, Value>),
    Count(std::ops::Range<i64>),
}

impl Iterator for Items {
    type Item = (Value, Value);
    fn next(&mut self) -> Option<(Value, Value)> {
        match self {
            Items::List(it) => it.next().map(|(i, x)| (Value::Int(i as i64), x)),
            Items::Map(it) => it.next().map(|(k, x)| (Value::Str(k), x)),
            Items::Count(r) => r.next().map(|i| (Value::Int(i), Value::Int(i))),
        }
    }
}

impl<'b> Exec<'b> {
    pub(crate) fn run(
        nodes: &[Node],
        dot: &Value,
        budget: &'b mut Budget,
    ) -> Result<String, TemplateError> {
        let mut ex = Exec {
            out: String::new(),
            vars: vec![("$".to_owned(), dot.clone())],
            budget,
        };
        ex.walk(nodes, dot)?;
        Ok(ex.out)
    }

    /// Appends to the output, charged to the budget shared by every render of the object
    /// before anything is copied, so the first overrun stops the render.
    fn write(&mut self, line: usize, s: &str) -> Result<(), TemplateError> {
        if self.out.len() + s.len() > MAX_OUTPUT {
            return Err(over(line, self.budget.output_exceeded()));
        }
        self.budget.output(s.len()).map_err(|e| over(line, e))?;
        self.out.push_str(s);
        Ok(())
    }

    fn step(&mut self, line: usize) -> Result<(), TemplateError> {
        self.budget.steps(1).map_err(|e| over(line, e))
    }

    /// Charges a copy of `v` (a variable read, a binding, the dot) and returns it.
    fn copy(&mut self, line: usize, v: &Value) -> Result<Value, TemplateError> {
        self.budget.bytes(v.size()).map_err(|e| over(line, e))?;
        Ok(v.clone())
    }

    fn walk(&mut self, nodes: &[Node], dot: &Value) -> Result<Flow, TemplateError> {
        for node in nodes {
            self.step(node_line(node))?;
            match node {
                Node::Text(t) => self.write(0, t)?,
                Node::Action { line, pipe } => {
                    let v = self.pipeline(*line, pipe, dot)?;
                    if pipe.decls.is_empty() {
                        match &v {
                            // A string prints as itself: written without a second copy.
                            Value::Str(s) => self.write(*line, s)?,
                            other => {
                                let s = other.print();
                                self.write(*line, &s)?;
                            }
                        }
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
                    let mut items = match v {
                        Value::List(l) => Items::List(l.into_iter().enumerate()),
                        Value::Map(m) => Items::Map(m.into_iter()),
                        Value::Int(n) => Items::Count(0..n.max(0)),
                        Value::Nil => Items::Count(0..0),
                        _ => return Err(err(*line, EvalError::Range)),
                    }
                    .peekable();
                    if items.peek().is_none() {
                        let flow = self.walk(otherwise, dot)?;
                        self.vars.truncate(mark);
                        if !matches!(flow, Flow::Normal) {
                            return Ok(flow);
                        }
                        continue;
                    }
                    for (k, x) in items {
                        self.step(*line)?;
                        let inner = self.vars.len();
                        match pipe.decls.as_slice() {
                            [] => {}
                            [v] => {
                                let x = self.copy(*line, &x)?;
                                self.bind(v, x, pipe.assign);
                            }
                            [kv, vv, ..] => {
                                let k = self.copy(*line, &k)?;
                                self.bind(kv, k, pipe.assign);
                                let x = self.copy(*line, &x)?;
                                self.bind(vv, x, pipe.assign);
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

    /// Reads `$name.f.g`: the field chain is followed by reference and only the selected
    /// value is copied (and charged), not the whole variable.
    fn var(&mut self, line: usize, name: &str, chain: &[String]) -> Result<Value, TemplateError> {
        let Some(pos) = self.vars.iter().rposition(|(n, _)| n == name) else {
            return Err(err(line, EvalError::UndefinedVariable(name.to_owned())));
        };
        let vars = std::mem::take(&mut self.vars);
        let picked = select(line, &vars[pos].1, chain).and_then(|v| match v {
            Some(v) => self.copy(line, v),
            None => Ok(Value::Nil),
        });
        self.vars = vars;
        picked
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
            let copy = self.copy(line, &v)?;
            self.bind(d, copy, pipe.assign);
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
        self.step(line)?;
        let Some(first) = cmd.args.first() else {
            return Err(err(line, EvalError::EmptyCommand));
        };
        // and/or evaluate lazily, like Go 1.18+ (the parser admits no other identifier).
        if let Arg::Ident(name) = first {
            {
                let mut last = Value::Nil;
                let n = cmd.args.len() - 1 + usize::from(piped.is_some());
                if n == 0 {
                    return Err(err(line, EvalError::Arity(name.clone())));
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
        }
        if let Arg::Func(name, index) = first {
            let mut args = Vec::with_capacity(cmd.args.len());
            for a in &cmd.args[1..] {
                args.push(self.arg(line, a, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return self.call(line, name, *index, args);
        }
        if cmd.args.len() > 1 || piped.is_some() {
            return Err(err(line, EvalError::NotAFunction));
        }
        self.arg(line, first, dot)
    }

    /// Calls a function and charges its result; a failure caused by the budget is reported
    /// as such whatever message the function gave.
    fn call(
        &mut self,
        line: usize,
        name: &str,
        index: usize,
        args: Vec<Value>,
    ) -> Result<Value, TemplateError> {
        self.step(line)?;
        let result = funcs::call(index, args, self.budget);
        if let Some(what) = self.budget.exhausted() {
            return Err(over(line, what));
        }
        let v = result.map_err(|reason| {
            TemplateError::at(
                line,
                ErrorKind::Call {
                    function: name.to_owned(),
                    reason,
                },
            )
        })?;
        self.budget.bytes(v.size()).map_err(|e| over(line, e))?;
        Ok(v)
    }

    fn arg(&mut self, line: usize, arg: &Arg, dot: &Value) -> Result<Value, TemplateError> {
        Ok(match arg {
            Arg::Dot => self.copy(line, dot)?,
            Arg::Field(chain) => match select(line, dot, chain)? {
                Some(v) => self.copy(line, v)?,
                None => Value::Nil,
            },
            Arg::Variable(name, chain) => self.var(line, name, chain)?,
            // `and`/`or` without arguments.
            Arg::Ident(name) => return Err(err(line, EvalError::Arity(name.clone()))),
            Arg::Func(name, index) => self.call(line, name, *index, Vec::new())?,
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

fn node_line(node: &Node) -> usize {
    match node {
        Node::Action { line, .. }
        | Node::If { line, .. }
        | Node::Range { line, .. }
        | Node::With { line, .. } => *line,
        Node::Text(_) | Node::Break | Node::Continue => 0,
    }
}

/// Follows a `.f.g` chain by reference; `None` is Go's invalid value (a missing key).
fn select<'v>(
    line: usize,
    mut v: &'v Value,
    chain: &[String],
) -> Result<Option<&'v Value>, TemplateError> {
    for (i, f) in chain.iter().enumerate() {
        v = match v {
            Value::Map(m) => match m.get(f) {
                Some(x) => x,
                None if i + 1 == chain.len() => return Ok(None),
                // A missing key gives Go's invalid value; a field of it is a nil pointer.
                None => {
                    return Err(err(line, EvalError::NilField(chain[i + 1].clone())));
                }
            },
            Value::Nil => return Err(err(line, EvalError::NilField(f.clone()))),
            _ => return Err(err(line, EvalError::Field(f.clone()))),
        };
    }
    Ok(Some(v))
}

fn fields(line: usize, mut v: Value, chain: &[String]) -> Result<Value, TemplateError> {
    for f in chain {
        v = match v {
            // A missing key gives Go's invalid value, printed as "<no value>".
            Value::Map(mut m) => m.remove(f).unwrap_or(Value::Nil),
            Value::Nil => return Err(err(line, EvalError::NilField(f.clone()))),
            _ => return Err(err(line, EvalError::Field(f.clone()))),
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
