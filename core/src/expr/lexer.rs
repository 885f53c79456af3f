//! Splits expression text into tokens, each with the byte span it came from.

use super::{ExprError, Span};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum TokenKind {
    /// A bare identifier: a field or function name.
    Ident(String),
    /// A backquoted field name, `` `odd name` ``; never a keyword or function.
    QuotedIdent(String),
    /// An integer literal's magnitude, at most 2^63 (which only a negation can use).
    Int(u64),
    Float(f64),
    Str(String),
    True,
    False,
    And,
    Or,
    Not,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    EqEq,
    NotEq,
    Lt,
    Le,
    Gt,
    Ge,
    LParen,
    RParen,
    Comma,
    /// Always the last token, with an empty span at the end of the text.
    End,
}

#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Keywords are matched case-insensitively, as in SQL; a field with such a name needs backquotes.
fn keyword(word: &str) -> Option<TokenKind> {
    const KEYWORDS: [(&str, TokenKind); 5] = [
        ("and", TokenKind::And),
        ("or", TokenKind::Or),
        ("not", TokenKind::Not),
        ("true", TokenKind::True),
        ("false", TokenKind::False),
    ];
    KEYWORDS.into_iter().find(|(k, _)| k.eq_ignore_ascii_case(word)).map(|(_, kind)| kind)
}

/// Whether `name` can be written without backquotes.
pub(crate) fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && keyword(name).is_none()
}

/// Splits `text` into tokens, ending with [`TokenKind::End`].
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let mut lexer = Lexer { text, pos: 0, tokens: Vec::new() };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'t> {
    text: &'t str,
    pos: usize,
    tokens: Vec<Token>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_second(&self) -> Option<char> {
        self.text[self.pos..].chars().nth(1)
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token { kind, span: Span::new(start, self.pos) });
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while let Some(c) = self.peek() {
            let start = self.pos;
            if c.is_whitespace() {
                self.pos += c.len_utf8();
                continue;
            }
            if c.is_ascii_digit() {
                self.number()?;
                continue;
            }
            if c.is_ascii_alphabetic() || c == '_' {
                self.identifier();
                continue;
            }
            let two = |second: char| self.peek_second() == Some(second);
            let (kind, len) = match c {
                '\'' | '"' => {
                    self.string(c)?;
                    continue;
                }
                '`' => {
                    self.quoted_identifier()?;
                    continue;
                }
                '+' => (TokenKind::Plus, 1),
                '-' => (TokenKind::Minus, 1),
                '*' => (TokenKind::Star, 1),
                '/' => (TokenKind::Slash, 1),
                '%' => (TokenKind::Percent, 1),
                '(' => (TokenKind::LParen, 1),
                ')' => (TokenKind::RParen, 1),
                ',' => (TokenKind::Comma, 1),
                '=' if two('=') => (TokenKind::EqEq, 2),
                '!' if two('=') => (TokenKind::NotEq, 2),
                '!' => (TokenKind::Not, 1),
                '<' if two('=') => (TokenKind::Le, 2),
                '<' => (TokenKind::Lt, 1),
                '>' if two('=') => (TokenKind::Ge, 2),
                '>' => (TokenKind::Gt, 1),
                '&' if two('&') => (TokenKind::And, 2),
                '|' if two('|') => (TokenKind::Or, 2),
                '=' => return Err(self.error_at(start, 1, "unexpected `=`; write `==` to compare")),
                '&' => return Err(self.error_at(start, 1, "unexpected `&`; write `and` or `&&`")),
                '|' => return Err(self.error_at(start, 1, "unexpected `|`; write `or` or `||`")),
                other => {
                    let message = format!("unexpected character `{other}`");
                    return Err(self.error_at(start, other.len_utf8(), message));
                }
            };
            self.pos += len;
            self.push(kind, start);
        }
        let end = self.text.len();
        self.tokens.push(Token { kind: TokenKind::End, span: Span::new(end, end) });
        Ok(())
    }

    fn error_at(&self, start: usize, len: usize, message: impl Into<String>) -> ExprError {
        ExprError::new(Span::new(start, start + len), message)
    }

    fn take_while(&mut self, keep: impl Fn(char) -> bool) {
        while let Some(c) = self.peek().filter(|&c| keep(c)) {
            self.pos += c.len_utf8();
        }
    }

    fn identifier(&mut self) {
        let start = self.pos;
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        let word = &self.text[start..self.pos];
        let kind = keyword(word).unwrap_or_else(|| TokenKind::Ident(word.to_owned()));
        self.push(kind, start);
    }

    /// Digits with optional `_` separators, then an optional fraction and exponent.
    fn number(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        let digits = |c: char| c.is_ascii_digit() || c == '_';
        self.take_while(digits);
        let mut is_float = false;
        if self.peek() == Some('.') && self.peek_second().is_some_and(|c| c.is_ascii_digit()) {
            is_float = true;
            self.pos += 1;
            self.take_while(digits);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            is_float = true;
            self.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.pos += 1;
            }
            let exponent_start = self.pos;
            self.take_while(|c| c.is_ascii_digit());
            if self.pos == exponent_start {
                let message = format!(
                    "invalid number `{}`: expected digits after the exponent",
                    &self.text[start..self.pos]
                );
                return Err(ExprError::new(Span::new(start, self.pos), message));
            }
        }
        // `12abc` or `1_`: the number runs into something that cannot follow it.
        self.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
        let written = &self.text[start..self.pos];
        let span = Span::new(start, self.pos);
        let invalid = || ExprError::new(span, format!("invalid number `{written}`"));
        if written.ends_with('_') || written.contains("_.") || written.contains("._") {
            return Err(invalid());
        }
        let cleaned: String = written.chars().filter(|&c| c != '_').collect();
        let kind = if is_float {
            let value: f64 = cleaned.parse().map_err(|_| invalid())?;
            if !value.is_finite() {
                return Err(ExprError::new(span, format!("float literal `{written}` is out of range")));
            }
            TokenKind::Float(value)
        } else {
            let too_large = || {
                let message =
                    format!("integer literal `{written}` is too large; the largest int is {}", i64::MAX);
                ExprError::new(span, message)
            };
            if !cleaned.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let value: u64 = cleaned.parse().map_err(|_| too_large())?;
            if value > i64::MIN.unsigned_abs() {
                return Err(too_large());
            }
            TokenKind::Int(value)
        };
        self.push(kind, start);
        Ok(())
    }

    fn string(&mut self, quote: char) -> Result<(), ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        loop {
            let Some(c) = self.peek() else {
                let message = format!("unclosed string; expected a closing `{quote}`");
                return Err(ExprError::new(Span::new(start, self.text.len()), message));
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            if c == quote {
                break;
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            let escaped = self.peek();
            value.push(match escaped {
                Some('\\') => '\\',
                Some('\'') => '\'',
                Some('"') => '"',
                Some('n') => '\n',
                Some('t') => '\t',
                Some(other) => {
                    let message = format!(
                        "unknown escape `\\{other}` in a string; the escapes are \\\\ \\' \\\" \\n \\t"
                    );
                    return Err(ExprError::new(Span::new(at, self.pos + other.len_utf8()), message));
                }
                None => continue, // reported as an unclosed string on the next turn
            });
            self.pos += 1;
        }
        self.push(TokenKind::Str(value), start);
        Ok(())
    }

    /// `` `name` ``, with ``` `` ``` standing for one backquote inside the name.
    fn quoted_identifier(&mut self) -> Result<(), ExprError> {
        let start = self.pos;
        self.pos += 1;
        let mut name = String::new();
        loop {
            let Some(c) = self.peek() else {
                let message = "unclosed field name; expected a closing backquote";
                return Err(ExprError::new(Span::new(start, self.text.len()), message));
            };
            self.pos += c.len_utf8();
            if c == '`' {
                if self.peek() != Some('`') {
                    break;
                }
                self.pos += 1;
            }
            name.push(c);
        }
        if name.is_empty() {
            return Err(ExprError::new(Span::new(start, self.pos), "empty field name ``"));
        }
        self.push(TokenKind::QuotedIdent(name), start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::TokenKind::*;
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text).unwrap().into_iter().map(|t| t.kind).collect()
    }

    fn error(text: &str) -> (Span, String) {
        let e = tokenize(text).unwrap_err();
        (e.span, e.message)
    }

    #[test]
    fn operators_keywords_and_synonyms() {
        assert_eq!(
            kinds("a+b-c*d/e%f"),
            vec![
                Ident("a".into()),
                Plus,
                Ident("b".into()),
                Minus,
                Ident("c".into()),
                Star,
                Ident("d".into()),
                Slash,
                Ident("e".into()),
                Percent,
                Ident("f".into()),
                End
            ]
        );
        assert_eq!(kinds("== != < <= > >="), vec![EqEq, NotEq, Lt, Le, Gt, Ge, End]);
        assert_eq!(kinds("and && or || not !"), vec![And, And, Or, Or, Not, Not, End]);
        assert_eq!(kinds("AND Or TRUE false"), vec![And, Or, True, False, End]);
        assert_eq!(kinds("(x,y)"), vec![LParen, Ident("x".into()), Comma, Ident("y".into()), RParen, End]);
        assert_eq!(kinds("android"), vec![Ident("android".into()), End]);
    }

    #[test]
    fn spans_are_byte_offsets() {
        let tokens = tokenize("é == 'ü'").unwrap_err();
        assert_eq!(tokens.span, Span::new(0, 2));
        let tokens = tokenize("x <= 'ü' ").unwrap();
        assert_eq!(tokens[1].span, Span::new(2, 4));
        assert_eq!(tokens[2].span, Span::new(5, 9));
        assert_eq!(tokens[3], Token { kind: End, span: Span::new(10, 10) });
    }

    #[test]
    fn numbers() {
        assert_eq!(kinds("42 1_000_000 0"), vec![Int(42), Int(1_000_000), Int(0), End]);
        assert_eq!(
            kinds("1.5 2e3 2E-3 1.25e+2"),
            vec![Float(1.5), Float(2e3), Float(2e-3), Float(125.0), End]
        );
        assert_eq!(kinds("9223372036854775808"), vec![Int(1 << 63), End]);
        assert_eq!(
            error("9223372036854775809"),
            (
                Span::new(0, 19),
                "integer literal `9223372036854775809` is too large; the largest int is 9223372036854775807"
                    .into()
            )
        );
        assert_eq!(error("x + 12abc").0, Span::new(4, 9));
        assert_eq!(error("x + 12abc").1, "invalid number `12abc`");
        assert_eq!(error("1_").1, "invalid number `1_`");
        assert_eq!(error("2e").1, "invalid number `2e`: expected digits after the exponent");
        assert_eq!(error("1e999").1, "float literal `1e999` is out of range");
        assert_eq!(error("1.2.3").1, "invalid number `1.2.3`");
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#"'a\'b' "c\"d" 'e\\f\ng\th' "it's" 'ü'"#),
            vec![
                Str("a'b".into()),
                Str("c\"d".into()),
                Str("e\\f\ng\th".into()),
                Str("it's".into()),
                Str("ü".into()),
                End
            ]
        );
        assert_eq!(error("x == 'abc"), (Span::new(5, 9), "unclosed string; expected a closing `'`".into()));
        assert_eq!(error("\"ab\\"), (Span::new(0, 4), "unclosed string; expected a closing `\"`".into()));
        let (span, message) = error(r"'a\qb'");
        assert_eq!(span, Span::new(2, 4));
        assert!(message.starts_with("unknown escape `\\q` in a string"), "{message}");
    }

    #[test]
    fn quoted_identifiers() {
        assert_eq!(
            kinds("`odd name` `a``b` `and`"),
            vec![QuotedIdent("odd name".into()), QuotedIdent("a`b".into()), QuotedIdent("and".into()), End]
        );
        assert_eq!(
            error("`abc"),
            (Span::new(0, 4), "unclosed field name; expected a closing backquote".into())
        );
        assert_eq!(error("x + ``"), (Span::new(4, 6), "empty field name ``".into()));
    }

    #[test]
    fn unexpected_characters() {
        assert_eq!(error("value # 2"), (Span::new(6, 7), "unexpected character `#`".into()));
        assert_eq!(error("a = b"), (Span::new(2, 3), "unexpected `=`; write `==` to compare".into()));
        assert_eq!(error("a & b").1, "unexpected `&`; write `and` or `&&`");
        assert_eq!(error("a | b").1, "unexpected `|`; write `or` or `||`");
    }

    #[test]
    fn plain_identifiers() {
        assert!(is_plain_identifier("value_2"));
        assert!(is_plain_identifier("_x"));
        assert!(!is_plain_identifier("2x"));
        assert!(!is_plain_identifier("odd name"));
        assert!(!is_plain_identifier("NOT"));
        assert!(!is_plain_identifier(""));
    }
}
