//! The `tensorbridge` command for `pip install` users: the console script
//! (`tensorbridge._cli:main`) hands its `sys.argv` to the CLI crate's own code.

use std::ffi::OsString;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pyo3::prelude::*;

/// Exit code of a run that panicked (Rust's own for a panicking `main`); the panic
/// hook has already printed the message on stderr.
const PANIC_EXIT_CODE: i32 = 101;

/// Run the `tensorbridge` command line `argv` (`argv[0]` first, as `sys.argv`) and
/// return its exit code: 0 success, 1 bad input (one stderr line per file), 2 usage
/// error.
///
/// Output goes straight to the process's stdout and stderr (file descriptors 1 and
/// 2), not through `sys.stdout`. The GIL is released while it runs.
#[pyfunction]
fn _cli_main(py: Python<'_>, argv: Vec<OsString>) -> i32 {
    py.allow_threads(|| {
        // No panic may cross into Python: report it as an exit code.
        catch_unwind(AssertUnwindSafe(|| tensorbridge_cli::run(argv))).unwrap_or(PANIC_EXIT_CODE)
    })
}

pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_cli_main, m)?)?;
    Ok(())
}
