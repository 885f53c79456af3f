//! The scalar functions: which exist, how many arguments each takes, and their typing rules.
//!
//! - `abs(x)`: int or float, same type; `abs(i64::MIN)` is `i64::MIN`, as Java's `Math.abs`.
//! - `lower(s)`, `upper(s)`: string; Unicode case mapping.
//! - `length(s)`: int, the number of characters (Unicode scalar values, like Flink's
//!   `CHAR_LENGTH`; not UTF-16 units).
//! - `concat(s, ...)`: one or more strings, joined.
//! - `if(c, a, b)`: `a` where `c` holds, else `b`; `a` and `b` of one type, or int and float
//!   (then float). Each row evaluates only the branch it takes.
//! - `to_float(x)`: int or float to float.
//! - `to_int(x)`: float truncated toward zero (saturating, NaN to 0, as Java's `(long) x`);
//!   an int as is; a timestamp's milliseconds.
//! - `floor(x)`, `ceil(x)`: float; an int argument is widened.
//! - `round(x)`: int, `floor(x + 0.5)` saturating; an int argument as is.
//!
//! `avg`, `count`, `max`, `min` and `sum` are aggregates, not scalar functions: the job-file
//! layer handles them in `aggregates` and rejects them everywhere else with a clear message.

use super::node::{BoolNode, FloatNode, IfNode, IntNode, Node, StrNode, ToInt};
use super::typecheck::{is_numeric, to_float};
use super::{ExprError, Span};

/// Scalar functions, in the order error messages list them.
const FUNCTIONS: [&str; 11] =
    ["abs", "ceil", "concat", "floor", "if", "length", "lower", "round", "to_float", "to_int", "upper"];

/// Names the job-file layer accepts only as aggregates.
const AGGREGATES: [&str; 5] = ["avg", "count", "max", "min", "sum"];

/// Checks the name and the number of arguments, before the arguments themselves.
pub(crate) fn check_call_shape(name: &str, args: usize, name_span: Span) -> Result<(), ExprError> {
    if AGGREGATES.contains(&name) {
        let message = format!("{name} is an aggregate function; it is allowed only in `aggregates`");
        return Err(ExprError::new(name_span, message));
    }
    if !FUNCTIONS.contains(&name) {
        let message = format!("unknown function `{name}`; the functions are {}", FUNCTIONS.join(", "));
        return Err(ExprError::new(name_span, message));
    }
    let message = match name {
        "concat" if args == 0 => "function `concat` expects at least 1 argument, found 0".to_owned(),
        "concat" => return Ok(()),
        "if" if args != 3 => format!("function `if` expects 3 arguments, found {args}"),
        "if" => return Ok(()),
        _ if args != 1 => format!("function `{name}` expects 1 argument, found {args}"),
        _ => return Ok(()),
    };
    Err(ExprError::new(name_span, message))
}

/// Types a call whose name and argument count `check_call_shape` accepted.
pub(crate) fn call(name: &str, mut args: Vec<Node>, spans: &[Span], span: Span) -> Result<Node, ExprError> {
    let expects = |expected: &str, found: &Node, at: Span| {
        let message = format!("function `{name}` expects {expected}, found {}", found.data_type());
        Err(ExprError::new(at, message))
    };
    if name == "concat" {
        let mut parts = Vec::with_capacity(args.len());
        for (i, arg) in args.into_iter().enumerate() {
            match arg {
                Node::Str(s) => parts.push(s),
                other => {
                    let message = format!(
                        "function `concat` expects strings, found {} as argument {}",
                        other.data_type(),
                        i + 1
                    );
                    return Err(ExprError::new(spans[i], message));
                }
            }
        }
        return Ok(Node::Str(StrNode::Concat(parts)));
    }
    if name == "if" {
        let otherwise = args.pop().expect("3 arguments");
        let then = args.pop().expect("3 arguments");
        return match args.pop().expect("3 arguments") {
            Node::Bool(cond) => if_node(cond, then, otherwise, span),
            other => expects("a bool condition", &other, spans[0]),
        };
    }
    let arg = args.pop().expect("1 argument");
    let at = spans[0];
    Ok(match (name, arg) {
        ("abs", Node::Int(a)) => Node::Int(IntNode::Abs(Box::new(a))),
        ("abs", Node::Float(a)) => Node::Float(FloatNode::Abs(Box::new(a))),
        ("lower", Node::Str(a)) => Node::Str(StrNode::Lower(Box::new(a))),
        ("upper", Node::Str(a)) => Node::Str(StrNode::Upper(Box::new(a))),
        ("length", Node::Str(a)) => Node::Int(IntNode::Length(Box::new(a))),
        ("to_float", a) if is_numeric(&a) => Node::Float(to_float(a)),
        ("to_int", Node::Int(a) | Node::Timestamp(a)) => Node::Int(a),
        ("to_int", Node::Float(a)) => Node::Int(IntNode::FromFloat(ToInt::Truncate, Box::new(a))),
        // The floor, ceiling and rounding of an int are the int itself.
        ("floor" | "ceil", Node::Int(a)) => Node::Float(to_float(Node::Int(a))),
        ("floor", Node::Float(a)) => Node::Float(FloatNode::Floor(Box::new(a))),
        ("ceil", Node::Float(a)) => Node::Float(FloatNode::Ceil(Box::new(a))),
        ("round", Node::Int(a)) => Node::Int(a),
        ("round", Node::Float(a)) => Node::Int(IntNode::FromFloat(ToInt::Round, Box::new(a))),
        ("lower" | "upper" | "length", other) => return expects("a string", &other, at),
        ("to_int", other) => return expects("a number or a timestamp", &other, at),
        (_, other) => return expects("a number", &other, at),
    })
}

fn if_node(cond: BoolNode, then: Node, otherwise: Node, span: Span) -> Result<Node, ExprError> {
    fn boxed<N>(cond: BoolNode, then: N, otherwise: N) -> Box<IfNode<N>> {
        Box::new(IfNode { cond, then, otherwise })
    }
    let (tt, ot) = (then.data_type(), otherwise.data_type());
    let node = match (then, otherwise) {
        (Node::Int(a), Node::Int(b)) => Node::Int(IntNode::If(boxed(cond, a, b))),
        (Node::Timestamp(a), Node::Timestamp(b)) => Node::Timestamp(IntNode::If(boxed(cond, a, b))),
        (Node::Bool(a), Node::Bool(b)) => Node::Bool(BoolNode::If(boxed(cond, a, b))),
        (Node::Str(a), Node::Str(b)) => Node::Str(StrNode::If(boxed(cond, a, b))),
        (a, b) if is_numeric(&a) && is_numeric(&b) => {
            Node::Float(FloatNode::If(boxed(cond, to_float(a), to_float(b))))
        }
        _ => {
            let message = format!("the branches of `if` have different types: {tt} and {ot}");
            return Err(ExprError::new(span, message));
        }
    };
    Ok(constant_condition(node))
}

/// An `if` whose condition is constant is just one of its branches. (Folding cannot do this
/// when the branches read fields.)
fn constant_condition(node: Node) -> Node {
    fn pick<N>(node: Box<IfNode<N>>) -> Result<N, Box<IfNode<N>>> {
        match node.cond {
            BoolNode::Const(c) => Ok(if c { node.then } else { node.otherwise }),
            _ => Err(node),
        }
    }
    match node {
        Node::Int(IntNode::If(n)) => Node::Int(pick(n).unwrap_or_else(IntNode::If)),
        Node::Timestamp(IntNode::If(n)) => Node::Timestamp(pick(n).unwrap_or_else(IntNode::If)),
        Node::Float(FloatNode::If(n)) => Node::Float(pick(n).unwrap_or_else(FloatNode::If)),
        Node::Bool(BoolNode::If(n)) => Node::Bool(pick(n).unwrap_or_else(BoolNode::If)),
        Node::Str(StrNode::If(n)) => Node::Str(pick(n).unwrap_or_else(StrNode::If)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use crate::expr::{parse_and_compile, Span};
    use crate::types::{DataType, Field, Schema};

    fn error(text: &str) -> (Span, String) {
        let schema = Schema::new(vec![
            Field::new("i", DataType::Int),
            Field::new("j", DataType::Int),
            Field::new("b", DataType::Bool),
            Field::new("s", DataType::Str),
            Field::new("t", DataType::Timestamp),
        ]);
        let e = parse_and_compile(text, &schema).expect_err(text);
        (e.span, e.message)
    }

    #[test]
    fn call_errors() {
        let functions = "abs, ceil, concat, floor, if, length, lower, round, to_float, to_int, upper";
        let cases = [
            ("min(i)", (0, 3), "min is an aggregate function; it is allowed only in `aggregates`".to_owned()),
            (
                "1 + max(i, j)",
                (4, 7),
                "max is an aggregate function; it is allowed only in `aggregates`".into(),
            ),
            ("count()", (0, 5), "count is an aggregate function; it is allowed only in `aggregates`".into()),
            ("foo(i)", (0, 3), format!("unknown function `foo`; the functions are {functions}")),
            ("abs(i, j)", (0, 3), "function `abs` expects 1 argument, found 2".into()),
            ("lower()", (0, 5), "function `lower` expects 1 argument, found 0".into()),
            ("if(b, i)", (0, 2), "function `if` expects 3 arguments, found 2".into()),
            ("concat()", (0, 6), "function `concat` expects at least 1 argument, found 0".into()),
            ("concat(s, i)", (10, 11), "function `concat` expects strings, found int as argument 2".into()),
            ("if(i, 1, 2)", (3, 4), "function `if` expects a bool condition, found int".into()),
            ("if(b, i, s)", (0, 11), "the branches of `if` have different types: int and string".into()),
            ("if(b, t, i)", (0, 11), "the branches of `if` have different types: timestamp and int".into()),
            ("lower(i)", (6, 7), "function `lower` expects a string, found int".into()),
            ("length(b)", (7, 8), "function `length` expects a string, found bool".into()),
            ("abs(t)", (4, 5), "function `abs` expects a number, found timestamp".into()),
            ("floor(s)", (6, 7), "function `floor` expects a number, found string".into()),
            ("round(t)", (6, 7), "function `round` expects a number, found timestamp".into()),
            ("to_int(s)", (7, 8), "function `to_int` expects a number or a timestamp, found string".into()),
            ("to_float(t)", (9, 10), "function `to_float` expects a number, found timestamp".into()),
        ];
        for (text, (start, end), message) in cases {
            assert_eq!(error(text), (Span::new(start, end), message), "{text}");
        }
    }
}
