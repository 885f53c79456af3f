//! The typed node tree that `compile` builds and `eval` runs.
//!
//! There is one node enum per physical value type (`i64`, `f64`, `bool`, strings), so every
//! operation knows its operand types statically and evaluation needs no type dispatch per row.
//! Conversions (an `int` widened to `float`, a float rounded to `int`) are explicit nodes.
//! `int` and `timestamp` share [`IntNode`]; [`Node`] records which one the result is.

use super::divide::Divisor;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Rem,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Integer division or remainder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DivOp {
    Div,
    Rem,
}

/// How a float becomes an int.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ToInt {
    /// Toward zero, saturating, NaN to 0: Java's `(long) x`.
    Truncate,
    /// `floor(x + 0.5)`, then as `Truncate`.
    Round,
}

/// A whole expression: its root node, tagged with the logical result type.
#[derive(Clone, Debug)]
pub(crate) enum Node {
    Int(IntNode),
    Timestamp(IntNode),
    Float(FloatNode),
    Bool(BoolNode),
    Str(StrNode),
}

/// `if(cond, then, otherwise)` whose branches are of one node type.
#[derive(Clone, Debug)]
pub(crate) struct IfNode<N> {
    pub cond: BoolNode,
    pub then: N,
    pub otherwise: N,
}

#[derive(Clone, Debug)]
pub(crate) enum IntNode {
    Field(usize),
    Const(i64),
    Arith(ArithOp, Box<IntNode>, Box<IntNode>),
    /// Division or remainder by a non-zero constant: no zero check, and no hardware division.
    DivBy(DivOp, Box<IntNode>, Divisor),
    Neg(Box<IntNode>),
    Abs(Box<IntNode>),
    FromFloat(ToInt, Box<FloatNode>),
    /// Characters (Unicode scalar values) in a string.
    Length(Box<StrNode>),
    If(Box<IfNode<IntNode>>),
}

#[derive(Clone, Debug)]
pub(crate) enum FloatNode {
    Field(usize),
    Const(f64),
    Arith(ArithOp, Box<FloatNode>, Box<FloatNode>),
    Neg(Box<FloatNode>),
    Abs(Box<FloatNode>),
    Floor(Box<FloatNode>),
    Ceil(Box<FloatNode>),
    FromInt(Box<IntNode>),
    If(Box<IfNode<FloatNode>>),
}

#[derive(Clone, Debug)]
pub(crate) enum BoolNode {
    Field(usize),
    Const(bool),
    /// Int with int, timestamp with timestamp, or the two mixed.
    CmpInt(CmpOp, Box<IntNode>, Box<IntNode>),
    CmpFloat(CmpOp, Box<FloatNode>, Box<FloatNode>),
    CmpStr(CmpOp, Box<StrNode>, Box<StrNode>),
    /// Only `Eq` and `Ne`.
    CmpBool(CmpOp, Box<BoolNode>, Box<BoolNode>),
    And(Box<BoolNode>, Box<BoolNode>),
    Or(Box<BoolNode>, Box<BoolNode>),
    Not(Box<BoolNode>),
    If(Box<IfNode<BoolNode>>),
}

#[derive(Clone, Debug)]
pub(crate) enum StrNode {
    Field(usize),
    Const(String),
    Lower(Box<StrNode>),
    Upper(Box<StrNode>),
    Concat(Vec<StrNode>),
    If(Box<IfNode<StrNode>>),
}

/// Collects the indexes of the fields a node reads (unsorted, with repeats).
pub(crate) trait Fields {
    fn fields(&self, out: &mut Vec<usize>);

    fn reads_fields(&self) -> bool {
        let mut fields = Vec::new();
        self.fields(&mut fields);
        !fields.is_empty()
    }
}

impl<N: Fields> Fields for IfNode<N> {
    fn fields(&self, out: &mut Vec<usize>) {
        self.cond.fields(out);
        self.then.fields(out);
        self.otherwise.fields(out);
    }
}

impl Fields for IntNode {
    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            IntNode::Field(i) => out.push(*i),
            IntNode::Const(_) => {}
            IntNode::Arith(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            IntNode::DivBy(_, a, _) | IntNode::Neg(a) | IntNode::Abs(a) => a.fields(out),
            IntNode::FromFloat(_, a) => a.fields(out),
            IntNode::Length(a) => a.fields(out),
            IntNode::If(node) => node.fields(out),
        }
    }
}

impl Fields for FloatNode {
    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            FloatNode::Field(i) => out.push(*i),
            FloatNode::Const(_) => {}
            FloatNode::Arith(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            FloatNode::Neg(a) | FloatNode::Abs(a) | FloatNode::Floor(a) | FloatNode::Ceil(a) => a.fields(out),
            FloatNode::FromInt(a) => a.fields(out),
            FloatNode::If(node) => node.fields(out),
        }
    }
}

impl Fields for BoolNode {
    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            BoolNode::Field(i) => out.push(*i),
            BoolNode::Const(_) => {}
            BoolNode::CmpInt(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            BoolNode::CmpFloat(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            BoolNode::CmpStr(_, a, b) => {
                a.fields(out);
                b.fields(out);
            }
            BoolNode::CmpBool(_, a, b) | BoolNode::And(a, b) | BoolNode::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            BoolNode::Not(a) => a.fields(out),
            BoolNode::If(node) => node.fields(out),
        }
    }
}

impl Fields for StrNode {
    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            StrNode::Field(i) => out.push(*i),
            StrNode::Const(_) => {}
            StrNode::Lower(a) | StrNode::Upper(a) => a.fields(out),
            StrNode::Concat(args) => args.iter().for_each(|a| a.fields(out)),
            StrNode::If(node) => node.fields(out),
        }
    }
}

impl Fields for Node {
    fn fields(&self, out: &mut Vec<usize>) {
        match self {
            Node::Int(n) | Node::Timestamp(n) => n.fields(out),
            Node::Float(n) => n.fields(out),
            Node::Bool(n) => n.fields(out),
            Node::Str(n) => n.fields(out),
        }
    }
}

impl Node {
    pub fn data_type(&self) -> crate::types::DataType {
        use crate::types::DataType;
        match self {
            Node::Int(_) => DataType::Int,
            Node::Timestamp(_) => DataType::Timestamp,
            Node::Float(_) => DataType::Float,
            Node::Bool(_) => DataType::Bool,
            Node::Str(_) => DataType::Str,
        }
    }

    pub fn as_field(&self) -> Option<usize> {
        match self {
            Node::Int(IntNode::Field(i))
            | Node::Timestamp(IntNode::Field(i))
            | Node::Float(FloatNode::Field(i))
            | Node::Bool(BoolNode::Field(i))
            | Node::Str(StrNode::Field(i)) => Some(*i),
            _ => None,
        }
    }

    pub fn is_const(&self) -> bool {
        matches!(
            self,
            Node::Int(IntNode::Const(_))
                | Node::Timestamp(IntNode::Const(_))
                | Node::Float(FloatNode::Const(_))
                | Node::Bool(BoolNode::Const(_))
                | Node::Str(StrNode::Const(_))
        )
    }
}
