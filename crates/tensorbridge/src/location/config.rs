//! Building (and caching) the object store for a URL from its storage options and
//! the environment.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::http::HttpBuilder;
use object_store::memory::InMemory;
use object_store::path::Path as ObjPath;
use object_store::{BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreScheme, RetryConfig};

use super::{RemoteUrl, StorageOptions};
use crate::error::{Error, Result};

/// Default bound on the retries of one request.
const DEFAULT_MAX_RETRIES: usize = 5;
/// Default bound, in seconds, on the time spent retrying one request.
const DEFAULT_RETRY_TIMEOUT: f64 = 30.0;

/// A store and the object's path in it.
pub(crate) type StoreAndPath = (Arc<dyn ObjectStore>, ObjPath);

/// The process's in-memory store (`memory://`).
pub(crate) fn memory_store() -> Arc<InMemory> {
    static MEM: OnceLock<Arc<InMemory>> = OnceLock::new();
    MEM.get_or_init(|| Arc::new(InMemory::new())).clone()
}

fn bad_option(url: &str, key: &str, why: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("{url}: storage option {key:?}: {why}"))
}

/// The retry policy, from tensorbridge's own keys (removed from `opts`).
fn retry_config(url: &str, opts: &mut StorageOptions) -> Result<RetryConfig> {
    let max_retries = match opts.remove("max_retries") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|e| bad_option(url, "max_retries", e))?,
        None => DEFAULT_MAX_RETRIES,
    };
    let timeout = match opts.remove("retry_timeout") {
        Some(v) => v
            .trim_end_matches('s')
            .parse::<f64>()
            .ok()
            .filter(|t| t.is_finite() && *t >= 0.0)
            .ok_or_else(|| bad_option(url, "retry_timeout", "not a number of seconds"))?,
        None => DEFAULT_RETRY_TIMEOUT,
    };
    Ok(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            base: 2.0,
        },
        max_retries,
        retry_timeout: Duration::from_secs_f64(timeout),
    })
}

/// The environment variables a store of `scheme` reads (part of the cache key, so a
/// changed environment gives a new store).
fn env_key() -> String {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| {
            ["AWS_", "GOOGLE_", "AZURE_"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect();
    vars.sort();
    format!("{vars:?}")
}

/// The store for `remote` (cached per scheme, host, options and environment, so
/// connections are reused) and the object's path in it.
pub(crate) fn store_for(remote: &RemoteUrl) -> Result<StoreAndPath> {
    let url = remote.url();
    let text = remote.as_str();
    let (scheme, path) = ObjectStoreScheme::parse(url)
        .map_err(|e| Error::InvalidArgument(format!("{text}: {e}")))?;
    if scheme == ObjectStoreScheme::Memory {
        return Ok((memory_store(), path));
    }
    // The process id too: a forked child must not reuse its parent's connections.
    let key = format!(
        "{}|{}://{}|{:?}|{}",
        std::process::id(),
        url.scheme(),
        url.host_str().unwrap_or(""),
        remote.options(),
        env_key()
    );
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<dyn ObjectStore>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(store) = cache.lock().ok().and_then(|c| c.get(&key).cloned()) {
        return Ok((store, path));
    }
    let store = build(remote, &scheme)?;
    if let Ok(mut c) = cache.lock() {
        if c.len() > 64 {
            c.clear();
        }
        c.insert(key, store.clone());
    }
    Ok((store, path))
}

fn build(remote: &RemoteUrl, scheme: &ObjectStoreScheme) -> Result<Arc<dyn ObjectStore>> {
    let url = remote.url();
    let text = remote.as_str();
    let mut opts = remote.options().clone();
    let retry = retry_config(text, &mut opts)?;
    let fail = |e: object_store::Error| Error::Remote {
        url: text.to_string(),
        reason: format!("cannot configure the store: {e}"),
    };
    let store: Arc<dyn ObjectStore> = match scheme {
        ObjectStoreScheme::AmazonS3 => {
            let mut b = AmazonS3Builder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            // An http:// endpoint (a local server) needs no further flag, as with boto3.
            let endpoint = opts
                .iter()
                .find(|(k, _)| {
                    matches!(
                        k.parse::<AmazonS3ConfigKey>(),
                        Ok(AmazonS3ConfigKey::Endpoint)
                    )
                })
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
                .or_else(|| std::env::var("AWS_ENDPOINT").ok());
            if let Some(ep) = &endpoint {
                b = b.with_endpoint(ep.as_str());
                if ep.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
                // A custom endpoint: path-style addressing unless asked otherwise.
                b = b.with_virtual_hosted_style_request(false);
                // No credentials anywhere for a custom endpoint: unsigned requests
                // (anonymous access), never a probe of a cloud metadata service.
                let has_creds = opts.keys().any(|k| {
                    matches!(
                        k.parse::<AmazonS3ConfigKey>(),
                        Ok(AmazonS3ConfigKey::AccessKeyId
                            | AmazonS3ConfigKey::WebIdentityTokenFile
                            | AmazonS3ConfigKey::ContainerCredentialsRelativeUri
                            | AmazonS3ConfigKey::ContainerCredentialsFullUri
                            | AmazonS3ConfigKey::SkipSignature)
                    )
                }) || [
                    "AWS_ACCESS_KEY_ID",
                    "AWS_WEB_IDENTITY_TOKEN_FILE",
                    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                    "AWS_SKIP_SIGNATURE",
                ]
                .iter()
                .any(|v| std::env::var_os(v).is_some());
                if !has_creds {
                    b = b.with_skip_signature(true);
                }
            }
            if std::env::var("AWS_REGION").is_err() && std::env::var("AWS_DEFAULT_REGION").is_ok() {
                if let Ok(r) = std::env::var("AWS_DEFAULT_REGION") {
                    b = b.with_region(r);
                }
            }
            for (k, v) in &opts {
                let key = k.parse().map_err(|e| bad_option(text, k, e))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(fail)?)
        }
        ObjectStoreScheme::GoogleCloudStorage => {
            let mut b = GoogleCloudStorageBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            for (k, v) in &opts {
                let key: GoogleConfigKey = k.parse().map_err(|e| bad_option(text, k, e))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(fail)?)
        }
        ObjectStoreScheme::MicrosoftAzure => {
            let mut b = MicrosoftAzureBuilder::from_env()
                .with_url(url.as_str())
                .with_retry(retry);
            for (k, v) in &opts {
                let key: AzureConfigKey = k.parse().map_err(|e| bad_option(text, k, e))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(fail)?)
        }
        ObjectStoreScheme::Http => {
            let base = &url[..url::Position::BeforePath];
            let mut b = HttpBuilder::new().with_url(base).with_retry(retry);
            if url.scheme() == "http" {
                b = b.with_config(ClientConfigKey::AllowHttp, "true");
            }
            for (k, v) in &opts {
                let key: ClientConfigKey = k.parse().map_err(|e| bad_option(text, k, e))?;
                b = b.with_config(key, v);
            }
            Arc::new(b.build().map_err(fail)?)
        }
        ObjectStoreScheme::Memory => memory_store(),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{text}: {other:?} is not an object store URL"
            )))
        }
    };
    Ok(store)
}
