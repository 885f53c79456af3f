//! Evaluation of a node tree over a batch, one node (and so one loop) at a time.
//!
//! Every node evaluates all rows eagerly, which keeps loops branch-free. Java evaluates the
//! right side of `&&`/`||` and the branches of `?:` only for the rows that need them, and the
//! only observable difference is an integer division by zero on a row the condition excludes,
//! as in `if(d == 0, 0, x / d)`. So when such an operand fails, it is evaluated again on just
//! the rows that need it, and only a failure there is reported. That slower path runs only for
//! batches where the fast path hit a zero divisor.

use super::kernels::{self, compare, compare_into, map, map_same, zip_same, Vals};
use super::node::{BoolNode, Fields, FloatNode, IfNode, IntNode, Node, ToInt};
use super::strings::{compare_str, eval_str, map_str};
use super::EvalError;
use crate::batch::{Batch, Column};

pub(crate) fn eval(node: &Node, batch: &Batch) -> Result<Column, EvalError> {
    let rows = batch.len();
    Ok(match node {
        Node::Int(n) => Column::Int(eval_int(n, batch)?.into_vec(rows)),
        Node::Timestamp(n) => Column::Timestamp(eval_int(n, batch)?.into_vec(rows)),
        Node::Float(n) => Column::Float(eval_float(n, batch)?.into_vec(rows)),
        Node::Bool(n) => Column::Bool(eval_bool(n, batch)?.into_vec(rows)),
        Node::Str(n) => Column::Str(eval_str(n, batch)?.into_column(rows)),
    })
}

/// Appends one flag per row to `out`; a comparison at the root writes straight into it.
pub(crate) fn eval_predicate(node: &BoolNode, batch: &Batch, out: &mut Vec<bool>) -> Result<(), EvalError> {
    let rows = batch.len();
    match node {
        BoolNode::CmpInt(op, a, b) => {
            compare_into(*op, &eval_int(a, batch)?, &eval_int(b, batch)?, rows, out)
        }
        BoolNode::CmpFloat(op, a, b) => {
            compare_into(*op, &eval_float(a, batch)?, &eval_float(b, batch)?, rows, out)
        }
        node => eval_bool(node, batch)?.extend_into(rows, out),
    }
    Ok(())
}

fn int_column(batch: &Batch, index: usize) -> &[i64] {
    match &batch.columns[index] {
        Column::Int(v) | Column::Timestamp(v) => v,
        other => panic!("field {index} should be an int column, found {}", other.data_type()),
    }
}

fn float_column(batch: &Batch, index: usize) -> &[f64] {
    match &batch.columns[index] {
        Column::Float(v) => v,
        other => panic!("field {index} should be a float column, found {}", other.data_type()),
    }
}

fn bool_column(batch: &Batch, index: usize) -> &[bool] {
    match &batch.columns[index] {
        Column::Bool(v) => v,
        other => panic!("field {index} should be a bool column, found {}", other.data_type()),
    }
}

pub(crate) fn eval_int<'a>(node: &'a IntNode, batch: &'a Batch) -> Result<Vals<'a, i64>, EvalError> {
    Ok(match node {
        IntNode::Field(i) => Vals::Borrowed(int_column(batch, *i)),
        IntNode::Const(v) => Vals::Const(*v),
        IntNode::Arith(op, a, b) => {
            kernels::int_arith(*op, eval_int(a, batch)?, eval_int(b, batch)?, batch.len())?
        }
        IntNode::DivBy(op, a, divisor) => divisor.apply(*op, eval_int(a, batch)?),
        IntNode::Neg(a) => map_same(eval_int(a, batch)?, i64::wrapping_neg),
        IntNode::Abs(a) => map_same(eval_int(a, batch)?, i64::wrapping_abs),
        // Rust's float-to-int `as` saturates and maps NaN to 0, exactly like Java's `(long)`.
        IntNode::FromFloat(ToInt::Truncate, a) => map(eval_float(a, batch)?, |x| x as i64),
        IntNode::FromFloat(ToInt::Round, a) => map(eval_float(a, batch)?, |x| (x + 0.5).floor() as i64),
        IntNode::Length(a) => map_str(&eval_str(a, batch)?, |s| s.chars().count() as i64),
        IntNode::If(node) => eval_if(node, batch, eval_int)?,
    })
}

pub(crate) fn eval_float<'a>(node: &'a FloatNode, batch: &'a Batch) -> Result<Vals<'a, f64>, EvalError> {
    Ok(match node {
        FloatNode::Field(i) => Vals::Borrowed(float_column(batch, *i)),
        FloatNode::Const(v) => Vals::Const(*v),
        FloatNode::Arith(op, a, b) => kernels::float_arith(*op, eval_float(a, batch)?, eval_float(b, batch)?),
        FloatNode::Neg(a) => map_same(eval_float(a, batch)?, |x| -x),
        FloatNode::Abs(a) => map_same(eval_float(a, batch)?, f64::abs),
        FloatNode::Floor(a) => map_same(eval_float(a, batch)?, f64::floor),
        FloatNode::Ceil(a) => map_same(eval_float(a, batch)?, f64::ceil),
        FloatNode::FromInt(a) => map(eval_int(a, batch)?, |x| x as f64),
        FloatNode::If(node) => eval_if(node, batch, eval_float)?,
    })
}

pub(crate) fn eval_bool<'a>(node: &'a BoolNode, batch: &'a Batch) -> Result<Vals<'a, bool>, EvalError> {
    let rows = batch.len();
    Ok(match node {
        BoolNode::Field(i) => Vals::Borrowed(bool_column(batch, *i)),
        BoolNode::Const(v) => Vals::Const(*v),
        BoolNode::CmpInt(op, a, b) => compare(*op, &eval_int(a, batch)?, &eval_int(b, batch)?, rows),
        BoolNode::CmpFloat(op, a, b) => compare(*op, &eval_float(a, batch)?, &eval_float(b, batch)?, rows),
        BoolNode::CmpBool(op, a, b) => compare(*op, &eval_bool(a, batch)?, &eval_bool(b, batch)?, rows),
        BoolNode::CmpStr(op, a, b) => {
            let (a, b) = (eval_str(a, batch)?, eval_str(b, batch)?);
            compare_str(*op, &a, &b, rows)
        }
        BoolNode::Not(a) => map_same(eval_bool(a, batch)?, |x| !x),
        BoolNode::And(a, b) => eval_logical(a, b, false, batch)?,
        BoolNode::Or(a, b) => eval_logical(a, b, true, batch)?,
        BoolNode::If(node) => eval_if(node, batch, eval_bool)?,
    })
}

/// `a and b` (`decisive` false) or `a or b` (`decisive` true): where `a` is `decisive`, so is
/// the result and `b` is not needed.
fn eval_logical<'a>(
    a: &'a BoolNode,
    b: &'a BoolNode,
    decisive: bool,
    batch: &'a Batch,
) -> Result<Vals<'a, bool>, EvalError> {
    let a = match eval_bool(a, batch)? {
        Vals::Const(x) if x == decisive => return Ok(Vals::Const(decisive)),
        Vals::Const(_) => return eval_bool(b, batch),
        a => a,
    };
    // `&` and `|` rather than `&&` and `||`: no branch per row.
    let combine = |a, b| {
        if decisive {
            zip_same(a, b, |x, y| x | y)
        } else {
            zip_same(a, b, |x, y| x & y)
        }
    };
    match eval_bool(b, batch) {
        Ok(b) => Ok(combine(a, b)),
        Err(_) => {
            let needed = a.as_slice().expect("not a constant");
            let b = eval_on_rows(b, batch, needed, !decisive, eval_bool)?;
            // Rows where `a` is decisive take `decisive`, the others `b`'s value.
            let merged = if decisive {
                kernels::merge(needed, &Vals::Const(true), &Vals::Owned(b))
            } else {
                kernels::merge(needed, &Vals::Owned(b), &Vals::Const(false))
            };
            Ok(Vals::Owned(merged))
        }
    }
}

/// Evaluates a node of any fixed-width type.
type EvalFn<T, N> = for<'b> fn(&'b N, &'b Batch) -> Result<Vals<'b, T>, EvalError>;

fn eval_if<'a, T: Copy, N: Fields>(
    node: &'a IfNode<N>,
    batch: &'a Batch,
    eval_branch: EvalFn<T, N>,
) -> Result<Vals<'a, T>, EvalError> {
    let cond = match eval_bool(&node.cond, batch)? {
        Vals::Const(true) => return eval_branch(&node.then, batch),
        Vals::Const(false) => return eval_branch(&node.otherwise, batch),
        cond => cond,
    };
    let cond = cond.as_slice().expect("not a constant");
    match (eval_branch(&node.then, batch), eval_branch(&node.otherwise, batch)) {
        (Ok(a), Ok(b)) => Ok(Vals::Owned(kernels::select(cond, &a, &b))),
        _ => {
            let a = eval_on_rows(&node.then, batch, cond, true, eval_branch)?;
            let b = eval_on_rows(&node.otherwise, batch, cond, false, eval_branch)?;
            Ok(Vals::Owned(kernels::merge(cond, &Vals::Owned(a), &Vals::Owned(b))))
        }
    }
}

/// Evaluates `node` only for the rows where `mask` equals `wanted`: one value per such row.
fn eval_on_rows<T: Copy, N: Fields>(
    node: &N,
    batch: &Batch,
    mask: &[bool],
    wanted: bool,
    eval_node: EvalFn<T, N>,
) -> Result<Vec<T>, EvalError> {
    let subset = rows_where(batch, node, mask, wanted);
    let rows = subset.len();
    Ok(eval_node(node, &subset)?.into_vec(rows))
}

/// A batch of the rows where `mask` equals `wanted`, with the columns `node` reads. The other
/// columns are left as cheap placeholders of the right length: `node` never looks at them.
pub(crate) fn rows_where(batch: &Batch, node: &impl Fields, mask: &[bool], wanted: bool) -> Batch {
    assert_eq!(mask.len(), batch.len());
    let rows: Vec<u32> = (0..mask.len() as u32).filter(|&r| mask[r as usize] == wanted).collect();
    let mut read = Vec::new();
    node.fields(&mut read);
    let columns = (batch.columns.iter().enumerate())
        .map(|(index, column)| {
            if read.contains(&index) {
                let mut subset = Column::empty(column.data_type(), rows.len());
                subset.extend_rows(column, &rows);
                subset
            } else {
                Column::Bool(vec![false; rows.len()])
            }
        })
        .collect();
    Batch::with_rows(columns, rows.len())
}

#[cfg(test)]
mod tests {
    use crate::batch::{Batch, Column};
    use crate::expr::{parse_and_compile, EvalError};
    use crate::types::{DataType, Field, Scalar, Schema};

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("i", DataType::Int),
            Field::new("j", DataType::Int),
            Field::new("f", DataType::Float),
            Field::new("b", DataType::Bool),
            Field::new("s", DataType::Str),
            Field::new("t", DataType::Timestamp),
        ])
    }

    /// Rows of (i, j, f, b, s, t).
    fn batch(rows: &[(i64, i64, f64, bool, &str, i64)]) -> Batch {
        Batch::new(vec![
            Column::Int(rows.iter().map(|r| r.0).collect()),
            Column::Int(rows.iter().map(|r| r.1).collect()),
            Column::Float(rows.iter().map(|r| r.2).collect()),
            Column::Bool(rows.iter().map(|r| r.3).collect()),
            Column::Str(rows.iter().map(|r| r.4).collect()),
            Column::Timestamp(rows.iter().map(|r| r.5).collect()),
        ])
    }

    fn eval(text: &str, batch: &Batch) -> Result<Column, EvalError> {
        let expr = parse_and_compile(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e}"));
        let column = expr.eval(batch)?;
        assert_eq!(column.data_type(), expr.data_type(), "{text}");
        Ok(column)
    }

    fn ints(text: &str, batch: &Batch) -> Vec<i64> {
        match eval(text, batch) {
            Ok(Column::Int(v) | Column::Timestamp(v)) => v,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn floats(text: &str, batch: &Batch) -> Vec<f64> {
        match eval(text, batch) {
            Ok(Column::Float(v)) => v,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn bools(text: &str, batch: &Batch) -> Vec<bool> {
        match eval(text, batch) {
            Ok(Column::Bool(v)) => v,
            other => panic!("{text}: {other:?}"),
        }
    }

    fn strings(text: &str, batch: &Batch) -> Vec<String> {
        match eval(text, batch) {
            Ok(Column::Str(v)) => v.iter().map(str::to_owned).collect(),
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn int_arithmetic_is_java_long() {
        let b =
            batch(&[(-7, 2, 0.0, true, "", 0), (7, -2, 0.0, true, "", 0), (i64::MIN, -1, 0.0, true, "", 0)]);
        // Column with column, column with literal, literal with column.
        assert_eq!(ints("i / j", &b), vec![-3, -3, i64::MIN]);
        assert_eq!(ints("i % j", &b), vec![-1, 1, 0]);
        assert_eq!(ints("i / 2", &b), vec![-3, 3, i64::MIN / 2]);
        assert_eq!(ints("i % 2", &b), vec![-1, 1, 0]);
        assert_eq!(ints("i % 3", &b), vec![-1, 1, i64::MIN % 3]);
        assert_eq!(ints("i / -1", &b), vec![7, -7, i64::MIN]);
        assert_eq!(ints("-7 / j", &b), vec![-3, 3, 7]);
        assert_eq!(ints("-7 % j", &b), vec![-1, -1, 0]);
        assert_eq!(ints("i * 2 + 1", &b), vec![-13, 15, 1]);
        assert_eq!(ints("i - 1", &b), vec![-8, 6, i64::MAX]);
        assert_eq!(ints("-i", &b), vec![7, -7, i64::MIN]);
        assert_eq!(ints("abs(i)", &b), vec![7, 7, i64::MIN]);
        assert_eq!(ints("9223372036854775807 + 1 + i * 0", &b), vec![i64::MIN; 3]);
        assert_eq!(ints("-9223372036854775808 / -1", &b), vec![i64::MIN; 3]);
    }

    #[test]
    fn division_by_zero_fails_only_where_needed() {
        let b = batch(&[(10, 2, 0.0, true, "", 0), (10, 0, 0.0, false, "", 0), (-9, 3, 0.0, true, "", 0)]);
        assert_eq!(eval("i / j", &b), Err(EvalError::DivisionByZero));
        assert_eq!(eval("i % j", &b), Err(EvalError::DivisionByZero));
        assert_eq!(eval("i % 0", &b), Err(EvalError::DivisionByZero));
        assert_eq!(eval("1 / 0 == 1", &b), Err(EvalError::DivisionByZero));
        assert_eq!(ints("i / 0", &batch(&[])), Vec::<i64>::new());
        // Like Java's `?:`, `&&` and `||`, the guarded operand is not evaluated for excluded rows.
        assert_eq!(ints("if(j == 0, -1, i / j)", &b), vec![5, -1, -3]);
        assert_eq!(ints("if(j != 0, i % j, 0) + 1", &b), vec![1, 1, 1]);
        assert_eq!(floats("if(j == 0, 0.5, to_float(i / j))", &b), vec![5.0, 0.5, -3.0]);
        assert_eq!(bools("j != 0 and i / j > 4", &b), vec![true, false, false]);
        assert_eq!(bools("j == 0 or i / j > 4", &b), vec![true, true, false]);
        assert_eq!(bools("if(j == 0, b, i / j < 0)", &b), vec![false, false, true]);
        assert_eq!(
            strings("if(j == 0, 'zero', if(i / j > 0, 'pos', 'neg'))", &b),
            vec!["pos", "zero", "neg"]
        );
        assert_eq!(bools("false and 1 / 0 == 1", &b), vec![false; 3]);
        // A row that does need the division still fails.
        assert_eq!(eval("if(j == 0, i / j, 0)", &b), Err(EvalError::DivisionByZero));
        assert_eq!(eval("b or i / j > 0", &b), Err(EvalError::DivisionByZero));
        assert_eq!(
            eval("if(b, 'x', concat('y', if(i / j > 0, 'a', 'b')))", &b),
            Err(EvalError::DivisionByZero)
        );
    }

    #[test]
    fn floats_are_ieee_doubles() {
        let b = batch(&[(3, 0, 0.0, true, "", 0), (-3, 0, f64::NAN, true, "", 0), (1, 0, -2.5, true, "", 0)]);
        let q = floats("to_float(i) / f", &b);
        assert_eq!(q[0], f64::INFINITY);
        assert!(q[1].is_nan());
        assert_eq!(q[2], -0.4);
        assert_eq!(floats("1.0 / 0.0 + f * 0.0", &b)[0], f64::INFINITY);
        assert_eq!(bools("f == f", &b), vec![true, false, true]);
        assert_eq!(bools("f != f", &b), vec![false, true, false]);
        assert_eq!(bools("f < 1 or f >= 1", &b), vec![true, false, true]);
        assert_eq!(floats("i + 0.5", &b), vec![3.5, -2.5, 1.5]);
        assert_eq!(floats("i / 2.0", &b), vec![1.5, -1.5, 0.5]);
        assert_eq!(floats("-7.5 % 2", &b), vec![-1.5; 3]);
        assert_eq!(bools("i == 3.0", &b), vec![true, false, false]);
        assert_eq!(floats("abs(f) + -f", &b)[2], 5.0);
    }

    #[test]
    fn conversions() {
        let values = [2.9, -2.9, f64::NAN, 1e30, -1e30, f64::INFINITY, 2.5, -2.5, -2.6, 0.49];
        let b = batch(&values.map(|f| (0, 0, f, true, "", 0)));
        assert_eq!(ints("to_int(f)", &b), vec![2, -2, 0, i64::MAX, i64::MIN, i64::MAX, 2, -2, -2, 0]);
        assert_eq!(ints("round(f)", &b), vec![3, -3, 0, i64::MAX, i64::MIN, i64::MAX, 3, -2, -3, 0]);
        assert_eq!(floats("floor(f)", &b)[..2], [2.0, -3.0]);
        assert_eq!(floats("ceil(f)", &b)[..2], [3.0, -2.0]);
        let b = batch(&[(i64::MAX, 0, 0.0, true, "", 12)]);
        assert_eq!(floats("to_float(i)", &b), vec![i64::MAX as f64]);
        assert_eq!(floats("floor(i)", &b), vec![i64::MAX as f64]);
        assert_eq!(
            ints("round(i) + to_int(i) + to_int(t)", &b),
            vec![i64::MAX.wrapping_mul(2).wrapping_add(12)]
        );
    }

    #[test]
    fn timestamps() {
        let b = batch(&[(5, 0, 0.0, true, "", 1_000), (2_000, 0, 0.0, true, "", 2_000)]);
        assert_eq!(eval("t + 500", &b), Ok(Column::Timestamp(vec![1_500, 2_500])));
        assert_eq!(eval("500 + t - i", &b), Ok(Column::Timestamp(vec![1_495, 500])));
        assert_eq!(eval("t - (t - 10)", &b), Ok(Column::Int(vec![10, 10])));
        assert_eq!(eval("to_int(t)", &b), Ok(Column::Int(vec![1_000, 2_000])));
        assert_eq!(bools("t >= i", &b), vec![true, true]);
        assert_eq!(bools("t > 1500", &b), vec![false, true]);
        assert_eq!(bools("t == t + 0", &b), vec![true, true]);
        assert_eq!(eval("if(b, t, t + 1)", &b), Ok(Column::Timestamp(vec![1_000, 2_000])));
    }

    #[test]
    fn strings_are_unicode() {
        let b = batch(&[
            (0, 0, 0.0, true, "ÄÖÜ straße", 0),
            (0, 0, 0.0, false, "abc", 0),
            (0, 0, 0.0, true, "😀", 0),
        ]);
        assert_eq!(strings("lower(s)", &b), vec!["äöü straße", "abc", "😀"]);
        assert_eq!(strings("upper(s)", &b), vec!["ÄÖÜ STRASSE", "ABC", "😀"]);
        assert_eq!(strings("concat(s, '-', upper('é'))", &b), vec!["ÄÖÜ straße-É", "abc-É", "😀-É"]);
        assert_eq!(strings("concat('a', 'b')", &b), vec!["ab"; 3]);
        assert_eq!(ints("length(s)", &b), vec![10, 3, 1]);
        assert_eq!(ints("length('héllo')", &b), vec![5; 3]);
        assert_eq!(bools("s < 'b'", &b), vec![false, true, false]);
        assert_eq!(bools("'Z' < 'a' and 'é' > 'z'", &b), vec![true; 3]);
        assert_eq!(bools("s == s and s != concat(s, 'x')", &b), vec![true; 3]);
        assert_eq!(bools("s >= upper(s)", &b), vec![true, true, true]);
        assert_eq!(strings("if(b, s, 'no')", &b), vec!["ÄÖÜ straße", "no", "😀"]);
        assert_eq!(strings("s", &b), vec!["ÄÖÜ straße", "abc", "😀"]);
    }

    #[test]
    fn if_selects_per_row() {
        let b = batch(&[(1, 10, 0.5, true, "", 0), (2, 20, 1.5, false, "", 0)]);
        assert_eq!(ints("if(b, i, j)", &b), vec![1, 20]);
        assert_eq!(ints("if(b, i, 0)", &b), vec![1, 0]);
        assert_eq!(ints("if(b, 7, j)", &b), vec![7, 20]);
        assert_eq!(ints("if(i > 1, 7, 8)", &b), vec![8, 7]);
        assert_eq!(floats("if(b, i, f)", &b), vec![1.0, 1.5]);
        assert_eq!(bools("if(b, i > 5, j > 5)", &b), vec![false, true]);
        assert_eq!(ints("if(true, i, 1 / 0)", &b), vec![1, 2]);
    }

    #[test]
    fn fields_literals_and_empty_batches() {
        let b = batch(&[(1, 10, 0.5, true, "x", 7), (2, 20, 1.5, false, "y", 8)]);
        for (index, name) in ["i", "j", "f", "b", "s", "t"].iter().enumerate() {
            assert_eq!(eval(name, &b).as_ref(), Ok(&b.columns[index]));
        }
        assert_eq!(ints("1 + 2", &b), vec![3, 3]);
        assert_eq!(strings("'lit'", &b), vec!["lit", "lit"]);
        assert_eq!(bools("true", &b), vec![true, true]);
        let empty = batch(&[]);
        assert_eq!(ints("i * 2 + j", &empty), Vec::<i64>::new());
        assert_eq!(strings("concat(s, 'x')", &empty), Vec::<String>::new());
        assert_eq!(bools("not b", &empty), Vec::<bool>::new());
    }

    #[test]
    fn eval_predicate_reuses_the_output() {
        let b = batch(&[(1, 0, 0.0, true, "", 0), (2, 0, 0.0, true, "", 0), (4, 0, 0.0, false, "", 0)]);
        let mut out = vec![true; 10];
        let cases: [(&str, &[bool]); 6] = [
            ("i % 2 == 0", &[false, true, true]),
            ("2.0 > f + i", &[true, false, false]),
            ("b and i > 1", &[false, true, false]),
            ("b", &[true, true, false]),
            ("true", &[true, true, true]),
            ("if(j == 0, i < 3, i / j == 0)", &[true, true, false]),
        ];
        for (text, expected) in cases {
            let expr = parse_and_compile(text, &schema()).unwrap();
            expr.eval_predicate(&b, &mut out).unwrap();
            assert_eq!(out, expected, "{text}");
        }
        let expr = parse_and_compile("i / j == 0", &schema()).unwrap();
        assert_eq!(expr.eval_predicate(&b, &mut out), Err(EvalError::DivisionByZero));
    }

    #[test]
    #[should_panic(expected = "eval_predicate on a int expression `i + 1`")]
    fn eval_predicate_needs_a_bool_expression() {
        let expr = parse_and_compile("i + 1", &schema()).unwrap();
        expr.eval_predicate(&batch(&[]), &mut Vec::new()).unwrap();
    }

    #[test]
    fn scalar_rows_round_trip() {
        let b = batch(&[(1, 2, 0.5, true, "q", 3)]);
        assert_eq!(eval("concat(s, s)", &b).unwrap().scalar(0), Scalar::Str("qq".into()));
    }
}
