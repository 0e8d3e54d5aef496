//! The one error type of the core crate.

use crate::dtype::{Casting, DType, DTypeError};

/// Everything that can go wrong in tensorbridge's core.
///
/// Each variant carries enough context to say *what* went wrong and *where*; the
/// Python binding maps variants to built-in exceptions (see each variant).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A dtype name or type string that tensorbridge does not support (Python: `TypeError`).
    #[error("unsupported dtype {0:?}")]
    UnknownDType(String),

    /// The casting mode does not allow this pair of dtypes (Python: `TypeError`).
    #[error("cannot cast from {from} to {to} with casting={:?}", .casting.name())]
    CastNotAllowed {
        /// Source dtype.
        from: DType,
        /// Target dtype.
        to: DType,
        /// The mode that refused.
        casting: Casting,
    },

    /// A value does not survive a `checked` cast (Python: `ValueError`).
    #[error("checked cast from {from} to {to} failed at index {index:?}: value {value} {reason}")]
    CastValue {
        /// Source dtype.
        from: DType,
        /// Target dtype.
        to: DType,
        /// Multi-index of the first offending element.
        index: Vec<usize>,
        /// The offending value, formatted.
        value: String,
        /// Why it does not survive.
        reason: &'static str,
    },

    /// Shapes that do not fit together (Python: `ValueError`).
    #[error("{0}")]
    Shape(String),

    /// An index or slice outside the tensor (Python: `IndexError`).
    #[error("{0}")]
    Index(String),

    /// A memory layout that cannot be used as asked: out of bounds, misaligned, or a
    /// view requested where only a copy is possible (Python: `ValueError`).
    #[error("{0}")]
    Layout(String),

    /// Any other invalid argument (Python: `ValueError`).
    #[error("{0}")]
    InvalidArgument(String),

    /// An I/O error on a named file (Python: `OSError` or the matching subclass).
    #[error("{path}: {source}")]
    Io {
        /// The file (and member, as `archive.npz:member`) being read or written.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },

    /// No such object, bucket or container at a URL (Python: `FileNotFoundError`).
    #[error("{url}: not found ({reason})")]
    NotFound {
        /// The URL asked for.
        url: String,
        /// What the store said.
        reason: String,
    },

    /// The store refused the credentials, or they lack the permission asked for
    /// (Python: `PermissionError`).
    #[error("{url}: permission denied ({reason})")]
    PermissionDenied {
        /// The URL asked for.
        url: String,
        /// What the store said.
        reason: String,
    },

    /// A URL whose scheme tensorbridge does not read or write (Python: `ValueError`).
    #[error("{url}: unsupported URL scheme {scheme:?} (supported: {supported})")]
    UnsupportedScheme {
        /// The URL given.
        url: String,
        /// Its scheme.
        scheme: String,
        /// The supported schemes, listed for the message.
        supported: String,
    },

    /// An object that changed while it was being read: its ETag (or version) differs
    /// from the one the first request saw, so its bytes would mix two versions
    /// (Python: `OSError`).
    #[error("{url}: the object changed while it was being read ({reason})")]
    ObjectChanged {
        /// The URL being read.
        url: String,
        /// What differed.
        reason: String,
    },

    /// Object-store I/O cancelled by an interrupt (Ctrl-C) that the embedding's check
    /// reported (Python: the pending `KeyboardInterrupt`).
    #[error("interrupted")]
    Interrupted,

    /// Any other failure of an object store — a transient one (HTTP 5xx, 429, a reset
    /// connection, a timeout) after the bounded retries, or a bad configuration
    /// (Python: `OSError`).
    #[error("{url}: {reason}")]
    Remote {
        /// The URL asked for.
        url: String,
        /// What went wrong.
        reason: String,
    },

    /// A file that is not valid, or not supported, in its format (Python: `ValueError`).
    #[error("{path}: {reason}")]
    Format {
        /// The file (and member, as `archive.npz:member`).
        path: String,
        /// What is wrong, in words.
        reason: String,
    },

    /// Memory for the result could not be allocated (Python: `MemoryError`).
    #[error("cannot allocate {0} bytes")]
    Alloc(usize),

    /// An error from outside the core, carried through it unchanged: e.g. an
    /// exception a Python `map` function raised, which the binding boxes here and
    /// takes back out (downcasting) to re-raise the same exception object. The
    /// model is arrow's `ArrowError::ExternalError` (Python: the original
    /// exception when it came from Python, else `RuntimeError`).
    #[error("{0}")]
    External(Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wrap an error from outside the core ([`Error::External`]).
    pub fn external(e: impl std::error::Error + Send + Sync + 'static) -> Error {
        Error::External(Box::new(e))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<DTypeError> for Error {
    /// Each dtype error becomes the crate error variant with the same message.
    fn from(e: DTypeError) -> Self {
        match e {
            DTypeError::Unknown(s) => Error::UnknownDType(s),
            DTypeError::CastNotAllowed { from, to, casting } => {
                Error::CastNotAllowed { from, to, casting }
            }
            e @ DTypeError::UnknownCasting(_) => Error::InvalidArgument(e.to_string()),
        }
    }
}
