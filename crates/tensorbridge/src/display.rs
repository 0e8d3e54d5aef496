//! TensorFlow-style `Display` for tensors (placeholder until the NumPy-exact formatter lands).

use std::fmt;

use crate::tensor::Tensor;

impl fmt::Display for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tb.Tensor(shape={:?}, dtype={})",
            self.shape(),
            self.dtype()
        )
    }
}
