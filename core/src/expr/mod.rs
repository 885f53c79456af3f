//! The expression language: field references, literals, operators and scalar functions, written
//! as text in a job file, type-checked against a stream's schema and evaluated over whole columns.
//!
//! The pipeline has two steps. [`parse`] turns text into an [`Ast`], a plain syntax tree with byte
//! spans that the job-file layer may inspect (it recognises aggregate calls such as `sum(value)`
//! that way). [`compile`] resolves field names against a [`Schema`], checks types and produces an
//! [`Expr`]: a tree of typed nodes, each of which evaluates to a whole column at once with a tight
//! loop over plain vectors. Nothing inspects a dynamically typed value per row; literals are never
//! broadcast into vectors; a bare field reference borrows its input column.
//!
//! Semantics follow Java, so that results match Apache Flink: `int` is a `long` (wrapping `+ - *`,
//! division truncating toward zero, `%` with the dividend's sign), `float` is a `double` (IEEE, so
//! `x / 0.0` is infinite and `NaN != NaN`), and an `int` meeting a `float` is widened to `float`.
//! A `timestamp` (epoch milliseconds) plus or minus an `int` is a `timestamp`, the difference of two
//! timestamps an `int`, and timestamps compare with timestamps and ints.
//! `and`, `or` and `if` evaluate their later operands only for the rows that need them, as Java's
//! `&&`, `||` and `?:` do, so `if(d == 0, 0, x / d)` never divides by zero.
//!
//! Syntax, loosest first: `or` (`||`), `and` (`&&`), prefix `not` (`!`), comparisons
//! `== != < <= > >=` (which do not chain), `+ -`, `* / %`, prefix `-`; then literals (`42`,
//! `1_000`, `1.5`, `2e3`, `'text'` or `"text"` with `\\ \' \" \n \t` escapes, `true`, `false`),
//! fields (`value`, or `` `odd name` ``), calls (`abs(x)`; see `functions.rs`) and parentheses.
//! Keywords are case-insensitive, as in SQL; a field named like one needs backquotes.
//!
//! Evaluation is pure and deterministic: no I/O, clocks, randomness or threads.

mod divide;
mod eval;
mod functions;
mod kernels;
mod lexer;
mod node;
mod parser;
#[cfg(test)]
mod proptests;
mod strings;
mod typecheck;

use std::fmt;

use crate::batch::{Batch, Column};
use crate::types::{DataType, Scalar, Schema};
use node::Fields;

/// The deepest nesting of operators, calls and parentheses an expression may have. Parsing,
/// checking and evaluating recurse over the tree, so this bounds their stack use.
pub const EXPR_DEPTH_MAX: usize = 64;

/// The longest expression text accepted, in bytes.
pub const EXPR_TEXT_BYTES_MAX: usize = 16 * 1024;

/// A range of byte offsets into the expression text, `start..end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        debug_assert!(start <= end, "span {start}..{end} runs backwards");
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

/// A parse or type error: where in the text, and what was found instead of what was expected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct ExprError {
    pub span: Span,
    pub message: String,
}

impl ExprError {
    pub(crate) fn new(span: Span, message: impl Into<String>) -> ExprError {
        ExprError { span, message: message.into() }
    }

    pub(crate) fn too_deep(span: Span) -> ExprError {
        ExprError::new(span, format!("expression nests deeper than {EXPR_DEPTH_MAX} levels"))
    }
}

/// A failure while evaluating a well-typed expression over a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EvalError {
    /// Integer `/` or `%` with a zero divisor, on a row whose result was needed.
    #[error("division by zero")]
    DivisionByZero,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// `-x`
    Neg,
    /// `not x`, also written `!x`
    Not,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

impl UnaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            UnaryOp::Neg => "-",
            UnaryOp::Not => "not",
        }
    }
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Or => "or",
            BinaryOp::And => "and",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Rem => "%",
        }
    }

    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
        )
    }
}

/// The syntax tree of an expression, before names are resolved or types checked.
///
/// Spans are byte offsets into the parsed text; a parenthesised expression's span includes its
/// parentheses. A minus sign directly before a number is part of the literal (`-5` is
/// `Literal(-5)`), which is how `-9223372036854775808` can be written.
#[derive(Clone, Debug, PartialEq)]
pub enum Ast {
    Field { name: String, span: Span },
    Literal { value: Scalar, span: Span },
    Unary { op: UnaryOp, expr: Box<Ast>, span: Span },
    Binary { op: BinaryOp, left: Box<Ast>, right: Box<Ast>, span: Span },
    Call { name: String, args: Vec<Ast>, span: Span },
}

impl Ast {
    pub fn span(&self) -> Span {
        match self {
            Ast::Field { span, .. }
            | Ast::Literal { span, .. }
            | Ast::Unary { span, .. }
            | Ast::Binary { span, .. }
            | Ast::Call { span, .. } => *span,
        }
    }

    pub(crate) fn set_span(&mut self, new: Span) {
        match self {
            Ast::Field { span, .. }
            | Ast::Literal { span, .. }
            | Ast::Unary { span, .. }
            | Ast::Binary { span, .. }
            | Ast::Call { span, .. } => *span = new,
        }
    }
}

/// Prints the expression so that it parses back to the same tree (up to spans): every operand
/// that is itself an operation is parenthesised, e.g. `(value % 2) == 0`.
impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ast::Field { name, .. } => write_field_name(f, name),
            Ast::Literal { value, .. } => write_literal(f, value),
            Ast::Unary { op, expr, .. } => {
                f.write_str(op.symbol())?;
                if *op == UnaryOp::Not {
                    f.write_str(" ")?;
                }
                let parenthesise = match &**expr {
                    Ast::Binary { .. } | Ast::Unary { .. } => true,
                    // `-(5)`: the parser reads `-5` as one literal; this keeps the negation.
                    Ast::Literal { value, .. } => !matches!(value, Scalar::Bool(_) | Scalar::Str(_)),
                    Ast::Field { .. } | Ast::Call { .. } => false,
                };
                write_operand(f, expr, parenthesise)
            }
            Ast::Binary { op, left, right, .. } => {
                write_operand(f, left, needs_parens_in_binary(left))?;
                write!(f, " {} ", op.symbol())?;
                write_operand(f, right, needs_parens_in_binary(right))
            }
            Ast::Call { name, args, .. } => {
                write!(f, "{name}(")?;
                for (i, arg) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{arg}")?;
                }
                f.write_str(")")
            }
        }
    }
}

fn needs_parens_in_binary(ast: &Ast) -> bool {
    match ast {
        Ast::Binary { .. } => true,
        // `not` binds more loosely than every binary operator but `and` and `or`.
        Ast::Unary { op, .. } => *op == UnaryOp::Not,
        _ => false,
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, ast: &Ast, parenthesise: bool) -> fmt::Result {
    if parenthesise {
        write!(f, "({ast})")
    } else {
        write!(f, "{ast}")
    }
}

fn write_field_name(f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
    if lexer::is_plain_identifier(name) {
        f.write_str(name)
    } else {
        write!(f, "`{}`", name.replace('`', "``"))
    }
}

fn write_literal(f: &mut fmt::Formatter<'_>, value: &Scalar) -> fmt::Result {
    match value {
        Scalar::Str(s) => {
            f.write_str("'")?;
            for c in s.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '\'' => f.write_str("\\'")?,
                    '\n' => f.write_str("\\n")?,
                    '\t' => f.write_str("\\t")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("'")
        }
        // `{:?}` always shows a decimal point or exponent, so the literal stays a float.
        Scalar::Float(v) => write!(f, "{v:?}"),
        other => write!(f, "{other}"),
    }
}

/// Parses expression text into a syntax tree, without looking at any schema.
pub fn parse(text: &str) -> Result<Ast, ExprError> {
    parser::parse(text)
}

/// Resolves field names against `schema`, checks types and builds an evaluable expression.
pub fn compile(ast: &Ast, schema: &Schema) -> Result<Expr, ExprError> {
    let node = typecheck::check(ast, schema)?;
    let mut fields = Vec::new();
    node.fields(&mut fields);
    fields.sort_unstable();
    fields.dedup();
    Ok(Expr { node, ast: ast.clone(), fields })
}

/// [`parse`] then [`compile`].
pub fn parse_and_compile(text: &str, schema: &Schema) -> Result<Expr, ExprError> {
    compile(&parse(text)?, schema)
}

/// A type-checked expression over one schema, ready to evaluate over that schema's batches.
///
/// Every batch passed to [`Expr::eval`] must have the schema the expression was compiled
/// against; a column of another type is a bug in the caller and panics.
#[derive(Clone, Debug)]
pub struct Expr {
    node: node::Node,
    /// Kept for `Display`, so an expression prints as its author wrote it.
    ast: Ast,
    /// Sorted, deduplicated indexes of the fields the expression reads.
    fields: Vec<usize>,
}

// Operators are cloned into every parallel subtask and shared across threads.
const _: () = {
    const fn assert_shareable<T: Clone + fmt::Debug + Send + Sync>() {}
    assert_shareable::<Expr>();
};

impl Expr {
    /// The type of the values the expression produces.
    pub fn data_type(&self) -> DataType {
        self.node.data_type()
    }

    /// Evaluates the expression for every row of `batch`: one value per row.
    pub fn eval(&self, batch: &Batch) -> Result<Column, EvalError> {
        let column = eval::eval(&self.node, batch)?;
        debug_assert_eq!(column.len(), batch.len());
        debug_assert_eq!(column.data_type(), self.data_type());
        Ok(column)
    }

    /// Evaluates a `bool` expression into `out`, which is cleared first and then holds one flag
    /// per row of `batch`. Reusing `out` across batches avoids allocating.
    pub fn eval_predicate(&self, batch: &Batch, out: &mut Vec<bool>) -> Result<(), EvalError> {
        let node::Node::Bool(node) = &self.node else {
            panic!("eval_predicate on a {} expression `{self}`", self.data_type());
        };
        out.clear();
        eval::eval_predicate(node, batch, out)?;
        debug_assert_eq!(out.len(), batch.len());
        Ok(())
    }

    /// Sorted, deduplicated indexes of the fields the expression reads.
    pub fn referenced_fields(&self) -> Vec<usize> {
        self.fields.clone()
    }

    /// `Some(i)` when the expression is just a reference to field `i`.
    pub fn as_field(&self) -> Option<usize> {
        self.node.as_field()
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.ast)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Field;

    fn schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int),
            Field::new("key", DataType::Str),
            Field::new("value", DataType::Int),
            Field::new("ts_ms", DataType::Timestamp),
        ])
    }

    #[test]
    fn display_parenthesises_nested_operations() {
        let cases = [
            ("value % 2 == 0", "(value % 2) == 0"),
            ("a + b * c", "a + (b * c)"),
            ("not a == b", "not (a == b)"),
            ("!x and y || z", "((not x) and y) or z"),
            ("-x * -3", "-x * -3"),
            ("- -3", "-(-3)"),
            ("-(a - b)", "-(a - b)"),
            ("concat(`odd name`, \"it's\")", "concat(`odd name`, 'it\\'s')"),
            ("`a``b` + `and`", "`a``b` + `and`"),
            ("'tab\\tquote\\'' == \"x\"", "'tab\\tquote\\'' == 'x'"),
            ("1.5 + 2e3 + 1_000", "(1.5 + 2000.0) + 1000"),
        ];
        for (text, shown) in cases {
            let ast = parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(ast.to_string(), shown, "{text}");
            let again = parse(shown).expect("the display form parses");
            assert_eq!(again.to_string(), shown);
        }
    }

    #[test]
    fn expr_display_and_accessors() {
        let expr = parse_and_compile("value % 2 == 0", &schema()).unwrap();
        assert_eq!(expr.to_string(), "(value % 2) == 0");
        assert_eq!(expr.data_type(), DataType::Bool);
        assert_eq!(expr.referenced_fields(), vec![2]);
        assert_eq!(expr.as_field(), None);

        let expr = parse_and_compile("(ts_ms)", &schema()).unwrap();
        assert_eq!(expr.as_field(), Some(3));
        assert_eq!(expr.data_type(), DataType::Timestamp);

        let expr = parse_and_compile("if(id > value, length(key), id + value + id)", &schema()).unwrap();
        assert_eq!(expr.referenced_fields(), vec![0, 1, 2]);
        assert_eq!(parse_and_compile("1 + 2", &schema()).unwrap().referenced_fields(), vec![]);
    }

    #[test]
    fn errors_carry_span_and_message() {
        let err = parse_and_compile("vlaue + 1", &schema()).unwrap_err();
        assert_eq!(err.span, Span::new(0, 5));
        assert_eq!(err.to_string(), "unknown field `vlaue`; the input has fields id, key, value, ts_ms");
    }
}
