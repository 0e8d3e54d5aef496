//! The unsigned big integer NumPy's Dragon4 computes with.

use std::cmp::Ordering;

/// A minimal unsigned big integer for Dragon4: little-endian 32-bit limbs without
/// high zero limbs (zero has none).
#[derive(Clone, Debug)]
pub(super) struct BigUint {
    /// The limbs, least significant first.
    limbs: Vec<u32>,
}

impl BigUint {
    /// The value `v`.
    pub(super) fn from_u64(v: u64) -> Self {
        let mut n = BigUint {
            limbs: vec![v as u32, (v >> 32) as u32],
        };
        n.normalize();
        n
    }

    /// The value `2**exp`.
    pub(super) fn pow2(exp: u32) -> Self {
        let mut limbs = vec![0; exp as usize / 32 + 1];
        limbs[exp as usize / 32] = 1 << (exp % 32);
        BigUint { limbs }
    }

    /// Drop high zero limbs.
    pub(super) fn normalize(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    /// Whether the value is zero.
    pub(super) fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    /// `self *= m`.
    pub(super) fn mul_small(&mut self, m: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(m) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
        self.normalize();
    }

    /// `self *= 10**exp`.
    pub(super) fn mul_pow10(&mut self, mut exp: u32) {
        while exp >= 9 {
            self.mul_small(1_000_000_000);
            exp -= 9;
        }
        if exp > 0 {
            self.mul_small(10u32.pow(exp));
        }
    }

    /// `self <<= bits`.
    pub(super) fn shl(&mut self, bits: u32) {
        if self.is_zero() {
            return;
        }
        let (whole, part) = ((bits / 32) as usize, bits % 32);
        if part != 0 {
            let mut carry = 0u32;
            for limb in &mut self.limbs {
                let next = *limb >> (32 - part);
                *limb = (*limb << part) | carry;
                carry = next;
            }
            if carry != 0 {
                self.limbs.push(carry);
            }
        }
        self.limbs.splice(0..0, vec![0; whole]);
    }

    /// `self + other`.
    pub(super) fn add(&self, other: &BigUint) -> BigUint {
        let (long, short) = if self.limbs.len() >= other.limbs.len() {
            (self, other)
        } else {
            (other, self)
        };
        let mut limbs = Vec::with_capacity(long.limbs.len() + 1);
        let mut carry = 0u64;
        for (i, &a) in long.limbs.iter().enumerate() {
            let sum = u64::from(a) + u64::from(*short.limbs.get(i).unwrap_or(&0)) + carry;
            limbs.push(sum as u32);
            carry = sum >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
        BigUint { limbs }
    }

    /// `self -= other`, where `other <= self`.
    pub(super) fn sub_assign(&mut self, other: &BigUint) {
        let mut borrow = 0i64;
        for (i, limb) in self.limbs.iter_mut().enumerate() {
            let diff = i64::from(*limb) - i64::from(*other.limbs.get(i).unwrap_or(&0)) - borrow;
            borrow = i64::from(diff < 0);
            *limb = diff.rem_euclid(1 << 32) as u32;
        }
        self.normalize();
    }

    /// Compare the values.
    pub(super) fn compare(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// Replace `self` by `self % divisor` and return `self / divisor`, which must be
    /// below 10.
    pub(super) fn divide_digit(&mut self, divisor: &BigUint) -> u32 {
        let mut quotient = 0;
        while self.compare(divisor) != Ordering::Less {
            self.sub_assign(divisor);
            quotient += 1;
        }
        quotient
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use super::BigUint;

    /// The value of a big integer below 2**128.
    fn value(n: &BigUint) -> u128 {
        assert!(n.limbs.len() <= 4 && n.limbs.last() != Some(&0));
        n.limbs
            .iter()
            .rev()
            .fold(0u128, |acc, &limb| (acc << 32) | u128::from(limb))
    }

    const SAMPLES: [u64; 7] = [
        0,
        1,
        9,
        0xffff_ffff,
        0x1_0000_0000,
        123_456_789_012,
        u64::MAX,
    ];

    #[test]
    fn arithmetic_matches_u128() {
        for &a in &SAMPLES {
            for &b in &SAMPLES {
                let (x, y) = (BigUint::from_u64(a), BigUint::from_u64(b));
                assert_eq!(value(&x.add(&y)), u128::from(a) + u128::from(b));
                assert_eq!(x.compare(&y), a.cmp(&b));
                if b <= a {
                    let mut d = x.clone();
                    d.sub_assign(&y);
                    assert_eq!(value(&d), u128::from(a - b));
                }
            }
            let mut m = BigUint::from_u64(a);
            m.mul_small(1_000_000_007);
            assert_eq!(value(&m), u128::from(a) * 1_000_000_007);
            let mut p = BigUint::from_u64(a);
            p.mul_pow10(11);
            assert_eq!(value(&p), u128::from(a) * 10u128.pow(11));
            for bits in [0, 1, 31, 32, 33, 63] {
                let mut s = BigUint::from_u64(a);
                s.shl(bits);
                assert_eq!(value(&s), u128::from(a) << bits);
            }
        }
    }

    #[test]
    fn powers_of_two_and_zero() {
        assert_eq!(value(&BigUint::pow2(0)), 1);
        assert_eq!(value(&BigUint::pow2(100)), 1u128 << 100);
        assert!(BigUint::from_u64(0).is_zero());
        assert_eq!(
            BigUint::pow2(40).compare(&BigUint::pow2(39)),
            Ordering::Greater
        );
    }

    #[test]
    fn divide_digit_leaves_the_remainder() {
        let divisor = BigUint::from_u64(1 << 40);
        let mut n = BigUint::from_u64((7 << 40) + 12345);
        assert_eq!(n.divide_digit(&divisor), 7);
        assert_eq!(value(&n), 12345);
    }
}
