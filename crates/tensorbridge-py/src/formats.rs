//! Python bindings for `.npy` / `.npz` (issue 3).

use pyo3::prelude::*;

/// Add this module's functions and classes to `tensorbridge._core`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
