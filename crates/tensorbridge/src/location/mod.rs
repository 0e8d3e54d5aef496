//! Where a file lives: a local path or a URL of an object store.
//!
//! Every reader and writer of [`crate::format`] takes a [`Location`]: either a local
//! path — read exactly as before (memory-mapped, zero-copy) — or a URL of an object
//! in S3 (`s3://`, `s3a://`), Google Cloud Storage (`gs://`), Azure (`az://`,
//! `abfs://`, `abfss://`, `adl://`, `azure://`), an HTTP(S) server (`http://`,
//! `https://`), the process's in-memory store (`memory://`, for tests), or a local
//! file (`file://`, which becomes a local path).
//!
//! Remote objects are read with ranged GETs through the [`object_store`] crate, on one
//! small shared tokio runtime behind a blocking facade ([`RemoteObject`],
//! [`ObjectStream`]); they are written with a multipart upload that completes only
//! on [`ObjectWriter::commit`] and is aborted when the writer is dropped before that
//! ([`Sink`]), so a failed write leaves nothing behind — the promise
//! [`AtomicFile`](crate::format::AtomicFile) makes for local files.
//!
//! # Configuration
//! [`StorageOptions`] are object_store's configuration keys (`aws_endpoint`,
//! `aws_region`, `aws_access_key_id`, `google_service_account`,
//! `azure_storage_account_name`, `timeout`, `connect_timeout`, ...), merged over the
//! environment as boto3 and the AWS CLI read it (`AWS_ENDPOINT_URL`,
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
//! `AWS_DEFAULT_REGION`; GCS and Azure from their usual variables). An `http://`
//! endpoint needs no extra flag; custom endpoints use path-style addressing.
//! tensorbridge adds two keys of its own: `max_retries` (default 5) and
//! `retry_timeout` (seconds, default 30) bound the retries of transient failures.
//!
//! # Consistency
//! The first request of a read remembers the object's ETag; every later range is
//! asked for with `If-Match` on it (and checked on the answer), so an object replaced
//! while it is being read is an [`Error::ObjectChanged`](crate::Error::ObjectChanged),
//! never a tensor mixing two versions.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

mod config;
mod errors;
mod glob;
mod object;
mod pool;
mod runtime;
mod stats;
mod stream;
mod write;

pub use glob::{glob, has_wildcard};
pub use object::{list, FirstBody, ObjectInfo, RemoteObject, PIECE};
pub use runtime::set_interrupt_check;
pub use stats::{get_stats, reset_get_stats, GetStats};
pub use stream::{Budget, ObjectStream};
pub use write::{ObjectWriter, Sink, Spool};

pub(crate) use runtime::block_on;

#[cfg(test)]
pub(crate) use config::memory_store;

/// Run a future on the shared runtime (tests), unwrapping the runtime's own error.
#[cfg(test)]
pub(crate) fn block_on_for_tests<F: std::future::Future>(f: F) -> F::Output {
    runtime::block_on(f).expect("runtime")
}

/// Configuration of an object store: object_store's keys and values (see the
/// [module documentation](self)).
pub type StorageOptions = BTreeMap<String, String>;

/// The URL schemes tensorbridge reads and writes, as messages list them.
pub const SUPPORTED_SCHEMES: &[&str] = &[
    "s3", "s3a", "gs", "az", "abfs", "abfss", "adl", "azure", "http", "https", "file", "memory",
];

/// A local path or a remote object's URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A file on a local file system (read with today's code: memory maps, zero copy).
    Local(PathBuf),
    /// An object in an object store.
    Remote(RemoteUrl),
}

/// A parsed URL of an object, with the options to reach its store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUrl {
    url: url::Url,
    text: String,
    options: StorageOptions,
}

impl RemoteUrl {
    /// The URL as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// The storage options given with it.
    pub fn options(&self) -> &StorageOptions {
        &self.options
    }

    /// The URL of another object of the same store: this URL with its last path
    /// segment replaced by `file_name` (shard names of a TFRecord writer).
    pub fn sibling(&self, file_name: &str) -> Result<RemoteUrl> {
        let text = match self.text.rfind('/') {
            Some(i) if i + 1 > self.text.find("://").map_or(0, |j| j + 3) => {
                format!("{}{file_name}", &self.text[..=i])
            }
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{}: no file name",
                    self.text
                )))
            }
        };
        match Location::parse(&text, &self.options)? {
            Location::Remote(r) => Ok(r),
            Location::Local(_) => Err(Error::InvalidArgument(format!("{text}: not a URL"))),
        }
    }

    /// The last path segment (the object's file name).
    pub fn file_name(&self) -> &str {
        self.url.path().rsplit('/').next().unwrap_or("")
    }
}

impl std::fmt::Display for RemoteUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Whether `s` looks like a URL (`scheme://...`) rather than a local path.
pub fn is_url(s: &str) -> bool {
    match s.find("://") {
        Some(i) if i > 0 => {
            let scheme = &s[..i];
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        _ => false,
    }
}

impl Location {
    /// Parse a local path or a URL. `options` configure the URL's store (ignored for
    /// local paths). A URL of another scheme is an [`Error::UnsupportedScheme`]
    /// listing the supported ones; `file://` URLs become local paths.
    pub fn parse(s: &str, options: &StorageOptions) -> Result<Location> {
        if !is_url(s) {
            return Ok(Location::Local(PathBuf::from(s)));
        }
        let url = url::Url::parse(s)
            .map_err(|e| Error::InvalidArgument(format!("{s}: not a valid URL: {e}")))?;
        let scheme = url.scheme().to_ascii_lowercase();
        if !SUPPORTED_SCHEMES.contains(&scheme.as_str()) {
            return Err(Error::UnsupportedScheme {
                url: s.to_string(),
                scheme,
                supported: SUPPORTED_SCHEMES
                    .iter()
                    .map(|s| format!("{s}://"))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if scheme == "file" {
            return url.to_file_path().map(Location::Local).map_err(|()| {
                Error::InvalidArgument(format!("{s}: not a local file URL (file:///path)"))
            });
        }
        if scheme != "memory" && url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidArgument(format!(
                "{s}: no bucket or host in the URL ({scheme}://bucket/key)"
            )));
        }
        Ok(Location::Remote(RemoteUrl {
            url,
            text: s.to_string(),
            options: options.clone(),
        }))
    }

    /// A local path.
    pub fn local(path: impl AsRef<Path>) -> Location {
        Location::Local(path.as_ref().to_path_buf())
    }

    /// The path or URL, for messages.
    pub fn display(&self) -> String {
        match self {
            Location::Local(p) => p.display().to_string(),
            Location::Remote(r) => r.text.clone(),
        }
    }

    /// The local path, if this is one.
    pub fn as_local(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    /// Whether this is a URL of an object store.
    pub fn is_remote(&self) -> bool {
        matches!(self, Location::Remote(_))
    }

    /// The file name's extension (lowercase), for format detection.
    pub fn extension(&self) -> Option<String> {
        let name = match self {
            Location::Local(p) => p.file_name()?.to_str()?.to_string(),
            Location::Remote(r) => r.file_name().to_string(),
        };
        let (_, ext) = name.rsplit_once('.')?;
        Some(ext.to_ascii_lowercase())
    }

    /// Open the object for reading (one HEAD request: its size and ETag; readers
    /// that read its first bytes anyway use [`RemoteObject::open_reading`], which
    /// needs no HEAD).
    /// `None` for a local path.
    pub fn open_remote(&self) -> Result<Option<RemoteObject>> {
        match self {
            Location::Local(_) => Ok(None),
            Location::Remote(r) => RemoteObject::open(r).map(Some),
        }
    }
}

/// The refusal of `mmap=True` for an object that is not a local file.
pub fn no_mmap_remote(url: &str) -> Error {
    Error::InvalidArgument(format!(
        "{url}: mmap=True needs a local file; an object in a store is read into memory \
         (use mmap=None or mmap=False)"
    ))
}

#[cfg(test)]
mod tests;
