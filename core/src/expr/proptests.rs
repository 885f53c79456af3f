//! Property test: vectorised evaluation equals a simple row-at-a-time reference interpreter.
//!
//! Random well-typed expressions over int, float and bool columns are printed, parsed back,
//! compiled and evaluated over random batches; the reference walks the original syntax tree one
//! row at a time with Java's rules written out directly, including the short-circuiting of
//! `and`, `or` and `if`. Column values favour the edge cases: zero divisors, `i64::MIN`, NaN,
//! infinities and negative zero.

use proptest::prelude::*;

use super::{compile, parse, Ast, BinaryOp, EvalError, Span, UnaryOp};
use crate::batch::{Batch, Column};
use crate::types::{DataType, Field, Scalar, Schema};

const INTS: [&str; 2] = ["i0", "i1"];
const FLOATS: [&str; 2] = ["f0", "f1"];
const BOOLS: [&str; 2] = ["b0", "b1"];

fn schema() -> Schema {
    let fields = (INTS.iter().map(|n| Field::new(*n, DataType::Int)))
        .chain(FLOATS.iter().map(|n| Field::new(*n, DataType::Float)))
        .chain(BOOLS.iter().map(|n| Field::new(*n, DataType::Bool)));
    Schema::new(fields.collect())
}

#[derive(Clone, Copy, Debug)]
struct Row {
    ints: [i64; 2],
    floats: [f64; 2],
    bools: [bool; 2],
}

#[derive(Clone, Copy, Debug)]
enum Value {
    Int(i64),
    Float(f64),
    Bool(bool),
}

fn same(a: Value, b: Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

// ---- the reference interpreter ----

/// The static type of a well-typed tree: only whether `if` must widen a branch depends on it.
fn is_float(ast: &Ast) -> bool {
    match ast {
        Ast::Field { name, .. } => FLOATS.contains(&name.as_str()),
        Ast::Literal { value, .. } => matches!(value, Scalar::Float(_)),
        Ast::Unary { expr, .. } => is_float(expr),
        Ast::Binary { op, left, right, .. } => {
            !op.is_comparison()
                && !matches!(op, BinaryOp::And | BinaryOp::Or)
                && (is_float(left) || is_float(right))
        }
        Ast::Call { name, args, .. } => match name.as_str() {
            "abs" => is_float(&args[0]),
            "floor" | "ceil" | "to_float" => true,
            "if" => is_float(&args[1]) || is_float(&args[2]),
            _ => false,
        },
    }
}

fn as_float(v: Value) -> f64 {
    match v {
        Value::Int(x) => x as f64,
        Value::Float(x) => x,
        Value::Bool(_) => panic!("a bool used as a number"),
    }
}

fn saturating_int(x: f64) -> i64 {
    if x.is_nan() {
        0
    } else if x >= 9_223_372_036_854_775_807.0 {
        i64::MAX
    } else if x <= -9_223_372_036_854_775_808.0 {
        i64::MIN
    } else {
        x.trunc() as i64
    }
}

fn reference(ast: &Ast, row: &Row) -> Result<Value, EvalError> {
    Ok(match ast {
        Ast::Field { name, .. } => {
            let find = |names: &[&str]| names.iter().position(|n| n == name);
            if let Some(i) = find(&INTS) {
                Value::Int(row.ints[i])
            } else if let Some(i) = find(&FLOATS) {
                Value::Float(row.floats[i])
            } else {
                Value::Bool(row.bools[find(&BOOLS).expect("a known field")])
            }
        }
        Ast::Literal { value: Scalar::Int(v), .. } => Value::Int(*v),
        Ast::Literal { value: Scalar::Float(v), .. } => Value::Float(*v),
        Ast::Literal { value: Scalar::Bool(v), .. } => Value::Bool(*v),
        Ast::Literal { value, .. } => panic!("no {value:?} literals are generated"),
        Ast::Unary { op, expr, .. } => match (op, reference(expr, row)?) {
            (UnaryOp::Neg, Value::Int(x)) => Value::Int(x.wrapping_neg()),
            (UnaryOp::Neg, Value::Float(x)) => Value::Float(-x),
            (UnaryOp::Not, Value::Bool(x)) => Value::Bool(!x),
            (op, v) => panic!("ill-typed {op:?} {v:?}"),
        },
        Ast::Binary { op: BinaryOp::And, left, right, .. } => match reference(left, row)? {
            Value::Bool(false) => Value::Bool(false),
            _ => reference(right, row)?,
        },
        Ast::Binary { op: BinaryOp::Or, left, right, .. } => match reference(left, row)? {
            Value::Bool(true) => Value::Bool(true),
            _ => reference(right, row)?,
        },
        Ast::Binary { op, left, right, .. } => binary(*op, reference(left, row)?, reference(right, row)?)?,
        Ast::Call { name, args, .. } => {
            if name == "if" {
                let Value::Bool(cond) = reference(&args[0], row)? else { panic!("ill-typed if") };
                let value = reference(&args[if cond { 1 } else { 2 }], row)?;
                return Ok(if is_float(ast) { Value::Float(as_float(value)) } else { value });
            }
            let arg = reference(&args[0], row)?;
            match (name.as_str(), arg) {
                ("abs", Value::Int(x)) => Value::Int(x.wrapping_abs()),
                ("abs", Value::Float(x)) => Value::Float(x.abs()),
                ("to_int", v) => Value::Int(saturating_int(as_float(v))),
                ("round", v) => Value::Int(saturating_int((as_float(v) + 0.5).floor())),
                ("to_float", v) => Value::Float(as_float(v)),
                ("floor", v) => Value::Float(as_float(v).floor()),
                ("ceil", v) => Value::Float(as_float(v).ceil()),
                (name, v) => panic!("ill-typed {name}({v:?})"),
            }
        }
    })
}

fn binary(op: BinaryOp, a: Value, b: Value) -> Result<Value, EvalError> {
    use std::cmp::Ordering;
    if op.is_comparison() {
        let order = match (a, b) {
            (Value::Int(x), Value::Int(y)) => Some(x.cmp(&y)),
            (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(&y)),
            (x, y) => as_float(x).partial_cmp(&as_float(y)),
        };
        return Ok(Value::Bool(match op {
            BinaryOp::Eq => order == Some(Ordering::Equal),
            BinaryOp::Ne => order != Some(Ordering::Equal),
            BinaryOp::Lt => order == Some(Ordering::Less),
            BinaryOp::Le => matches!(order, Some(Ordering::Less | Ordering::Equal)),
            BinaryOp::Gt => order == Some(Ordering::Greater),
            _ => matches!(order, Some(Ordering::Greater | Ordering::Equal)),
        }));
    }
    if let (Value::Int(x), Value::Int(y)) = (a, b) {
        if matches!(op, BinaryOp::Div | BinaryOp::Rem) && y == 0 {
            return Err(EvalError::DivisionByZero);
        }
        return Ok(Value::Int(match op {
            BinaryOp::Add => x.wrapping_add(y),
            BinaryOp::Sub => x.wrapping_sub(y),
            BinaryOp::Mul => x.wrapping_mul(y),
            BinaryOp::Div => x.wrapping_div(y),
            _ => x.wrapping_rem(y),
        }));
    }
    let (x, y) = (as_float(a), as_float(b));
    Ok(Value::Float(match op {
        BinaryOp::Add => x + y,
        BinaryOp::Sub => x - y,
        BinaryOp::Mul => x * y,
        BinaryOp::Div => x / y,
        _ => x % y,
    }))
}

// ---- generators ----

fn field(name: &str) -> Ast {
    Ast::Field { name: name.to_owned(), span: Span::default() }
}

fn literal(value: Scalar) -> Ast {
    Ast::Literal { value, span: Span::default() }
}

fn bin(op: BinaryOp, left: Ast, right: Ast) -> Ast {
    Ast::Binary { op, left: Box::new(left), right: Box::new(right), span: Span::default() }
}

fn call(name: &str, args: Vec<Ast>) -> Ast {
    Ast::Call { name: name.to_owned(), args, span: Span::default() }
}

fn unary(op: UnaryOp, expr: Ast) -> Ast {
    Ast::Unary { op, expr: Box::new(expr), span: Span::default() }
}

fn edgy_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        1 => Just(0),
        2 => -3i64..4,
        1 => prop_oneof![Just(i64::MIN), Just(i64::MAX), Just(i64::MIN + 1)],
        1 => any::<i64>(),
    ]
}

fn edgy_float() -> impl Strategy<Value = f64> {
    prop_oneof![
        2 => (-40i32..40).prop_map(|x| f64::from(x) / 4.0),
        1 => prop_oneof![Just(0.0), Just(-0.0), Just(f64::NAN), Just(f64::INFINITY), Just(f64::NEG_INFINITY)],
        1 => any::<f64>(),
    ]
}

fn arith_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop_oneof![Just(Add), Just(Sub), Just(Mul), Just(Div), Just(Rem)]
}

fn cmp_op() -> impl Strategy<Value = BinaryOp> {
    use BinaryOp::*;
    prop_oneof![Just(Eq), Just(Ne), Just(Lt), Just(Le), Just(Gt), Just(Ge)]
}

/// Whether to guard with `d == 0` (else `d != 0`), the division operator, and the divisor.
fn guard() -> impl Strategy<Value = (bool, BinaryOp, Ast)> {
    let op = prop_oneof![Just(BinaryOp::Div), Just(BinaryOp::Rem)];
    (any::<bool>(), op, prop::sample::select(&INTS[..]).prop_map(field))
}

fn int_expr(depth: u32) -> BoxedStrategy<Ast> {
    let leaf = prop_oneof![
        prop::sample::select(&INTS[..]).prop_map(field),
        edgy_int().prop_map(|v| literal(Scalar::Int(v))),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let (int, float, boolean) = (int_expr(depth - 1), float_expr(depth - 1), bool_expr(depth - 1));
    prop_oneof![
        3 => leaf,
        4 => (arith_op(), int.clone(), int.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        1 => int.clone().prop_map(|a| unary(UnaryOp::Neg, a)),
        1 => int.clone().prop_map(|a| call("abs", vec![a])),
        1 => float.clone().prop_map(|a| call("to_int", vec![a])),
        1 => float.prop_map(|a| call("round", vec![a])),
        2 => (boolean, int.clone(), int.clone()).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
        2 => (guard(), int.clone(), int).prop_map(|((zero, op, d), a, b)| {
            // `if(d == 0, a, b / d)` or `if(d != 0, b % d, a)`: a division only some rows take.
            let divided = bin(op, b, d.clone());
            if zero {
                call("if", vec![bin(BinaryOp::Eq, d, literal(Scalar::Int(0))), a, divided])
            } else {
                call("if", vec![bin(BinaryOp::Ne, d, literal(Scalar::Int(0))), divided, a])
            }
        }),
    ]
    .boxed()
}

fn float_expr(depth: u32) -> BoxedStrategy<Ast> {
    let leaf = prop_oneof![
        prop::sample::select(&FLOATS[..]).prop_map(field),
        edgy_float().prop_filter("printable", |v| v.is_finite()).prop_map(|v| literal(Scalar::Float(v))),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let (int, float, boolean) = (int_expr(depth - 1), float_expr(depth - 1), bool_expr(depth - 1));
    let number = prop_oneof![int.clone(), float.clone()];
    prop_oneof![
        3 => leaf,
        3 => (arith_op(), float.clone(), number.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        2 => (arith_op(), int.clone(), float.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        1 => float.clone().prop_map(|a| unary(UnaryOp::Neg, a)),
        1 => float.clone().prop_map(|a| call("abs", vec![a])),
        1 => (prop_oneof![Just("floor"), Just("ceil")], number.clone()).prop_map(|(f, a)| call(f, vec![a])),
        1 => int.clone().prop_map(|a| call("to_float", vec![a])),
        1 => (boolean.clone(), float.clone(), number).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
        1 => (boolean, int, float).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
    ]
    .boxed()
}

fn bool_expr(depth: u32) -> BoxedStrategy<Ast> {
    let leaf = prop_oneof![
        prop::sample::select(&BOOLS[..]).prop_map(field),
        any::<bool>().prop_map(|v| literal(Scalar::Bool(v))),
    ];
    if depth == 0 {
        return leaf.boxed();
    }
    let (int, float, boolean) = (int_expr(depth - 1), float_expr(depth - 1), bool_expr(depth - 1));
    let number = prop_oneof![int.clone(), float];
    let equality = prop_oneof![Just(BinaryOp::Eq), Just(BinaryOp::Ne)];
    let logical = prop_oneof![Just(BinaryOp::And), Just(BinaryOp::Or)];
    prop_oneof![
        2 => leaf,
        3 => (cmp_op(), int.clone(), int.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        2 => (cmp_op(), number.clone(), number).prop_map(|(op, a, b)| bin(op, a, b)),
        1 => (equality, boolean.clone(), boolean.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        3 => (logical, boolean.clone(), boolean.clone()).prop_map(|(op, a, b)| bin(op, a, b)),
        1 => boolean.clone().prop_map(|a| unary(UnaryOp::Not, a)),
        1 => (boolean.clone(), boolean.clone(), boolean).prop_map(|(c, a, b)| call("if", vec![c, a, b])),
        2 => (guard(), cmp_op(), int.clone(), int).prop_map(|((zero, op, d), cmp, a, b)| {
            // `d == 0 or b / d < a` or `d != 0 and b % d < a`.
            let compared = bin(cmp, bin(op, b, d.clone()), a);
            if zero {
                bin(BinaryOp::Or, bin(BinaryOp::Eq, d, literal(Scalar::Int(0))), compared)
            } else {
                bin(BinaryOp::And, bin(BinaryOp::Ne, d, literal(Scalar::Int(0))), compared)
            }
        }),
    ]
    .boxed()
}

fn any_expr() -> impl Strategy<Value = Ast> {
    (0u32..=4).prop_flat_map(|depth| prop_oneof![int_expr(depth), float_expr(depth), bool_expr(depth)])
}

fn rows() -> impl Strategy<Value = Vec<Row>> {
    let row = ([edgy_int(), edgy_int()], [edgy_float(), edgy_float()], any::<[bool; 2]>())
        .prop_map(|(ints, floats, bools)| Row { ints, floats, bools });
    prop::collection::vec(row, 0..24)
}

fn batch(rows: &[Row]) -> Batch {
    let mut columns = Vec::new();
    for i in 0..2 {
        columns.push(Column::Int(rows.iter().map(|r| r.ints[i]).collect()));
    }
    for i in 0..2 {
        columns.push(Column::Float(rows.iter().map(|r| r.floats[i]).collect()));
    }
    for i in 0..2 {
        columns.push(Column::Bool(rows.iter().map(|r| r.bools[i]).collect()));
    }
    Batch::new(columns)
}

fn values(column: &Column) -> Vec<Value> {
    match column {
        Column::Int(v) => v.iter().map(|&x| Value::Int(x)).collect(),
        Column::Float(v) => v.iter().map(|&x| Value::Float(x)).collect(),
        Column::Bool(v) => v.iter().map(|&x| Value::Bool(x)).collect(),
        other => panic!("no {} expressions are generated", other.data_type()),
    }
}

fn check_equal(
    text: &str,
    expected: &Result<Vec<Value>, EvalError>,
    actual: Result<Vec<Value>, EvalError>,
) -> Result<(), TestCaseError> {
    match (expected, actual) {
        (Err(e), Err(a)) => prop_assert_eq!(e, &a, "{}", text),
        (Ok(e), Ok(a)) => {
            prop_assert_eq!(e.len(), a.len());
            for (row, (e, a)) in e.iter().zip(&a).enumerate() {
                prop_assert!(same(*e, *a), "`{}` row {}: expected {:?}, got {:?}", text, row, e, a);
            }
        }
        (e, a) => prop_assert!(false, "`{}`: expected {:?}, got {:?}", text, e, a),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn vectorised_evaluation_equals_row_at_a_time(ast in any_expr(), rows in rows()) {
        let text = ast.to_string();
        let reparsed = parse(&text).map_err(|e| TestCaseError::fail(format!("`{text}`: {e}")))?;
        prop_assert_eq!(reparsed.to_string(), text.clone());
        let expected: Result<Vec<Value>, EvalError> = rows.iter().map(|r| reference(&ast, r)).collect();
        let batch = batch(&rows);
        for tree in [&ast, &reparsed] {
            let expr = compile(tree, &schema()).map_err(|e| TestCaseError::fail(format!("`{text}`: {e}")))?;
            check_equal(&text, &expected, expr.eval(&batch).map(|c| values(&c)))?;
            if expr.data_type() == DataType::Bool {
                let mut out = vec![true; 3];
                let flags = expr.eval_predicate(&batch, &mut out).map(|()| out.iter().map(|&b| Value::Bool(b)).collect());
                check_equal(&text, &expected, flags)?;
            }
        }
    }
}
