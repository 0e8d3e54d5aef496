//! Python bindings for TFRecord and safetensors files (issue 4).

use pyo3::prelude::*;

/// Add this module's functions to `tensorbridge._core`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
