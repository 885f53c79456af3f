//! Column-at-a-time loops: the only code that touches every row.
//!
//! Each kernel takes its operation as a closure and is instantiated once per operation, so the
//! inner loop is straight-line code over slices that the compiler can unroll and vectorise. An
//! operand is a [`Vals`]: a column borrowed from the batch, a vector computed by a child node, or
//! one constant for every row. Constants are never broadcast into vectors, and a computed vector
//! is overwritten in place when it is not needed any more.

use super::node::{ArithOp, CmpOp};
use super::EvalError;

/// The values of one operand for every row of a batch.
#[derive(Debug)]
pub(crate) enum Vals<'a, T> {
    /// A column of the input batch.
    Borrowed(&'a [T]),
    /// Computed by a child node; free to overwrite.
    Owned(Vec<T>),
    /// The same value for every row.
    Const(T),
}

impl<T: Copy> Vals<'_, T> {
    /// The per-row values, or `None` for a constant.
    pub fn as_slice(&self) -> Option<&[T]> {
        match self {
            Vals::Borrowed(s) => Some(s),
            Vals::Owned(v) => Some(v),
            Vals::Const(_) => None,
        }
    }

    pub fn into_vec(self, rows: usize) -> Vec<T> {
        match self {
            Vals::Borrowed(s) => s.to_vec(),
            Vals::Owned(v) => v,
            Vals::Const(c) => vec![c; rows],
        }
    }

    /// Appends the values for `rows` rows to `out`.
    pub fn extend_into(&self, rows: usize, out: &mut Vec<T>) {
        match self {
            Vals::Borrowed(s) => out.extend_from_slice(s),
            Vals::Owned(v) => out.extend_from_slice(v),
            Vals::Const(c) => out.resize(out.len() + rows, *c),
        }
    }
}

/// `f` of every value, into a new vector.
pub(crate) fn map<T: Copy, U>(a: Vals<'_, T>, f: impl Fn(T) -> U) -> Vals<'static, U> {
    match a {
        Vals::Const(x) => Vals::Const(f(x)),
        a => {
            let a = a.as_slice().expect("not a constant");
            Vals::Owned(a.iter().map(|&x| f(x)).collect())
        }
    }
}

/// `f` of every value, overwriting a computed vector rather than allocating.
pub(crate) fn map_same<T: Copy>(a: Vals<'_, T>, f: impl Fn(T) -> T) -> Vals<'_, T> {
    match a {
        Vals::Const(x) => Vals::Const(f(x)),
        Vals::Borrowed(s) => Vals::Owned(s.iter().map(|&x| f(x)).collect()),
        Vals::Owned(mut v) => {
            for x in &mut v {
                *x = f(*x);
            }
            Vals::Owned(v)
        }
    }
}

/// `f(a, b)` row by row, overwriting a computed operand's vector rather than allocating.
pub(crate) fn zip_same<'a, T: Copy>(a: Vals<'a, T>, b: Vals<'a, T>, f: impl Fn(T, T) -> T) -> Vals<'a, T> {
    match (a, b) {
        (Vals::Const(x), Vals::Const(y)) => Vals::Const(f(x, y)),
        (Vals::Owned(mut v), Vals::Const(y)) => {
            v.iter_mut().for_each(|x| *x = f(*x, y));
            Vals::Owned(v)
        }
        (Vals::Const(x), Vals::Owned(mut v)) => {
            v.iter_mut().for_each(|y| *y = f(x, *y));
            Vals::Owned(v)
        }
        (Vals::Owned(mut v), b) => {
            let b = b.as_slice().expect("not a constant");
            assert_eq!(v.len(), b.len());
            v.iter_mut().zip(b).for_each(|(x, &y)| *x = f(*x, y));
            Vals::Owned(v)
        }
        (a, Vals::Owned(mut v)) => {
            let a = a.as_slice().expect("not a constant");
            assert_eq!(a.len(), v.len());
            v.iter_mut().zip(a).for_each(|(y, &x)| *y = f(x, *y));
            Vals::Owned(v)
        }
        (a, b) => {
            let mut out = Vec::new();
            zip_into(&a, &b, 0, &mut out, f);
            Vals::Owned(out)
        }
    }
}

/// `f(a, b)` row by row, appended to `out`. `rows` is used only when both are constants.
pub(crate) fn zip_into<T: Copy, U: Clone>(
    a: &Vals<'_, T>,
    b: &Vals<'_, T>,
    rows: usize,
    out: &mut Vec<U>,
    f: impl Fn(T, T) -> U,
) {
    match (a.as_slice(), b.as_slice()) {
        (Some(a), Some(b)) => {
            assert_eq!(a.len(), b.len());
            out.extend(a.iter().zip(b).map(|(&x, &y)| f(x, y)));
        }
        (Some(a), None) => {
            let Vals::Const(y) = *b else { unreachable!() };
            out.extend(a.iter().map(|&x| f(x, y)));
        }
        (None, Some(b)) => {
            let Vals::Const(x) = *a else { unreachable!() };
            out.extend(b.iter().map(|&y| f(x, y)));
        }
        (None, None) => {
            let (Vals::Const(x), Vals::Const(y)) = (a, b) else { unreachable!() };
            out.resize(out.len() + rows, f(*x, *y));
        }
    }
}

/// `a op b` for every row, appended to `out`.
pub(crate) fn compare_into<T: Copy + PartialOrd>(
    op: CmpOp,
    a: &Vals<'_, T>,
    b: &Vals<'_, T>,
    rows: usize,
    out: &mut Vec<bool>,
) {
    match op {
        CmpOp::Eq => zip_into(a, b, rows, out, |x, y| x == y),
        CmpOp::Ne => zip_into(a, b, rows, out, |x, y| x != y),
        CmpOp::Lt => zip_into(a, b, rows, out, |x, y| x < y),
        CmpOp::Le => zip_into(a, b, rows, out, |x, y| x <= y),
        CmpOp::Gt => zip_into(a, b, rows, out, |x, y| x > y),
        CmpOp::Ge => zip_into(a, b, rows, out, |x, y| x >= y),
    }
}

/// `a op b` for every row, as a new vector or a constant.
pub(crate) fn compare<T: Copy + PartialOrd>(
    op: CmpOp,
    a: &Vals<'_, T>,
    b: &Vals<'_, T>,
    rows: usize,
) -> Vals<'static, bool> {
    if let (Vals::Const(_), Vals::Const(_)) = (a, b) {
        let mut out = Vec::with_capacity(1);
        compare_into(op, a, b, 1, &mut out);
        return Vals::Const(out[0]);
    }
    let mut out = Vec::with_capacity(rows);
    compare_into(op, a, b, rows, &mut out);
    Vals::Owned(out)
}

/// Java `long` arithmetic: wrapping, division truncating toward zero, remainder with the
/// dividend's sign, and an error for a zero divisor in any of the `rows` rows.
pub(crate) fn int_arith<'a>(
    op: ArithOp,
    a: Vals<'a, i64>,
    b: Vals<'a, i64>,
    rows: usize,
) -> Result<Vals<'a, i64>, EvalError> {
    let divides = matches!(op, ArithOp::Div | ArithOp::Rem);
    if divides {
        let any_zero = match &b {
            Vals::Const(d) => *d == 0 && rows > 0,
            // A fold rather than `contains`, so the scan has no early exit and vectorises.
            b => b.as_slice().expect("not a constant").iter().fold(false, |z, &d| z | (d == 0)),
        };
        if any_zero {
            return Err(EvalError::DivisionByZero);
        }
        if let Vals::Const(0) = b {
            // A batch without rows: no result is needed.
            return Ok(Vals::Owned(Vec::new()));
        }
    }
    Ok(match op {
        ArithOp::Add => zip_same(a, b, i64::wrapping_add),
        ArithOp::Sub => zip_same(a, b, i64::wrapping_sub),
        ArithOp::Mul => zip_same(a, b, i64::wrapping_mul),
        // No divisor is zero (checked above), so these never panic.
        ArithOp::Div => zip_same(a, b, i64::wrapping_div),
        ArithOp::Rem => zip_same(a, b, i64::wrapping_rem),
    })
}

/// IEEE double arithmetic; `%` is `fmod`, as Java's.
pub(crate) fn float_arith<'a>(op: ArithOp, a: Vals<'a, f64>, b: Vals<'a, f64>) -> Vals<'a, f64> {
    match op {
        ArithOp::Add => zip_same(a, b, |x, y| x + y),
        ArithOp::Sub => zip_same(a, b, |x, y| x - y),
        ArithOp::Mul => zip_same(a, b, |x, y| x * y),
        ArithOp::Div => zip_same(a, b, |x, y| x / y),
        ArithOp::Rem => zip_same(a, b, |x, y| x % y),
    }
}

/// Per row, `a` where `cond` holds and `b` elsewhere. Both are evaluated for every row.
pub(crate) fn select<T: Copy>(cond: &[bool], a: &Vals<'_, T>, b: &Vals<'_, T>) -> Vec<T> {
    let pick = |c: bool, x: T, y: T| if c { x } else { y };
    match (a, b) {
        (Vals::Const(x), Vals::Const(y)) => cond.iter().map(|&c| pick(c, *x, *y)).collect(),
        (Vals::Const(x), b) => {
            let b = b.as_slice().expect("not a constant");
            cond.iter().zip(b).map(|(&c, &y)| pick(c, *x, y)).collect()
        }
        (a, Vals::Const(y)) => {
            let a = a.as_slice().expect("not a constant");
            cond.iter().zip(a).map(|(&c, &x)| pick(c, x, *y)).collect()
        }
        (a, b) => {
            let (a, b) = (a.as_slice().expect("checked"), b.as_slice().expect("checked"));
            assert!(a.len() == cond.len() && b.len() == cond.len());
            cond.iter().zip(a).zip(b).map(|((&c, &x), &y)| pick(c, x, y)).collect()
        }
    }
}

/// Interleaves values computed for subsets of rows: `a` holds one value per row where `cond`
/// holds, `b` one per other row (or either is a constant).
pub(crate) fn merge<T: Copy>(cond: &[bool], a: &Vals<'_, T>, b: &Vals<'_, T>) -> Vec<T> {
    let (mut next_a, mut next_b) = (0, 0);
    let mut take = |c: bool| {
        let (vals, next) = if c { (a, &mut next_a) } else { (b, &mut next_b) };
        let value = match vals {
            Vals::Const(v) => *v,
            vals => vals.as_slice().expect("not a constant")[*next],
        };
        *next += 1;
        value
    };
    cond.iter().map(|&c| take(c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned<T: Copy>(v: &[T]) -> Vals<'static, T> {
        Vals::Owned(v.to_vec())
    }

    #[test]
    fn zip_same_covers_every_operand_shape() {
        let sub = |a, b| zip_same(a, b, i64::wrapping_sub).into_vec(3);
        let x = [10, 20, 30];
        let y = [1, 2, 3];
        assert_eq!(sub(Vals::Borrowed(&x), Vals::Borrowed(&y)), vec![9, 18, 27]);
        assert_eq!(sub(owned(&x), Vals::Borrowed(&y)), vec![9, 18, 27]);
        assert_eq!(sub(Vals::Borrowed(&x), owned(&y)), vec![9, 18, 27]);
        assert_eq!(sub(owned(&x), owned(&y)), vec![9, 18, 27]);
        assert_eq!(sub(Vals::Borrowed(&x), Vals::Const(1)), vec![9, 19, 29]);
        assert_eq!(sub(owned(&x), Vals::Const(1)), vec![9, 19, 29]);
        assert_eq!(sub(Vals::Const(100), Vals::Borrowed(&y)), vec![99, 98, 97]);
        assert_eq!(sub(Vals::Const(100), owned(&y)), vec![99, 98, 97]);
        assert!(matches!(zip_same(Vals::Const(5), Vals::Const(3), i64::wrapping_sub), Vals::Const(2)));
    }

    #[test]
    fn compare_shapes() {
        let x = [1.0, f64::NAN, 3.0];
        let mut out = vec![true; 7];
        out.clear();
        compare_into(CmpOp::Ge, &Vals::Borrowed(&x), &Vals::Const(2.0), 3, &mut out);
        assert_eq!(out, vec![false, false, true]);
        out.clear();
        compare_into(CmpOp::Ne, &Vals::Borrowed(&x), &Vals::Borrowed(&x), 3, &mut out);
        assert_eq!(out, vec![false, true, false]);
        assert!(matches!(compare(CmpOp::Lt, &Vals::Const(1), &Vals::Const(2), 9), Vals::Const(true)));
        out.clear();
        compare_into(CmpOp::Lt, &Vals::Const(1), &Vals::Const(2), 2, &mut out);
        assert_eq!(out, vec![true, true]);
    }

    #[test]
    fn int_arith_checks_divisors() {
        let x = [7, -7];
        let div = |b| int_arith(ArithOp::Div, Vals::Borrowed(&x), b, 2).map(|v| v.into_vec(2));
        assert_eq!(div(Vals::Borrowed(&[2, 2])), Ok(vec![3, -3]));
        assert_eq!(div(Vals::Borrowed(&[2, 0])), Err(EvalError::DivisionByZero));
        assert_eq!(div(Vals::Const(0)), Err(EvalError::DivisionByZero));
        let empty = int_arith(ArithOp::Rem, Vals::Borrowed(&[]), Vals::Const(0), 0).unwrap();
        assert_eq!(empty.into_vec(0), Vec::<i64>::new());
    }

    #[test]
    fn select_and_merge() {
        let cond = [true, false, true];
        let a = [1, 2, 3];
        let b = [10, 20, 30];
        assert_eq!(select(&cond, &Vals::Borrowed(&a), &Vals::Borrowed(&b)), vec![1, 20, 3]);
        assert_eq!(select(&cond, &Vals::Const(0), &Vals::Borrowed(&b)), vec![0, 20, 0]);
        assert_eq!(select(&cond, &Vals::Borrowed(&a), &Vals::Const(0)), vec![1, 0, 3]);
        assert_eq!(select(&cond, &Vals::Const(1), &Vals::Const(0)), vec![1, 0, 1]);
        assert_eq!(merge(&cond, &Vals::Borrowed(&[5, 6]), &Vals::Borrowed(&[9])), vec![5, 9, 6]);
        assert_eq!(merge(&cond, &Vals::Const(5), &Vals::Borrowed(&[9])), vec![5, 9, 5]);
    }
}
