//! Element types: the fifteen dtypes, their names, parsing and NumPy's casting rules.

use std::fmt;
use std::str::FromStr;

mod element;
pub use element::{Bool, Element};

/// The element type of a tensor.
///
/// Every NumPy numeric dtype plus `bfloat16` (as defined by `ml_dtypes`).
/// Values are always stored in native (little-endian on every supported
/// target) byte order inside a [`crate::Tensor`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
#[repr(u8)]
pub enum DType {
    /// `bool`: one byte, 0 or 1.
    Bool,
    /// `int8`.
    Int8,
    /// `int16`.
    Int16,
    /// `int32`.
    Int32,
    /// `int64`.
    Int64,
    /// `uint8`.
    UInt8,
    /// `uint16`.
    UInt16,
    /// `uint32`.
    UInt32,
    /// `uint64`.
    UInt64,
    /// IEEE 754 binary16.
    Float16,
    /// Brain floating point: the upper 16 bits of a float32.
    BFloat16,
    /// IEEE 754 binary32.
    Float32,
    /// IEEE 754 binary64.
    Float64,
    /// Two float32: real, imaginary.
    Complex64,
    /// Two float64: real, imaginary.
    Complex128,
}

/// The broad class of a dtype, in NumPy's kind order (`b < u < i < f < c`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// Boolean.
    Bool,
    /// Unsigned integer.
    Unsigned,
    /// Signed integer.
    Signed,
    /// Real floating point.
    Float,
    /// Complex floating point.
    Complex,
}

/// How strictly a cast checks its input, following `numpy.ndarray.astype` plus two
/// value-checking modes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Default)]
pub enum Casting {
    /// Any pair; values convert exactly as NumPy's `astype` does.
    #[default]
    Unsafe,
    /// Pairs NumPy's `can_cast(from, to, "same_kind")` allows.
    SameKind,
    /// Pairs NumPy's `can_cast(from, to, "safe")` allows.
    Safe,
    /// Any pair, but every value must survive: no integer overflow, no NaN, inf or
    /// fraction into an integer, no finite value overflowing a float, no non-zero
    /// imaginary part dropped, only 0 and 1 into `bool`.
    Checked,
    /// Any pair; out-of-range values clamp to the target's range, NaN becomes 0 in
    /// integer and bool targets, fractions truncate toward zero.
    Saturate,
}

impl Casting {
    /// The names accepted by [`Casting::from_str`], in documentation order.
    pub const NAMES: [&'static str; 5] = ["unsafe", "same_kind", "safe", "checked", "saturate"];

    /// The mode's name as Python spells it.
    pub fn name(self) -> &'static str {
        match self {
            Casting::Unsafe => "unsafe",
            Casting::SameKind => "same_kind",
            Casting::Safe => "safe",
            Casting::Checked => "checked",
            Casting::Saturate => "saturate",
        }
    }
}

/// What can go wrong when naming a dtype or a casting mode, or casting between
/// dtypes. Kept here, below the crate's [`Error`](crate::Error) (which it converts into,
/// one variant each), so this base module imports nothing from the rest of the crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DTypeError {
    /// A dtype name or type string that tensorbridge does not support.
    #[error("unsupported dtype {0:?}")]
    Unknown(String),
    /// A casting-mode name that is not one of [`Casting::NAMES`].
    #[error(
        "unknown casting mode {0:?}; valid modes are {modes}",
        modes = Casting::NAMES.map(|n| format!("{n:?}")).join(", ")
    )]
    UnknownCasting(String),
    /// The casting mode does not allow this pair of dtypes.
    #[error("cannot cast from {from} to {to} with casting={:?}", .casting.name())]
    CastNotAllowed {
        /// Source dtype.
        from: DType,
        /// Target dtype.
        to: DType,
        /// The mode that refused.
        casting: Casting,
    },
}

type Result<T> = std::result::Result<T, DTypeError>;

impl FromStr for Casting {
    type Err = DTypeError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "unsafe" => Casting::Unsafe,
            "same_kind" => Casting::SameKind,
            "safe" => Casting::Safe,
            "checked" => Casting::Checked,
            "saturate" => Casting::Saturate,
            _ => return Err(DTypeError::UnknownCasting(s.to_string())),
        })
    }
}

/// Byte order of stored elements, as in NumPy's `dtype.byteorder`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum ByteOrder {
    /// Little-endian (`<`).
    Little,
    /// Big-endian (`>`).
    Big,
}

impl ByteOrder {
    /// The byte order of the machine this code runs on.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "little") {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    };

    /// Whether data in this order must be byte-swapped to be read natively.
    pub fn is_swapped(self) -> bool {
        self != Self::NATIVE
    }
}

// Rows: from; columns: to; order of `DType::ALL`. Generated from NumPy 2.4 +
// ml_dtypes 0.6 `np.can_cast`, and checked against it by the Python tests.
const SAFE_TABLE: [&str; 15] = [
    "111111111111111",
    ".1111....111111",
    "..111......1111",
    "...11.......1.1",
    "....1.......1.1",
    "..1111111111111",
    "...11.111..1111",
    "....1..11...1.1",
    "........1...1.1",
    ".........1.1111",
    "..........11111",
    "...........1111",
    "............1.1",
    ".............11",
    "..............1",
];
const SAME_KIND_TABLE: [&str; 15] = [
    "111111111111111",
    ".1111....111111",
    ".1111....111111",
    ".1111....111111",
    ".1111....111111",
    ".11111111111111",
    ".11111111111111",
    ".11111111111111",
    ".11111111111111",
    ".........111111",
    "..........11111",
    ".........111111",
    ".........111111",
    "..........1..11",
    "..........1..11",
];

impl DType {
    /// All fifteen dtypes, in a fixed order.
    pub const ALL: [DType; 15] = [
        DType::Bool,
        DType::Int8,
        DType::Int16,
        DType::Int32,
        DType::Int64,
        DType::UInt8,
        DType::UInt16,
        DType::UInt32,
        DType::UInt64,
        DType::Float16,
        DType::BFloat16,
        DType::Float32,
        DType::Float64,
        DType::Complex64,
        DType::Complex128,
    ];

    /// The canonical name (`"float32"`, `"bfloat16"`, ...), as NumPy and TensorFlow spell it.
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::Int8 => "int8",
            DType::Int16 => "int16",
            DType::Int32 => "int32",
            DType::Int64 => "int64",
            DType::UInt8 => "uint8",
            DType::UInt16 => "uint16",
            DType::UInt32 => "uint32",
            DType::UInt64 => "uint64",
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
            DType::Complex64 => "complex64",
            DType::Complex128 => "complex128",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::Int8 | DType::UInt8 => 1,
            DType::Int16 | DType::UInt16 | DType::Float16 | DType::BFloat16 => 2,
            DType::Int32 | DType::UInt32 | DType::Float32 => 4,
            DType::Int64 | DType::UInt64 | DType::Float64 | DType::Complex64 => 8,
            DType::Complex128 => 16,
        }
    }

    /// Required alignment of one element in bytes (a complex aligns like its parts).
    pub fn alignment(self) -> usize {
        match self {
            DType::Complex64 => 4,
            DType::Complex128 => 8,
            d => d.size(),
        }
    }

    /// The dtype's kind.
    pub fn kind(self) -> Kind {
        match self {
            DType::Bool => Kind::Bool,
            DType::Int8 | DType::Int16 | DType::Int32 | DType::Int64 => Kind::Signed,
            DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => Kind::Unsigned,
            DType::Float16 | DType::BFloat16 | DType::Float32 | DType::Float64 => Kind::Float,
            DType::Complex64 | DType::Complex128 => Kind::Complex,
        }
    }

    /// Real floating point (float16, bfloat16, float32, float64).
    pub fn is_floating(self) -> bool {
        self.kind() == Kind::Float
    }

    /// Signed or unsigned integer (not bool).
    pub fn is_integer(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Unsigned)
    }

    /// complex64 or complex128.
    pub fn is_complex(self) -> bool {
        self.kind() == Kind::Complex
    }

    /// Whether the type can hold negative values (signed integers, floats, complex).
    pub fn is_signed(self) -> bool {
        matches!(self.kind(), Kind::Signed | Kind::Float | Kind::Complex)
    }

    /// NumPy's type character with its size, without byte order: `"f4"`, `"b1"`, `"c16"`.
    /// bfloat16 has no NumPy type code; it is `"V2"` here, which is what `np.save` writes.
    pub fn type_code(self) -> &'static str {
        match self {
            DType::Bool => "b1",
            DType::Int8 => "i1",
            DType::Int16 => "i2",
            DType::Int32 => "i4",
            DType::Int64 => "i8",
            DType::UInt8 => "u1",
            DType::UInt16 => "u2",
            DType::UInt32 => "u4",
            DType::UInt64 => "u8",
            DType::Float16 => "f2",
            DType::BFloat16 => "V2",
            DType::Float32 => "f4",
            DType::Float64 => "f8",
            DType::Complex64 => "c8",
            DType::Complex128 => "c16",
        }
    }

    /// NumPy's array-interface type string in native byte order: `"<f4"`, `"|b1"`.
    pub fn typestr(self) -> String {
        let order = if self.size() == 1 {
            '|'
        } else if ByteOrder::NATIVE == ByteOrder::Little {
            '<'
        } else {
            '>'
        };
        format!("{order}{}", self.type_code())
    }

    /// Parse a dtype written as a name (`"float32"`, `"bfloat16"`, `"float"`), a
    /// NumPy type string with optional byte order (`"f4"`, `"<f4"`, `">i8"`, `"|b1"`,
    /// `"=u2"`) or a one-letter NumPy character code (`"?"`, `"f"`, `"d"`, `"e"`).
    ///
    /// Returns the dtype and the byte order the string names (native when absent).
    /// `"V2"` is not accepted: two raw bytes could be anything.
    pub fn parse(s: &str) -> Result<(DType, ByteOrder)> {
        let unknown = || DTypeError::Unknown(s.to_string());
        let (order, rest) = match s.as_bytes().first() {
            Some(b'<') => (ByteOrder::Little, &s[1..]),
            Some(b'>') => (ByteOrder::Big, &s[1..]),
            Some(b'=') | Some(b'|') => (ByteOrder::NATIVE, &s[1..]),
            _ => (ByteOrder::NATIVE, s),
        };
        let dtype = match rest {
            "bool" | "b1" | "?" | "bool_" => DType::Bool,
            "int8" | "i1" | "b" | "byte" => DType::Int8,
            "int16" | "i2" | "h" | "short" => DType::Int16,
            "int32" | "i4" | "i" | "intc" => DType::Int32,
            "int64" | "i8" | "l" | "q" | "int" | "long" | "longlong" | "int_" => DType::Int64,
            "uint8" | "u1" | "B" | "ubyte" => DType::UInt8,
            "uint16" | "u2" | "H" | "ushort" => DType::UInt16,
            "uint32" | "u4" | "I" | "uintc" => DType::UInt32,
            "uint64" | "u8" | "L" | "Q" | "uint" | "ulong" | "ulonglong" => DType::UInt64,
            "float16" | "f2" | "e" | "half" => DType::Float16,
            "bfloat16" => DType::BFloat16,
            "float32" | "f4" | "f" | "single" => DType::Float32,
            "float64" | "f8" | "d" | "double" | "float" => DType::Float64,
            "complex64" | "c8" | "F" | "csingle" => DType::Complex64,
            "complex128" | "c16" | "D" | "cdouble" | "complex" => DType::Complex128,
            _ => return Err(unknown()),
        };
        // A byte-order mark on a name ("<float32") is not something NumPy accepts either.
        let is_code = rest.len() == 1 || rest[1..].bytes().all(|b| b.is_ascii_digit());
        if s.len() != rest.len() && !is_code {
            return Err(unknown());
        }
        Ok((dtype, order))
    }

    /// Smallest value (`None` for complex, `false` as 0 for bool). Floats give the most
    /// negative finite value.
    pub fn min_value(self) -> Option<f64> {
        Some(match self {
            DType::Bool => 0.0,
            DType::Int8 => i8::MIN as f64,
            DType::Int16 => i16::MIN as f64,
            DType::Int32 => i32::MIN as f64,
            DType::Int64 => i64::MIN as f64,
            DType::UInt8 | DType::UInt16 | DType::UInt32 | DType::UInt64 => 0.0,
            DType::Float16 => -65504.0,
            DType::BFloat16 => -f64::from(f32::from_bits(0x7f7f_0000)),
            DType::Float32 => f32::MIN as f64,
            DType::Float64 => f64::MIN,
            DType::Complex64 | DType::Complex128 => return None,
        })
    }

    /// Can a value of `self` be cast to `to` under `casting` (NumPy's `np.can_cast`)?
    /// `Unsafe`, `Checked` and `Saturate` allow every pair.
    pub fn can_cast(self, to: DType, casting: Casting) -> bool {
        let table = match casting {
            Casting::Safe => &SAFE_TABLE,
            Casting::SameKind => &SAME_KIND_TABLE,
            Casting::Unsafe | Casting::Checked | Casting::Saturate => return true,
        };
        table[self as usize].as_bytes()[to as usize] == b'1'
    }

    /// Error unless [`DType::can_cast`] allows the pair.
    pub fn check_cast(self, to: DType, casting: Casting) -> Result<()> {
        if self.can_cast(to, casting) {
            Ok(())
        } else {
            Err(DTypeError::CastNotAllowed {
                from: self,
                to,
                casting,
            })
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = DTypeError;
    /// Parses like [`DType::parse`] but only accepts native byte order.
    fn from_str(s: &str) -> Result<Self> {
        match DType::parse(s)? {
            (d, o) if !o.is_swapped() || d.size() == 1 => Ok(d),
            _ => Err(DTypeError::Unknown(format!("{s} (non-native byte order)"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
            if d != DType::BFloat16 {
                assert_eq!(DType::parse(&d.typestr()).unwrap().0, d);
            }
        }
    }

    #[test]
    fn parse_byte_orders() {
        assert_eq!(DType::parse(">i8").unwrap(), (DType::Int64, ByteOrder::Big));
        assert_eq!(
            DType::parse("<f4").unwrap(),
            (DType::Float32, ByteOrder::Little)
        );
        assert_eq!(DType::parse("|b1").unwrap().0, DType::Bool);
        assert!(DType::parse("<float32").is_err());
        assert!(DType::parse("object").is_err());
        assert!(DType::parse("V2").is_err());
    }

    #[test]
    fn casting_modes() {
        assert!(DType::Int8.can_cast(DType::Float16, Casting::Safe));
        assert!(!DType::Float64.can_cast(DType::Float32, Casting::Safe));
        assert!(DType::Float64.can_cast(DType::Float32, Casting::SameKind));
        assert!(!DType::Float32.can_cast(DType::Int32, Casting::SameKind));
        let err = "bogus".parse::<Casting>().unwrap_err().to_string();
        assert!(err.contains("saturate") && err.contains("bogus"), "{err}");
    }
}
