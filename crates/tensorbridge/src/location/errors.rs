//! object_store's errors as the core's, each naming the URL.

use crate::error::Error;

/// The core error for a failed request of `url`: a missing object or bucket is
/// [`Error::NotFound`], refused credentials [`Error::PermissionDenied`], a failed
/// `If-Match` [`Error::ObjectChanged`], anything else (after the retries)
/// [`Error::Remote`].
pub(crate) fn store_err(url: &str, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let url = url.to_string();
    match e {
        E::NotFound { source, .. } => Error::NotFound {
            url,
            reason: source.to_string(),
        },
        E::PermissionDenied { source, .. } | E::Unauthenticated { source, .. } => {
            Error::PermissionDenied {
                url,
                reason: source.to_string(),
            }
        }
        E::Precondition { source, .. } | E::NotModified { source, .. } => Error::ObjectChanged {
            url,
            reason: format!("its ETag no longer matches: {source}"),
        },
        e => Error::Remote {
            url,
            reason: e.to_string(),
        },
    }
}

/// Whether a failed request may succeed when tried again (a cut or failed body
/// read): not for a missing object, refused credentials or a changed object.
pub(crate) fn retryable(e: &Error) -> bool {
    matches!(e, Error::Remote { .. })
}
