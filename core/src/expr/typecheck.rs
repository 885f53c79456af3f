//! Name resolution and type checking: from an [`Ast`] and a schema to a typed node tree.
//!
//! Every rule of the type system lives here; evaluation trusts the tree it is given. Implicit
//! conversions become explicit nodes (an `int` meeting a `float` is wrapped in `FromInt`), a
//! division by a non-zero constant gets a prepared [`Divisor`], and any subtree that reads no
//! field is evaluated once, here, and replaced by its value.

use super::divide::Divisor;
use super::node::{ArithOp, BoolNode, CmpOp, DivOp, Fields, FloatNode, IntNode, Node, StrNode};
use super::{eval, functions, Ast, BinaryOp, ExprError, Span, UnaryOp, EXPR_DEPTH_MAX};
use crate::batch::Batch;
use crate::types::{DataType, Scalar, Schema};

pub(crate) fn check(ast: &Ast, schema: &Schema) -> Result<Node, ExprError> {
    Checker { schema }.node(ast, 1)
}

struct Checker<'s> {
    schema: &'s Schema,
}

impl Checker<'_> {
    fn node(&self, ast: &Ast, depth: usize) -> Result<Node, ExprError> {
        if depth > EXPR_DEPTH_MAX {
            return Err(ExprError::too_deep(ast.span()));
        }
        let node = match ast {
            Ast::Field { name, span } => self.field(name, *span)?,
            Ast::Literal { value, .. } => literal(value.clone()),
            Ast::Unary { op, expr, span } => unary(*op, self.node(expr, depth + 1)?, *span)?,
            Ast::Binary { op, left, right, span } => {
                let (left, right) = (self.node(left, depth + 1)?, self.node(right, depth + 1)?);
                binary(*op, left, right, *span)?
            }
            Ast::Call { name, args, span } => {
                let name_span = Span::new(span.start, span.start + name.len());
                functions::check_call_shape(name, args.len(), name_span)?;
                let nodes =
                    (args.iter()).map(|arg| self.node(arg, depth + 1)).collect::<Result<Vec<_>, _>>()?;
                let spans: Vec<Span> = args.iter().map(Ast::span).collect();
                functions::call(name, nodes, &spans, *span)?
            }
        };
        Ok(fold(node))
    }

    fn field(&self, name: &str, span: Span) -> Result<Node, ExprError> {
        let Some((index, field)) = self.schema.field(name) else {
            let names: Vec<&str> = self.schema.fields.iter().map(|f| f.name.as_str()).collect();
            let message = if names.is_empty() {
                format!("unknown field `{name}`; the input has no fields")
            } else {
                format!("unknown field `{name}`; the input has fields {}", names.join(", "))
            };
            return Err(ExprError::new(span, message));
        };
        Ok(match field.data_type {
            DataType::Int => Node::Int(IntNode::Field(index)),
            DataType::Timestamp => Node::Timestamp(IntNode::Field(index)),
            DataType::Float => Node::Float(FloatNode::Field(index)),
            DataType::Bool => Node::Bool(BoolNode::Field(index)),
            DataType::Str => Node::Str(StrNode::Field(index)),
        })
    }
}

fn literal(value: Scalar) -> Node {
    match value {
        Scalar::Int(v) => Node::Int(IntNode::Const(v)),
        Scalar::Timestamp(v) => Node::Timestamp(IntNode::Const(v)),
        Scalar::Float(v) => Node::Float(FloatNode::Const(v)),
        Scalar::Bool(v) => Node::Bool(BoolNode::Const(v)),
        Scalar::Str(v) => Node::Str(StrNode::Const(v)),
    }
}

/// Replaces a subtree that reads no field by its value. One that fails (`1 / 0`) is kept: it
/// is an error only if some row needs its value.
fn fold(node: Node) -> Node {
    if node.is_const() || node.reads_fields() {
        return node;
    }
    let one_row = Batch::with_rows(Vec::new(), 1);
    match eval::eval(&node, &one_row) {
        Ok(column) => literal(column.scalar(0)),
        Err(_) => node,
    }
}

/// An `int` as a `float`, or a `float` as is; callers have checked that `node` is one of them.
pub(crate) fn to_float(node: Node) -> FloatNode {
    match node {
        Node::Int(IntNode::Const(v)) => FloatNode::Const(v as f64),
        Node::Int(n) => FloatNode::FromInt(Box::new(n)),
        Node::Float(n) => n,
        other => unreachable!("to_float of a {}", other.data_type()),
    }
}

pub(crate) fn is_numeric(node: &Node) -> bool {
    node.data_type().is_numeric()
}

fn unary(op: UnaryOp, operand: Node, span: Span) -> Result<Node, ExprError> {
    Ok(match (op, operand) {
        (UnaryOp::Neg, Node::Int(a)) => Node::Int(IntNode::Neg(Box::new(a))),
        (UnaryOp::Neg, Node::Float(a)) => Node::Float(FloatNode::Neg(Box::new(a))),
        (UnaryOp::Not, Node::Bool(a)) => Node::Bool(BoolNode::Not(Box::new(a))),
        (op, other) => {
            let expected = if op == UnaryOp::Neg { "a number" } else { "a bool" };
            let message =
                format!("operator `{}` expects {expected}, found {}", op.symbol(), other.data_type());
            return Err(ExprError::new(span, message));
        }
    })
}

fn binary(op: BinaryOp, left: Node, right: Node, span: Span) -> Result<Node, ExprError> {
    let arith = match op {
        BinaryOp::And | BinaryOp::Or => return logical(op, left, right, span),
        BinaryOp::Eq => return comparison(CmpOp::Eq, left, right, span),
        BinaryOp::Ne => return comparison(CmpOp::Ne, left, right, span),
        BinaryOp::Lt => return comparison(CmpOp::Lt, left, right, span),
        BinaryOp::Le => return comparison(CmpOp::Le, left, right, span),
        BinaryOp::Gt => return comparison(CmpOp::Gt, left, right, span),
        BinaryOp::Ge => return comparison(CmpOp::Ge, left, right, span),
        BinaryOp::Add => ArithOp::Add,
        BinaryOp::Sub => ArithOp::Sub,
        BinaryOp::Mul => ArithOp::Mul,
        BinaryOp::Div => ArithOp::Div,
        BinaryOp::Rem => ArithOp::Rem,
    };
    let (lt, rt) = (left.data_type(), right.data_type());
    arithmetic(arith, left, right).ok_or_else(|| arithmetic_error(arith, lt, rt, span))
}

fn logical(op: BinaryOp, left: Node, right: Node, span: Span) -> Result<Node, ExprError> {
    let (lt, rt) = (left.data_type(), right.data_type());
    match (left, right) {
        (Node::Bool(a), Node::Bool(b)) => {
            let (a, b) = (Box::new(a), Box::new(b));
            Ok(Node::Bool(if op == BinaryOp::And { BoolNode::And(a, b) } else { BoolNode::Or(a, b) }))
        }
        _ => {
            let message = format!("operator `{}` expects bools, found {lt} and {rt}", op.symbol());
            Err(ExprError::new(span, message))
        }
    }
}

/// `None` when the operand types do not allow `op`.
fn arithmetic(op: ArithOp, left: Node, right: Node) -> Option<Node> {
    let additive = matches!(op, ArithOp::Add | ArithOp::Sub);
    Some(match (left, right) {
        (Node::Int(a), Node::Int(b)) => Node::Int(int_arith(op, a, b)),
        (Node::Timestamp(a), Node::Int(b)) if additive => Node::Timestamp(int_arith(op, a, b)),
        (Node::Int(a), Node::Timestamp(b)) if op == ArithOp::Add => Node::Timestamp(int_arith(op, a, b)),
        (Node::Timestamp(a), Node::Timestamp(b)) if op == ArithOp::Sub => Node::Int(int_arith(op, a, b)),
        (a, b) if is_numeric(&a) && is_numeric(&b) => {
            Node::Float(FloatNode::Arith(op, Box::new(to_float(a)), Box::new(to_float(b))))
        }
        _ => return None,
    })
}

fn int_arith(op: ArithOp, a: IntNode, b: IntNode) -> IntNode {
    let div_op = match op {
        ArithOp::Div => DivOp::Div,
        ArithOp::Rem => DivOp::Rem,
        _ => return IntNode::Arith(op, Box::new(a), Box::new(b)),
    };
    match b {
        IntNode::Const(d) if d != 0 => {
            let divisor = Divisor::new(d).expect("the divisor is not zero");
            IntNode::DivBy(div_op, Box::new(a), divisor)
        }
        b => IntNode::Arith(op, Box::new(a), Box::new(b)),
    }
}

fn arithmetic_error(op: ArithOp, lt: DataType, rt: DataType, span: Span) -> ExprError {
    let symbol = match op {
        ArithOp::Add => "+",
        ArithOp::Sub => "-",
        ArithOp::Mul => "*",
        ArithOp::Div => "/",
        ArithOp::Rem => "%",
    };
    let has_timestamp = lt == DataType::Timestamp || rt == DataType::Timestamp;
    let expected = match op {
        ArithOp::Add if has_timestamp => "numbers, or a timestamp and an int",
        ArithOp::Sub if has_timestamp => "numbers, a timestamp and an int, or two timestamps",
        _ => "numbers",
    };
    let mut message = format!("operator `{symbol}` expects {expected}, found {lt} and {rt}");
    if op == ArithOp::Add && lt == DataType::Str && rt == DataType::Str {
        message.push_str("; use concat(a, b) to join strings");
    }
    ExprError::new(span, message)
}

fn into_int(node: Node) -> Result<IntNode, Node> {
    match node {
        Node::Int(n) | Node::Timestamp(n) => Ok(n),
        other => Err(other),
    }
}

fn comparison(op: CmpOp, left: Node, right: Node, span: Span) -> Result<Node, ExprError> {
    let (lt, rt) = (left.data_type(), right.data_type());
    let symbol = match op {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    };
    let node = match (left, right) {
        (a, b) if lt.is_integer_like() && rt.is_integer_like() => {
            let (a, b) = (into_int(a).expect("int-like"), into_int(b).expect("int-like"));
            BoolNode::CmpInt(op, Box::new(a), Box::new(b))
        }
        (a, b) if is_numeric(&a) && is_numeric(&b) => {
            BoolNode::CmpFloat(op, Box::new(to_float(a)), Box::new(to_float(b)))
        }
        (Node::Str(a), Node::Str(b)) => BoolNode::CmpStr(op, Box::new(a), Box::new(b)),
        (Node::Bool(a), Node::Bool(b)) if matches!(op, CmpOp::Eq | CmpOp::Ne) => {
            BoolNode::CmpBool(op, Box::new(a), Box::new(b))
        }
        (Node::Bool(_), Node::Bool(_)) => {
            let message =
                format!("operator `{symbol}` cannot order bools; bools compare only with `==` and `!=`");
            return Err(ExprError::new(span, message));
        }
        _ => {
            let message = format!("operator `{symbol}` cannot compare {lt} and {rt}");
            return Err(ExprError::new(span, message));
        }
    };
    Ok(Node::Bool(node))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{compile, parse_and_compile, Expr};
    use crate::types::Field;

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

    fn compiled(text: &str) -> Expr {
        parse_and_compile(text, &schema()).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn error(text: &str) -> (Span, String) {
        let e = parse_and_compile(text, &schema()).expect_err(text);
        (e.span, e.message)
    }

    #[test]
    fn result_types() {
        use DataType::*;
        let cases = [
            ("i + j", Int),
            ("i + f", Float),
            ("f * 2", Float),
            ("i % 2.5", Float),
            ("t + 1", Timestamp),
            ("1 + t", Timestamp),
            ("t - 1", Timestamp),
            ("t - t", Int),
            ("t < i", Bool),
            ("i >= t", Bool),
            ("i == 1.5", Bool),
            ("s < 'a'", Bool),
            ("b == true", Bool),
            ("b != b", Bool),
            ("not b or b and true", Bool),
            ("-f", Float),
            ("-i", Int),
            ("abs(i)", Int),
            ("abs(f)", Float),
            ("lower(s)", Str),
            ("upper('x')", Str),
            ("length(s)", Int),
            ("concat(s)", Str),
            ("if(b, i, f)", Float),
            ("if(b, 1, 2)", Int),
            ("if(b, t, t)", Timestamp),
            ("if(b, s, 'x')", Str),
            ("if(b, b, false)", Bool),
            ("to_float(i)", Float),
            ("to_float(f)", Float),
            ("to_int(f)", Int),
            ("to_int(i)", Int),
            ("to_int(t)", Int),
            ("floor(f)", Float),
            ("ceil(i)", Float),
            ("round(f)", Int),
            ("round(i)", Int),
            ("i / 0", Int),
            ("t", Timestamp),
        ];
        for (text, expected) in cases {
            assert_eq!(compiled(text).data_type(), expected, "{text}");
        }
    }

    #[test]
    fn operator_errors() {
        let cases = [
            ("s + 1", "operator `+` expects numbers, found string and int"),
            ("s + s", "operator `+` expects numbers, found string and string; use concat(a, b) to join strings"),
            ("t + t", "operator `+` expects numbers, or a timestamp and an int, found timestamp and timestamp"),
            ("i - t", "operator `-` expects numbers, a timestamp and an int, or two timestamps, found int and timestamp"),
            ("t * 2", "operator `*` expects numbers, found timestamp and int"),
            ("t + 1.5", "operator `+` expects numbers, or a timestamp and an int, found timestamp and float"),
            ("b % 2", "operator `%` expects numbers, found bool and int"),
            ("-t", "operator `-` expects a number, found timestamp"),
            ("-s", "operator `-` expects a number, found string"),
            ("not i", "operator `not` expects a bool, found int"),
            ("i and b", "operator `and` expects bools, found int and bool"),
            ("b || s", "operator `or` expects bools, found bool and string"),
            ("s == 1", "operator `==` cannot compare string and int"),
            ("t < 1.5", "operator `<` cannot compare timestamp and float"),
            ("b < b", "operator `<` cannot order bools; bools compare only with `==` and `!=`"),
            ("b == 1", "operator `==` cannot compare bool and int"),
        ];
        for (text, message) in cases {
            assert_eq!(error(text).1, message, "{text}");
        }
        assert_eq!(error("i + (s * 2)").0, Span::new(4, 11));
        assert_eq!(error("1 + -t").0, Span::new(4, 6));
    }

    #[test]
    fn unknown_fields() {
        assert_eq!(
            error("x + i"),
            (Span::new(0, 1), "unknown field `x`; the input has fields i, j, f, b, s, t".into())
        );
        let e = parse_and_compile("vlaue", &Schema::default()).unwrap_err();
        assert_eq!(e.message, "unknown field `vlaue`; the input has no fields");
        assert_eq!(
            parse_and_compile("`odd name`", &Schema::new(vec![Field::new("odd name", DataType::Int)]))
                .unwrap()
                .as_field(),
            Some(0)
        );
    }

    #[test]
    fn constants_are_folded_and_divisors_prepared() {
        let shape = |text: &str| format!("{:?}", compiled(text).node);
        assert_eq!(shape("2 * 3 + i"), "Int(Arith(Add, Const(6), Field(0)))");
        assert_eq!(shape("concat('a', upper('b'))"), "Str(Const(\"aB\"))");
        assert_eq!(shape("i > 1 + 0.5"), "Bool(CmpFloat(Gt, FromInt(Field(0)), Const(1.5)))");
        assert_eq!(shape("if(1 > 2, i, j)"), "Int(Field(1))");
        assert!(shape("i % (1 + 1)").starts_with("Int(DivBy(Rem, Field(0), Divisor { divisor: 2,"));
        // Division by a zero constant is kept: it fails only if a row needs it.
        assert_eq!(shape("1 / 0"), "Int(Arith(Div, Const(1), Const(0)))");
        assert_eq!(shape("i / 0"), "Int(Arith(Div, Field(0), Const(0)))");
    }

    #[test]
    fn compile_limits_depth_of_built_trees() {
        let mut ast = Ast::Field { name: "b".into(), span: Span::default() };
        for _ in 0..EXPR_DEPTH_MAX {
            ast = Ast::Unary { op: UnaryOp::Not, expr: Box::new(ast), span: Span::default() };
        }
        let e = compile(&ast, &schema()).unwrap_err();
        assert_eq!(e.message, format!("expression nests deeper than {EXPR_DEPTH_MAX} levels"));
    }
}
