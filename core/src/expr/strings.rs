//! Evaluation of string nodes: strings live in a [`StrColumn`] (one buffer plus offsets), so
//! string operations work row by row, but still without any per-row type dispatch.

use std::borrow::Cow;

use super::eval::{eval_bool, rows_where};
use super::kernels::Vals;
use super::node::{CmpOp, IfNode, StrNode};
use super::EvalError;
use crate::batch::{Batch, Column, StrColumn};

fn str_column(batch: &Batch, index: usize) -> &StrColumn {
    match &batch.columns[index] {
        Column::Str(v) => v,
        other => panic!("field {index} should be a string column, found {}", other.data_type()),
    }
}

/// The strings of one operand for every row.
pub(crate) enum StrVals<'a> {
    Borrowed(&'a StrColumn),
    Owned(StrColumn),
    Const(Cow<'a, str>),
}

impl StrVals<'_> {
    fn column(&self) -> Option<&StrColumn> {
        match self {
            StrVals::Borrowed(c) => Some(c),
            StrVals::Owned(c) => Some(c),
            StrVals::Const(_) => None,
        }
    }

    fn get(&self, row: usize) -> &str {
        match self {
            StrVals::Borrowed(c) => c.get(row),
            StrVals::Owned(c) => c.get(row),
            StrVals::Const(s) => s,
        }
    }

    pub fn into_column(self, rows: usize) -> StrColumn {
        match self {
            StrVals::Borrowed(c) => c.clone(),
            StrVals::Owned(c) => c,
            StrVals::Const(s) => {
                let mut column = StrColumn::with_capacity(rows, rows * s.len());
                (0..rows).for_each(|_| column.push(&s));
                column
            }
        }
    }
}

pub(crate) fn eval_str<'a>(node: &'a StrNode, batch: &'a Batch) -> Result<StrVals<'a>, EvalError> {
    let rows = batch.len();
    Ok(match node {
        StrNode::Field(i) => StrVals::Borrowed(str_column(batch, *i)),
        StrNode::Const(s) => StrVals::Const(Cow::Borrowed(s)),
        StrNode::Lower(a) => {
            change_case(eval_str(a, batch)?, rows, str::to_lowercase, |s| s.make_ascii_lowercase())
        }
        StrNode::Upper(a) => {
            change_case(eval_str(a, batch)?, rows, str::to_uppercase, |s| s.make_ascii_uppercase())
        }
        StrNode::Concat(args) => {
            let args = args.iter().map(|a| eval_str(a, batch)).collect::<Result<Vec<_>, _>>()?;
            if args.iter().all(|a| a.column().is_none()) {
                return Ok(StrVals::Const(Cow::Owned(args.iter().map(|a| a.get(0)).collect())));
            }
            let mut out = StrColumn::with_capacity(rows, rows * 16);
            let mut joined = String::new();
            for row in 0..rows {
                joined.clear();
                args.iter().for_each(|a| joined.push_str(a.get(row)));
                out.push(&joined);
            }
            StrVals::Owned(out)
        }
        StrNode::If(node) => eval_if_str(node, batch)?,
    })
}

/// Lower- or upper-cases every string; ASCII strings skip the allocation of the Unicode path.
fn change_case<'a>(
    a: StrVals<'a>,
    rows: usize,
    unicode: impl Fn(&str) -> String,
    ascii: impl Fn(&mut str),
) -> StrVals<'a> {
    let Some(column) = a.column() else {
        return StrVals::Const(Cow::Owned(unicode(a.get(0))));
    };
    let mut out = StrColumn::with_capacity(rows, column.data_bytes());
    let mut scratch = String::new();
    for s in column.iter() {
        if s.is_ascii() {
            scratch.clear();
            scratch.push_str(s);
            ascii(&mut scratch);
            out.push(&scratch);
        } else {
            out.push(&unicode(s));
        }
    }
    StrVals::Owned(out)
}

pub(crate) fn map_str<U: Copy>(a: &StrVals<'_>, f: impl Fn(&str) -> U) -> Vals<'static, U> {
    match a.column() {
        Some(column) => Vals::Owned(column.iter().map(f).collect()),
        None => Vals::Const(f(a.get(0))),
    }
}

/// Byte-wise lexicographic comparison, which for UTF-8 is also code point order.
pub(crate) fn compare_str(op: CmpOp, a: &StrVals<'_>, b: &StrVals<'_>, rows: usize) -> Vals<'static, bool> {
    match op {
        CmpOp::Eq => zip_str(a, b, rows, |x, y| x == y),
        CmpOp::Ne => zip_str(a, b, rows, |x, y| x != y),
        CmpOp::Lt => zip_str(a, b, rows, |x, y| x < y),
        CmpOp::Le => zip_str(a, b, rows, |x, y| x <= y),
        CmpOp::Gt => zip_str(a, b, rows, |x, y| x > y),
        CmpOp::Ge => zip_str(a, b, rows, |x, y| x >= y),
    }
}

fn zip_str(
    a: &StrVals<'_>,
    b: &StrVals<'_>,
    rows: usize,
    test: impl Fn(&str, &str) -> bool,
) -> Vals<'static, bool> {
    match (a.column(), b.column()) {
        (None, None) => Vals::Const(test(a.get(0), b.get(0))),
        (Some(x), None) => {
            let y = b.get(0);
            Vals::Owned(x.iter().map(|x| test(x, y)).collect())
        }
        (None, Some(y)) => {
            let x = a.get(0);
            Vals::Owned(y.iter().map(|y| test(x, y)).collect())
        }
        (Some(x), Some(y)) => {
            assert!(x.len() == rows && y.len() == rows);
            Vals::Owned(x.iter().zip(y.iter()).map(|(x, y)| test(x, y)).collect())
        }
    }
}

fn eval_if_str<'a>(node: &'a IfNode<StrNode>, batch: &'a Batch) -> Result<StrVals<'a>, EvalError> {
    let cond = match eval_bool(&node.cond, batch)? {
        Vals::Const(true) => return eval_str(&node.then, batch),
        Vals::Const(false) => return eval_str(&node.otherwise, batch),
        cond => cond,
    };
    let cond = cond.as_slice().expect("not a constant");
    let mut out = StrColumn::with_capacity(cond.len(), cond.len() * 16);
    match (eval_str(&node.then, batch), eval_str(&node.otherwise, batch)) {
        (Ok(a), Ok(b)) => {
            for (row, &c) in cond.iter().enumerate() {
                out.push(if c { a.get(row) } else { b.get(row) });
            }
        }
        _ => {
            // As in `eval_if`: each branch again, on only the rows that take it.
            let on_rows = |branch: &StrNode, wanted: bool| {
                let subset = rows_where(batch, branch, cond, wanted);
                eval_str(branch, &subset).map(|v| v.into_column(subset.len()))
            };
            let (a, b) = (on_rows(&node.then, true)?, on_rows(&node.otherwise, false)?);
            let (mut next_a, mut next_b) = (0, 0);
            for &c in cond {
                let (column, next) = if c { (&a, &mut next_a) } else { (&b, &mut next_b) };
                out.push(column.get(*next));
                *next += 1;
            }
        }
    }
    Ok(StrVals::Owned(out))
}
