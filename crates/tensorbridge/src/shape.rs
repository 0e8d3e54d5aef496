//! The one text of a shape: a Python tuple, `()`, `(3,)`, `(2, 3)`.
//!
//! Every place that shows a shape to a person (the tensor's `Display`, error
//! messages, headers, the command line) renders it through [`ShapeDisplay`], so that
//! shapes read the same everywhere. This base-layer module imports nothing.

use std::fmt;

/// A shape displayed as a Python tuple: `()`, `(3,)`, `(2, 3)`.
///
/// ```
/// use tensorbridge::shape::ShapeDisplay;
///
/// assert_eq!(ShapeDisplay(&[]).to_string(), "()");
/// assert_eq!(ShapeDisplay(&[3]).to_string(), "(3,)");
/// assert_eq!(ShapeDisplay(&[2, 3]).to_string(), "(2, 3)");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShapeDisplay<'a>(pub &'a [usize]);

impl fmt::Display for ShapeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{n}")?;
        }
        if self.0.len() == 1 {
            f.write_str(",")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::ShapeDisplay;

    #[test]
    fn python_tuples() {
        assert_eq!(ShapeDisplay(&[]).to_string(), "()");
        assert_eq!(ShapeDisplay(&[0]).to_string(), "(0,)");
        assert_eq!(ShapeDisplay(&[3]).to_string(), "(3,)");
        assert_eq!(ShapeDisplay(&[2, 3]).to_string(), "(2, 3)");
        assert_eq!(ShapeDisplay(&[1, 0, 4]).to_string(), "(1, 0, 4)");
        assert_eq!(
            ShapeDisplay(&[usize::MAX]).to_string(),
            format!("({},)", usize::MAX)
        );
    }

    #[test]
    fn inside_format_strings() {
        assert_eq!(format!("shape={}", ShapeDisplay(&[4, 5])), "shape=(4, 5)");
    }
}
