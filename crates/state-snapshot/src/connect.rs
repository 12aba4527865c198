//! From a store URL and options to an object store client: the local
//! filesystem always, S3, GCS and Azure with their features. Credentials
//! come from the environment (object_store's `from_env` builders) or from
//! options ([`StoreOptions`], e.g. a config file), never from the URL.

use std::path::Path as FsPath;
use std::sync::Arc;

use object_store::path::Path;
use object_store::ObjectStore;

use crate::error::{Result, SnapshotError};
use crate::secrets::{display_url, is_secret_option, Secrets};

/// Options of a snapshot store: object_store's configuration keys for the
/// URL's service (`aws_endpoint`, `aws_region`, `aws_allow_http`,
/// `aws_access_key_id`, `aws_secret_access_key`, `google_service_account`,
/// `azure_storage_account_key`, ...), applied over what the environment
/// sets. Secret values never appear in `Debug` output or messages.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    options: Vec<(String, String)>,
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: Vec<(&str, &str)> = self
            .options
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_option(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("StoreOptions").field("options", &shown).finish()
    }
}

impl StoreOptions {
    /// No options: everything from the environment.
    pub fn new() -> Self {
        StoreOptions::default()
    }

    /// The same with `key` set to `value` (a later value of a key wins).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.options.push((key.into(), value.into()));
        self
    }

    /// Options read from a file of `key=value` lines (`#` starts a comment
    /// line; blank lines are skipped), e.g. a file only the service's user
    /// can read that holds the credentials.
    pub fn from_file(path: &FsPath) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(SnapshotError::io(path))?;
        let mut options = StoreOptions::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(SnapshotError::BadOption {
                    key: format!("{}:{}", path.display(), n + 1),
                    reason: "not a key=value line".into(),
                });
            };
            options = options.with(key.trim(), value.trim());
        }
        Ok(options)
    }

    /// Adds every option of `other` after these.
    pub fn extend(&mut self, other: StoreOptions) {
        self.options.extend(other.options);
    }

    /// The options, in the order they apply.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.options.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// A connected object store, where the snapshots live in it, and how to
/// name it in messages.
pub(crate) struct Connected {
    pub store: Arc<dyn ObjectStore>,
    /// True for a `file://` store: its objects are files on this machine.
    pub local: bool,
    pub prefix: Path,
    pub display: String,
    pub secrets: Secrets,
}

/// Connects to the store at `url` (`file:///abs/dir`, `s3://bucket/prefix`,
/// `gs://bucket/prefix`, `az://container/prefix`).
pub(crate) fn connect(url: &str, options: &StoreOptions) -> Result<Connected> {
    let display = display_url(url);
    let secrets = Secrets::collect(options.iter());
    let bad = |reason: &str| SnapshotError::BadUrl {
        url: display.clone(),
        reason: reason.to_owned(),
    };
    let parsed = url::Url::parse(url).map_err(|e| bad(&e.to_string()))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(bad(
            "credentials do not belong in the URL; set them in the environment or a store config file",
        ));
    }
    let scheme = parsed.scheme().to_ascii_lowercase();
    let store: Arc<dyn ObjectStore> = match scheme.as_str() {
        "file" => {
            if options.iter().next().is_some() {
                return Err(SnapshotError::BadOption {
                    key: options.iter().next().map(|(k, _)| k.to_owned()).unwrap_or_default(),
                    reason: "a file:// store takes no options".into(),
                });
            }
            // `file:dir` parses as `/dir`: only the explicit absolute form.
            if !url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("file:///")) {
                return Err(bad("a file URL needs an absolute local path (file:///dir)"));
            }
            let dir = parsed
                .to_file_path()
                .map_err(|()| bad("a file URL needs an absolute local path (file:///dir)"))?;
            state_core::create_private_dir(&dir)?;
            let local = object_store::local::LocalFileSystem::new_with_prefix(&dir)
                .map_err(|e| bad(&secrets.redact(&e.to_string())))?
                .with_automatic_cleanup(true);
            let prefix = Path::default();
            return Ok(Connected {
                store: Arc::new(local),
                local: true,
                prefix,
                display,
                secrets,
            });
        }
        "s3" | "s3a" => cloud::s3(&parsed, options, &display)?,
        "gs" => cloud::gcs(&parsed, options, &display)?,
        "az" | "abfs" | "abfss" | "azure" => cloud::azure(&parsed, options, &display)?,
        other => {
            return Err(bad(&format!(
                "unknown scheme {other:?} (file, s3, gs and az are known)"
            )))
        }
    };
    let prefix = Path::parse(parsed.path().trim_matches('/')).map_err(|e| bad(&e.to_string()))?;
    Ok(Connected {
        store,
        local: false,
        prefix,
        display,
        secrets,
    })
}

/// `scheme://host` of `url`: the bucket or container, for the builders.
#[cfg(any(feature = "aws", feature = "aws-ring", feature = "gcp", feature = "azure"))]
fn bucket_url(url: &url::Url) -> String {
    format!("{}://{}", url.scheme(), url.host_str().unwrap_or_default())
}

/// Applies `options` with `apply`, each key parsed with `parse`.
#[cfg(any(feature = "aws", feature = "aws-ring", feature = "gcp", feature = "azure"))]
fn with_options<B, K: std::str::FromStr>(
    mut builder: B,
    options: &StoreOptions,
    apply: impl Fn(B, K, &str) -> B,
) -> Result<B>
where
    K::Err: std::fmt::Display,
{
    for (key, value) in options.iter() {
        let parsed = key.parse::<K>().map_err(|e| SnapshotError::BadOption {
            key: key.to_owned(),
            reason: e.to_string(),
        })?;
        builder = apply(builder, parsed, value);
    }
    Ok(builder)
}

mod cloud {
    use super::*;

    #[cfg(any(feature = "aws", feature = "aws-ring"))]
    pub fn s3(url: &url::Url, options: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
        let builder = AmazonS3Builder::from_env().with_url(bucket_url(url));
        let builder = with_options(builder, options, |b, k: AmazonS3ConfigKey, v| b.with_config(k, v))?;
        #[cfg(all(feature = "aws-ring", not(feature = "aws")))]
        {
            // reqwest's rustls has no crypto provider of its own here: ring's
            // is installed once for the process (an error only says one is
            // installed already, which is as good). ring has no post-quantum
            // key exchange (hence the deprecation); `aws` has.
            #[allow(deprecated)]
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        Ok(Arc::new(builder.build().map_err(|e| built(display, options, e))?))
    }

    #[cfg(not(any(feature = "aws", feature = "aws-ring")))]
    pub fn s3(_: &url::Url, _: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        Err(SnapshotError::ServiceNotBuilt {
            url: display.to_owned(),
            feature: "aws",
        })
    }

    #[cfg(feature = "gcp")]
    pub fn gcs(url: &url::Url, options: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
        let builder = GoogleCloudStorageBuilder::from_env().with_url(bucket_url(url));
        let builder = with_options(builder, options, |b, k: GoogleConfigKey, v| b.with_config(k, v))?;
        Ok(Arc::new(builder.build().map_err(|e| built(display, options, e))?))
    }

    #[cfg(not(feature = "gcp"))]
    pub fn gcs(_: &url::Url, _: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        Err(SnapshotError::ServiceNotBuilt {
            url: display.to_owned(),
            feature: "gcp",
        })
    }

    #[cfg(feature = "azure")]
    pub fn azure(url: &url::Url, options: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
        let builder = MicrosoftAzureBuilder::from_env().with_url(bucket_url(url));
        let builder = with_options(builder, options, |b, k: AzureConfigKey, v| b.with_config(k, v))?;
        Ok(Arc::new(builder.build().map_err(|e| built(display, options, e))?))
    }

    #[cfg(not(feature = "azure"))]
    pub fn azure(_: &url::Url, _: &StoreOptions, display: &str) -> Result<Arc<dyn ObjectStore>> {
        Err(SnapshotError::ServiceNotBuilt {
            url: display.to_owned(),
            feature: "azure",
        })
    }

    /// A builder's refusal, without secrets.
    #[cfg(any(feature = "aws", feature = "aws-ring", feature = "gcp", feature = "azure"))]
    fn built(display: &str, options: &StoreOptions, e: object_store::Error) -> SnapshotError {
        SnapshotError::BadUrl {
            url: display.to_owned(),
            reason: Secrets::collect(options.iter()).redact(&e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_hide_secret_values() {
        let o = StoreOptions::new()
            .with("aws_region", "eu-west-1")
            .with("aws_secret_access_key", "very-secret");
        let shown = format!("{o:?}");
        assert!(shown.contains("eu-west-1"), "{shown}");
        assert!(!shown.contains("very-secret"), "{shown}");
    }

    #[test]
    fn options_read_from_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.conf");
        std::fs::write(&path, "# credentials\naws_region = eu-west-1\n\naws_allow_http=true\n").unwrap();
        let o = StoreOptions::from_file(&path).unwrap();
        assert_eq!(
            o.iter().collect::<Vec<_>>(),
            vec![("aws_region", "eu-west-1"), ("aws_allow_http", "true")]
        );
        std::fs::write(&path, "aws_secret_access_key\n").unwrap();
        let err = StoreOptions::from_file(&path).unwrap_err();
        assert!(matches!(err, SnapshotError::BadOption { .. }), "{err}");
    }

    #[test]
    fn urls_are_checked() {
        let err = connect("ftp://host/x", &StoreOptions::new()).err().unwrap();
        assert!(err.to_string().contains("unknown scheme"), "{err}");
        let err = connect("s3://user:pw@bucket/x", &StoreOptions::new()).err().unwrap();
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(err.to_string().contains("credentials do not belong"), "{err}");
        let err = connect("file:relative", &StoreOptions::new()).err().unwrap();
        assert!(matches!(err, SnapshotError::BadUrl { .. }), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let url = format!("file://{}/snapshots", dir.path().display());
        let c = connect(&url, &StoreOptions::new()).unwrap();
        assert!(dir.path().join("snapshots").is_dir());
        assert_eq!(c.display, url);
    }
}
