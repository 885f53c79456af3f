//! Integer division and remainder by a constant, without a hardware divide.
//!
//! A 64-bit `idiv` costs tens of cycles and does not vectorise, which alone would blow the
//! per-row budget of `value % 2 == 0`. Dividing by a constant can instead be done with shifts
//! (powers of two) or a multiply-high by a precomputed "magic" reciprocal (Granlund and
//! Montgomery; Hacker's Delight, chapter 10). Results equal Java's `/` and `%` on `long`
//! (`i64::wrapping_div` and `wrapping_rem`) for every dividend; the tests check that.

use super::kernels::{map_same, Vals};
use super::node::DivOp;

/// A non-zero divisor, prepared for fast repeated division.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Divisor {
    divisor: i64,
    strategy: Strategy,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Strategy {
    /// Divisor 1.
    One,
    /// Divisor -1: the quotient is the wrapping negation (so `i64::MIN / -1 == i64::MIN`).
    MinusOne,
    /// Divisor ±2^shift with `1 <= shift <= 62`.
    PowerOfTwo { shift: u32, negative: bool },
    /// Divisor `i64::MIN`: only `i64::MIN` itself has a non-zero quotient.
    MinValue,
    /// Any other divisor: a multiply-high by `multiplier`, a correction, and a shift.
    Magic { multiplier: i64, shift: u32, fixup: Fixup },
}

/// The correction Hacker's Delight applies after the multiply-high, fixed by the signs of the
/// divisor and the multiplier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fixup {
    None,
    AddDividend,
    SubtractDividend,
}

impl Divisor {
    /// `None` for zero, which cannot be prepared: division by it is an error per row.
    pub fn new(divisor: i64) -> Option<Divisor> {
        let strategy = match divisor {
            0 => return None,
            1 => Strategy::One,
            -1 => Strategy::MinusOne,
            i64::MIN => Strategy::MinValue,
            d if d.unsigned_abs().is_power_of_two() => {
                Strategy::PowerOfTwo { shift: d.unsigned_abs().trailing_zeros(), negative: d < 0 }
            }
            d => {
                let (multiplier, shift) = magic(d);
                let fixup = match (d > 0, multiplier < 0) {
                    (true, true) => Fixup::AddDividend,
                    (false, false) => Fixup::SubtractDividend,
                    _ => Fixup::None,
                };
                Strategy::Magic { multiplier, shift, fixup }
            }
        };
        Some(Divisor { divisor, strategy })
    }

    /// `x / d` or `x % d` for every value.
    pub fn apply<'a>(&self, op: DivOp, values: Vals<'a, i64>) -> Vals<'a, i64> {
        let d = self.divisor;
        // One loop per strategy, so each is a straight line of arithmetic the compiler can
        // vectorise; the strategy is matched once per batch, not per row.
        match (self.strategy, op) {
            (Strategy::One, DivOp::Div) => values,
            (Strategy::MinusOne, DivOp::Div) => map_same(values, i64::wrapping_neg),
            (Strategy::One | Strategy::MinusOne, DivOp::Rem) => map_same(values, |_| 0),
            (Strategy::MinValue, DivOp::Div) => map_same(values, |x| (x == i64::MIN) as i64),
            (Strategy::MinValue, DivOp::Rem) => map_same(values, |x| if x == i64::MIN { 0 } else { x }),
            (Strategy::PowerOfTwo { shift, negative: false }, DivOp::Div) => {
                map_same(values, |x| pow2_quotient(x, shift))
            }
            (Strategy::PowerOfTwo { shift, negative: true }, DivOp::Div) => {
                map_same(values, |x| pow2_quotient(x, shift).wrapping_neg())
            }
            (Strategy::PowerOfTwo { shift, .. }, DivOp::Rem) => {
                map_same(values, |x| pow2_remainder(x, shift))
            }
            (Strategy::Magic { multiplier, shift, fixup }, op) => {
                let m = multiplier;
                match (fixup, op) {
                    (Fixup::None, DivOp::Div) => map_same(values, |x| magic_q::<0>(x, m, shift)),
                    (Fixup::AddDividend, DivOp::Div) => map_same(values, |x| magic_q::<1>(x, m, shift)),
                    (Fixup::SubtractDividend, DivOp::Div) => map_same(values, |x| magic_q::<-1>(x, m, shift)),
                    (Fixup::None, DivOp::Rem) => {
                        map_same(values, |x| x.wrapping_sub(magic_q::<0>(x, m, shift).wrapping_mul(d)))
                    }
                    (Fixup::AddDividend, DivOp::Rem) => {
                        map_same(values, |x| x.wrapping_sub(magic_q::<1>(x, m, shift).wrapping_mul(d)))
                    }
                    (Fixup::SubtractDividend, DivOp::Rem) => {
                        map_same(values, |x| x.wrapping_sub(magic_q::<-1>(x, m, shift).wrapping_mul(d)))
                    }
                }
            }
        }
    }
}

/// `x / 2^shift` rounded toward zero: add `2^shift - 1` to negative dividends before shifting.
#[inline(always)]
fn pow2_quotient(x: i64, shift: u32) -> i64 {
    let bias = ((x >> 63) as u64 >> (64 - shift)) as i64;
    (x + bias) >> shift
}

/// `x % ±2^shift` with the dividend's sign: `x` minus its quotient times `2^shift`.
#[inline(always)]
fn pow2_remainder(x: i64, shift: u32) -> i64 {
    let bias = ((x >> 63) as u64 >> (64 - shift)) as i64;
    x.wrapping_sub((x + bias) & (-1i64 << shift))
}

/// The quotient by the divisor whose magic numbers are `m` and `shift`; `FIXUP` is 0, 1 or -1
/// times the dividend to add after the multiply-high.
#[inline(always)]
fn magic_q<const FIXUP: i64>(x: i64, m: i64, shift: u32) -> i64 {
    let high = ((i128::from(x) * i128::from(m)) >> 64) as i64;
    let q = match FIXUP {
        1 => high.wrapping_add(x),
        -1 => high.wrapping_sub(x),
        _ => high,
    } >> shift;
    // Round toward zero: add one to a negative quotient.
    q.wrapping_add((q as u64 >> 63) as i64)
}

/// The magic multiplier and shift for signed division by `d`, where `|d| >= 2` and `d` is not
/// `i64::MIN` (Hacker's Delight, figure 10-1, widened to 64 bits).
fn magic(d: i64) -> (i64, u32) {
    assert!(d.unsigned_abs() >= 2 && d != i64::MIN, "magic numbers for divisor {d}");
    const TWO63: u64 = 1 << 63;
    let ad = d.unsigned_abs();
    let t = TWO63 + ((d as u64) >> 63);
    let anc = t - 1 - t % ad; // |nc|
    let mut p = 63u32;
    let mut q1 = TWO63 / anc;
    let mut r1 = TWO63 - q1 * anc;
    let mut q2 = TWO63 / ad;
    let mut r2 = TWO63 - q2 * ad;
    loop {
        p += 1;
        q1 = q1.wrapping_mul(2);
        r1 = r1.wrapping_mul(2);
        if r1 >= anc {
            q1 = q1.wrapping_add(1);
            r1 = r1.wrapping_sub(anc);
        }
        q2 = q2.wrapping_mul(2);
        r2 = r2.wrapping_mul(2);
        if r2 >= ad {
            q2 = q2.wrapping_add(1);
            r2 = r2.wrapping_sub(ad);
        }
        let delta = ad - r2;
        if !(q1 < delta || (q1 == delta && r1 == 0)) {
            break;
        }
    }
    let m = q2.wrapping_add(1) as i64;
    let m = if d < 0 { m.wrapping_neg() } else { m };
    (m, p - 64)
}

#[cfg(test)]
mod tests {
    use super::{magic, DivOp, Divisor, Vals};
    use proptest::prelude::*;

    fn divide(d: i64, op: DivOp, xs: &[i64]) -> Vec<i64> {
        let divisor = Divisor::new(d).expect("non-zero");
        divisor.apply(op, Vals::Borrowed(xs)).into_vec(xs.len())
    }

    fn check(d: i64, xs: &[i64]) {
        let quotients = divide(d, DivOp::Div, xs);
        let remainders = divide(d, DivOp::Rem, xs);
        for (i, &x) in xs.iter().enumerate() {
            assert_eq!(quotients[i], x.wrapping_div(d), "{x} / {d}");
            assert_eq!(remainders[i], x.wrapping_rem(d), "{x} % {d}");
        }
    }

    const SPECIAL: [i64; 14] =
        [0, 1, -1, 2, -2, 7, -7, 1000, -1000, i64::MAX, i64::MAX - 1, i64::MIN, i64::MIN + 1, i64::MIN / 3];

    #[test]
    fn matches_java_for_many_divisors() {
        let mut dividends: Vec<i64> = SPECIAL.to_vec();
        dividends.extend(-300..300);
        let mut divisors: Vec<i64> = (-130..130).filter(|&d| d != 0).collect();
        for shift in 1..63 {
            divisors.extend([1i64 << shift, -(1i64 << shift), (1i64 << shift) + 1, (1i64 << shift) - 1]);
            divisors.extend([-(1i64 << shift) + 1, -(1i64 << shift) - 1, 3i64.wrapping_shl(shift)]);
        }
        divisors.extend([i64::MAX, i64::MIN, i64::MIN + 1, i64::MAX - 1, 1_000_000_007, -641]);
        for d in divisors {
            // Dividends near multiples of the divisor are where rounding goes wrong.
            let mut xs = dividends.clone();
            for k in [1i64, 2, 3, 1 << 20, i64::MAX / 2] {
                let multiple = d.wrapping_mul(k);
                xs.extend([multiple, multiple.wrapping_add(1), multiple.wrapping_sub(1)]);
            }
            check(d, &xs);
        }
    }

    #[test]
    fn java_examples() {
        assert_eq!(divide(2, DivOp::Div, &[-7, 7]), vec![-3, 3]);
        assert_eq!(divide(2, DivOp::Rem, &[-7, 7]), vec![-1, 1]);
        assert_eq!(divide(-1, DivOp::Div, &[i64::MIN]), vec![i64::MIN]);
        assert_eq!(divide(-1, DivOp::Rem, &[i64::MIN]), vec![0]);
        assert_eq!(divide(-3, DivOp::Rem, &[-7, 7]), vec![-1, 1]);
    }

    #[test]
    fn strategies() {
        assert_eq!(Divisor::new(0), None);
        let pow2 = Divisor::new(-8).unwrap();
        assert_eq!(pow2.strategy, super::Strategy::PowerOfTwo { shift: 3, negative: true });
        assert_eq!(pow2.divisor, -8);
        // Hacker's Delight, table 10-2: 64-bit magic numbers for 3, 5 and 7.
        assert_eq!(magic(3), (0x5555_5555_5555_5556, 0));
        assert_eq!(magic(5), (0x6666_6666_6666_6667, 1));
        assert_eq!(magic(7), (0x4924_9249_2492_4925, 1));
    }

    #[test]
    fn constant_input_stays_constant() {
        let seven = Divisor::new(7).unwrap();
        assert!(matches!(seven.apply(DivOp::Div, Vals::Const(-50)), Vals::Const(-7)));
        assert!(matches!(seven.apply(DivOp::Rem, Vals::Const(-50)), Vals::Const(-1)));
    }

    proptest! {
        #[test]
        fn matches_java_for_random_operands(
            d in any::<i64>().prop_filter("non-zero", |&d| d != 0),
            xs in proptest::collection::vec(any::<i64>(), 1..20),
        ) {
            check(d, &xs);
            check(d, &SPECIAL);
        }

        #[test]
        fn matches_java_for_small_divisors(d in -5000i64..5000, xs in proptest::collection::vec(any::<i64>(), 1..20)) {
            prop_assume!(d != 0);
            check(d, &xs);
        }
    }
}
