//! A recursive-descent parser from tokens to [`Ast`].
//!
//! Precedence, loosest first: `or`; `and`; prefix `not`; comparisons (which do not chain);
//! `+ -`; `* / %`; prefix `-`; then literals, fields, calls and parentheses. Binary operators
//! associate to the left.

use super::lexer::{self, Token, TokenKind};
use super::{Ast, BinaryOp, ExprError, Span, UnaryOp, EXPR_DEPTH_MAX, EXPR_TEXT_BYTES_MAX};
use crate::types::Scalar;

pub(crate) fn parse(text: &str) -> Result<Ast, ExprError> {
    if text.len() > EXPR_TEXT_BYTES_MAX {
        let message = format!("expression is {} bytes long; the limit is {EXPR_TEXT_BYTES_MAX}", text.len());
        return Err(ExprError::new(Span::new(0, text.len()), message));
    }
    let tokens = lexer::tokenize(text)?;
    let mut parser = Parser { text, tokens, pos: 0, nesting: 0 };
    if parser.peek() == &TokenKind::End {
        return Err(parser.error_here("expected an expression, found end of expression".into()));
    }
    let (ast, _depth) = parser.or_expr()?;
    match parser.peek() {
        TokenKind::End => Ok(ast),
        TokenKind::RParen => Err(parser.error_here("unmatched `)`".into())),
        _ => {
            let message = format!("expected an operator or end of expression, found {}", parser.found());
            Err(parser.error_here(message))
        }
    }
}

/// A subtree and its depth (a leaf has depth 1), so that too deep a tree is rejected while it is
/// being built rather than by a recursive walk afterwards.
type Parsed = (Ast, usize);

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    /// Open parentheses, calls and prefix operators: bounds the parser's own recursion.
    nesting: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &TokenKind {
        &self.tokens[self.pos].kind
    }

    fn span(&self) -> Span {
        self.tokens[self.pos].span
    }

    fn advance(&mut self) -> Token {
        let token = self.tokens[self.pos].clone();
        if token.kind != TokenKind::End {
            self.pos += 1;
        }
        token
    }

    /// How the current token reads in a message: "`)`" or "end of expression".
    fn found(&self) -> String {
        match self.peek() {
            TokenKind::End => "end of expression".to_owned(),
            _ => {
                let span = self.span();
                format!("`{}`", &self.text[span.start..span.end])
            }
        }
    }

    fn error_here(&self, message: String) -> ExprError {
        ExprError::new(self.span(), message)
    }

    fn enter(&mut self, span: Span) -> Result<(), ExprError> {
        self.nesting += 1;
        if self.nesting > EXPR_DEPTH_MAX {
            return Err(ExprError::too_deep(span));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.nesting -= 1;
    }

    fn binary(op: BinaryOp, left: Parsed, right: Parsed) -> Result<Parsed, ExprError> {
        let span = left.0.span().to(right.0.span());
        let depth = 1 + left.1.max(right.1);
        if depth > EXPR_DEPTH_MAX {
            return Err(ExprError::too_deep(span));
        }
        let ast = Ast::Binary { op, left: Box::new(left.0), right: Box::new(right.0), span };
        Ok((ast, depth))
    }

    fn unary(op: UnaryOp, op_span: Span, operand: Parsed) -> Result<Parsed, ExprError> {
        let span = op_span.to(operand.0.span());
        let depth = operand.1 + 1;
        if depth > EXPR_DEPTH_MAX {
            return Err(ExprError::too_deep(span));
        }
        Ok((Ast::Unary { op, expr: Box::new(operand.0), span }, depth))
    }

    /// A left-associative chain of one precedence level.
    fn chain(
        &mut self,
        operand: fn(&mut Self) -> Result<Parsed, ExprError>,
        operator: fn(&TokenKind) -> Option<BinaryOp>,
    ) -> Result<Parsed, ExprError> {
        let mut left = operand(self)?;
        while let Some(op) = operator(self.peek()) {
            self.advance();
            let right = operand(self)?;
            left = Self::binary(op, left, right)?;
        }
        Ok(left)
    }

    fn or_expr(&mut self) -> Result<Parsed, ExprError> {
        self.chain(Self::and_expr, |t| (t == &TokenKind::Or).then_some(BinaryOp::Or))
    }

    fn and_expr(&mut self) -> Result<Parsed, ExprError> {
        self.chain(Self::not_expr, |t| (t == &TokenKind::And).then_some(BinaryOp::And))
    }

    fn not_expr(&mut self) -> Result<Parsed, ExprError> {
        if self.peek() != &TokenKind::Not {
            return self.comparison();
        }
        let op_span = self.advance().span;
        self.enter(op_span)?;
        let operand = self.not_expr()?;
        self.leave();
        Self::unary(UnaryOp::Not, op_span, operand)
    }

    fn comparison(&mut self) -> Result<Parsed, ExprError> {
        let left = self.additive()?;
        let Some(op) = comparison_op(self.peek()) else {
            return Ok(left);
        };
        self.advance();
        let right = self.additive()?;
        let compared = Self::binary(op, left, right)?;
        if comparison_op(self.peek()).is_some() {
            let first = compared.0.span();
            let message = format!(
                "comparisons do not chain: found {} after `{}`; combine comparisons with `and`",
                self.found(),
                &self.text[first.start..first.end]
            );
            return Err(self.error_here(message));
        }
        Ok(compared)
    }

    fn additive(&mut self) -> Result<Parsed, ExprError> {
        self.chain(Self::multiplicative, |t| match t {
            TokenKind::Plus => Some(BinaryOp::Add),
            TokenKind::Minus => Some(BinaryOp::Sub),
            _ => None,
        })
    }

    fn multiplicative(&mut self) -> Result<Parsed, ExprError> {
        self.chain(Self::negation, |t| match t {
            TokenKind::Star => Some(BinaryOp::Mul),
            TokenKind::Slash => Some(BinaryOp::Div),
            TokenKind::Percent => Some(BinaryOp::Rem),
            _ => None,
        })
    }

    fn negation(&mut self) -> Result<Parsed, ExprError> {
        if self.peek() != &TokenKind::Minus {
            return self.primary();
        }
        let op_span = self.advance().span;
        // A minus sign before a number belongs to the literal, so that i64::MIN can be written.
        let negative = match *self.peek() {
            TokenKind::Int(magnitude) => Some(Scalar::Int(0i64.wrapping_sub_unsigned(magnitude))),
            TokenKind::Float(value) => Some(Scalar::Float(-value)),
            _ => None,
        };
        if let Some(value) = negative {
            let span = op_span.to(self.advance().span);
            return Ok((Ast::Literal { value, span }, 1));
        }
        self.enter(op_span)?;
        let operand = self.negation()?;
        self.leave();
        Self::unary(UnaryOp::Neg, op_span, operand)
    }

    fn primary(&mut self) -> Result<Parsed, ExprError> {
        let token = self.advance();
        let span = token.span;
        let literal = |value| Ok((Ast::Literal { value, span }, 1));
        match token.kind {
            TokenKind::Int(magnitude) => match i64::try_from(magnitude) {
                Ok(value) => literal(Scalar::Int(value)),
                Err(_) => {
                    let message = format!(
                        "integer literal `{}` is too large; the largest int is {}",
                        &self.text[span.start..span.end],
                        i64::MAX
                    );
                    Err(ExprError::new(span, message))
                }
            },
            TokenKind::Float(value) => literal(Scalar::Float(value)),
            TokenKind::Str(value) => literal(Scalar::Str(value)),
            TokenKind::True => literal(Scalar::Bool(true)),
            TokenKind::False => literal(Scalar::Bool(false)),
            TokenKind::QuotedIdent(name) => Ok((Ast::Field { name, span }, 1)),
            TokenKind::Ident(name) if self.peek() == &TokenKind::LParen => self.call(name, span),
            TokenKind::Ident(name) => Ok((Ast::Field { name, span }, 1)),
            TokenKind::LParen => {
                self.enter(span)?;
                let (mut inner, depth) = self.or_expr()?;
                if self.peek() != &TokenKind::RParen {
                    let message = format!(
                        "expected `)` to match the `(` at byte {}, found {}",
                        span.start,
                        self.found()
                    );
                    return Err(self.error_here(message));
                }
                let close = self.advance().span;
                self.leave();
                inner.set_span(span.to(close));
                Ok((inner, depth))
            }
            _ => {
                // Step back so the message and span are about the token that does not fit.
                if token.kind != TokenKind::End {
                    self.pos -= 1;
                }
                let after = match self.pos.checked_sub(1).map(|p| &self.tokens[p]) {
                    Some(previous) => {
                        format!(" after `{}`", &self.text[previous.span.start..previous.span.end])
                    }
                    None => String::new(),
                };
                let message = format!("expected an operand{after}, found {}", self.found());
                Err(self.error_here(message))
            }
        }
    }

    /// `name(arg, ...)`; the name has been consumed and `(` is next.
    fn call(&mut self, name: String, name_span: Span) -> Result<Parsed, ExprError> {
        self.enter(name_span)?;
        self.advance();
        let mut args = Vec::new();
        let mut depth = 1;
        if self.peek() != &TokenKind::RParen {
            loop {
                let (arg, arg_depth) = self.or_expr()?;
                args.push(arg);
                depth = depth.max(arg_depth + 1);
                match self.peek() {
                    TokenKind::Comma => {
                        self.advance();
                    }
                    TokenKind::RParen => break,
                    TokenKind::End => {
                        let message =
                            format!("expected `)` to close the call of `{name}`, found end of expression");
                        return Err(self.error_here(message));
                    }
                    _ => {
                        let message =
                            format!("expected `,` or `)` in the call of `{name}`, found {}", self.found());
                        return Err(self.error_here(message));
                    }
                }
            }
        }
        let close = self.advance().span;
        self.leave();
        let span = name_span.to(close);
        if depth > EXPR_DEPTH_MAX {
            return Err(ExprError::too_deep(span));
        }
        Ok((Ast::Call { name, args, span }, depth))
    }
}

fn comparison_op(token: &TokenKind) -> Option<BinaryOp> {
    Some(match token {
        TokenKind::EqEq => BinaryOp::Eq,
        TokenKind::NotEq => BinaryOp::Ne,
        TokenKind::Lt => BinaryOp::Lt,
        TokenKind::Le => BinaryOp::Le,
        TokenKind::Gt => BinaryOp::Gt,
        TokenKind::Ge => BinaryOp::Ge,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tree as a compact, fully parenthesised string, to check its shape.
    fn shape(ast: &Ast) -> String {
        match ast {
            Ast::Field { name, .. } => name.clone(),
            Ast::Literal { value: Scalar::Str(s), .. } => format!("{s:?}"),
            Ast::Literal { value, .. } => value.to_string(),
            Ast::Unary { op, expr, .. } => format!("({} {})", op.symbol(), shape(expr)),
            Ast::Binary { op, left, right, .. } => {
                format!("({} {} {})", shape(left), op.symbol(), shape(right))
            }
            Ast::Call { name, args, .. } => {
                let args: Vec<String> = args.iter().map(shape).collect();
                format!("{name}[{}]", args.join(", "))
            }
        }
    }

    fn parsed(text: &str) -> String {
        shape(&parse(text).unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    fn error(text: &str) -> (Span, String) {
        let e = parse(text).unwrap_err();
        (e.span, e.message)
    }

    #[test]
    fn precedence_and_associativity() {
        assert_eq!(parsed("a + b * c"), "(a + (b * c))");
        assert_eq!(parsed("a * b + c"), "((a * b) + c)");
        assert_eq!(parsed("a - b - c"), "((a - b) - c)");
        assert_eq!(parsed("a / b % c * d"), "(((a / b) % c) * d)");
        assert_eq!(parsed("a + b == c * d"), "((a + b) == (c * d))");
        assert_eq!(parsed("a or b and c"), "(a or (b and c))");
        assert_eq!(parsed("a and b or c and d"), "((a and b) or (c and d))");
        assert_eq!(parsed("not a == b and c"), "((not (a == b)) and c)");
        assert_eq!(parsed("!a || b && !c"), "((not a) or (b and (not c)))");
        assert_eq!(parsed("not not a"), "(not (not a))");
        assert_eq!(parsed("a < b or c >= d"), "((a < b) or (c >= d))");
        assert_eq!(parsed("value % 2 == 0"), "((value % 2) == 0)");
    }

    #[test]
    fn unary_minus_and_parentheses() {
        assert_eq!(parsed("-a * b"), "((- a) * b)");
        assert_eq!(parsed("-(a * b)"), "(- (a * b))");
        assert_eq!(parsed("- -a"), "(- (- a))");
        assert_eq!(parsed("a - -b"), "(a - (- b))");
        assert_eq!(parsed("(a + b) * c"), "((a + b) * c)");
        assert_eq!(parsed("((a))"), "a");
        assert_eq!(parsed("-9223372036854775808"), i64::MIN.to_string());
        assert_eq!(parsed("-2.5 * x"), "(-2.5 * x)");
        assert_eq!(parsed("- 3 - 4"), "(-3 - 4)");
    }

    #[test]
    fn literals_calls_and_fields() {
        assert_eq!(parsed("'a\\'b' == \"c\\n\""), "(\"a'b\" == \"c\\n\")");
        assert_eq!(parsed("true and FALSE"), "(true and false)");
        assert_eq!(parsed("abs(x)"), "abs[x]");
        assert_eq!(parsed("count()"), "count[]");
        assert_eq!(parsed("concat(a, 'b', lower(c))"), "concat[a, \"b\", lower[c]]");
        assert_eq!(parsed("if(a > 1, b, c + 1)"), "if[(a > 1), b, (c + 1)]");
        assert_eq!(parsed("`odd name` + `abs`"), "(odd name + abs)");
        assert_eq!(error("`abs`(x)").1, "expected an operator or end of expression, found `(`");
        assert_eq!(parsed("1_000 + 2.5e1"), "(1000 + 25.0)");
    }

    #[test]
    fn spans() {
        let ast = parse("(a + b) * abs(c)").unwrap();
        assert_eq!(ast.span(), Span::new(0, 16));
        let Ast::Binary { left, right, .. } = &ast else { panic!("{ast:?}") };
        assert_eq!(left.span(), Span::new(0, 7));
        assert_eq!(right.span(), Span::new(10, 16));
        let Ast::Call { args, .. } = &**right else { panic!("{right:?}") };
        assert_eq!(args[0].span(), Span::new(14, 15));
        assert_eq!(parse("  -5 ").unwrap().span(), Span::new(2, 4));
        assert_eq!(parse("not x").unwrap().span(), Span::new(0, 5));
    }

    #[test]
    fn errors_point_at_the_offending_token() {
        assert_eq!(
            error("value +"),
            (Span::new(7, 7), "expected an operand after `+`, found end of expression".into())
        );
        assert_eq!(
            error("a < b < c"),
            (
                Span::new(6, 7),
                "comparisons do not chain: found `<` after `a < b`; combine comparisons with `and`".into()
            )
        );
        assert_eq!(error("a == b != c").0, Span::new(7, 9));
        assert_eq!(error("value # 2"), (Span::new(6, 7), "unexpected character `#`".into()));
        assert_eq!(
            error("key == 'abc"),
            (Span::new(7, 11), "unclosed string; expected a closing `'`".into())
        );
        assert_eq!(
            error("abs(x"),
            (Span::new(5, 5), "expected `)` to close the call of `abs`, found end of expression".into())
        );
        assert_eq!(
            error("abs(x y)"),
            (Span::new(6, 7), "expected `,` or `)` in the call of `abs`, found `y`".into())
        );
        assert_eq!(
            error("(a + b"),
            (Span::new(6, 6), "expected `)` to match the `(` at byte 0, found end of expression".into())
        );
        assert_eq!(error("a + b)"), (Span::new(5, 6), "unmatched `)`".into()));
        assert_eq!(
            error("a b"),
            (Span::new(2, 3), "expected an operator or end of expression, found `b`".into())
        );
        assert_eq!(error(""), (Span::new(0, 0), "expected an expression, found end of expression".into()));
        assert_eq!(error("  "), (Span::new(2, 2), "expected an expression, found end of expression".into()));
        assert_eq!(error("* 2"), (Span::new(0, 1), "expected an operand, found `*`".into()));
        assert_eq!(error("f(a,)"), (Span::new(4, 5), "expected an operand after `,`, found `)`".into()));
        assert_eq!(error("a == not b").1, "expected an operand after `==`, found `not`");
        assert_eq!(
            error("9223372036854775808 + 1"),
            (
                Span::new(0, 19),
                "integer literal `9223372036854775808` is too large; the largest int is 9223372036854775807"
                    .into()
            )
        );
    }

    #[test]
    fn depth_is_limited() {
        let deep_parens = format!("{}x{}", "(".repeat(1_000), ")".repeat(1_000));
        assert_eq!(error(&deep_parens).1, "expression nests deeper than 64 levels");
        let long_chain = vec!["x"; 2_000].join(" + ");
        assert_eq!(error(&long_chain).1, "expression nests deeper than 64 levels");
        let deep_calls = format!("{}x{}", "abs(".repeat(100), ")".repeat(100));
        assert_eq!(error(&deep_calls).1, "expression nests deeper than 64 levels");
        let unary = format!("{}x", "- ".repeat(1_000));
        assert_eq!(error(&unary).1, "expression nests deeper than 64 levels");
        assert!(parse(&vec!["x"; 60].join(" + ")).is_ok());
        let long = "x".repeat(EXPR_TEXT_BYTES_MAX + 1);
        assert_eq!(
            error(&long).1,
            format!("expression is 16385 bytes long; the limit is {EXPR_TEXT_BYTES_MAX}")
        );
    }
}
