//! Keeping credentials out of messages: store URLs shown without user
//! information or query strings (Azure SAS tokens travel there), and every
//! message of the object store's client stripped of the secret values this
//! process knows.

/// Environment variables whose values are credentials, as object_store's
/// builders read them (`from_env`).
const SECRET_ENV: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    "AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CLIENT_SECRET",
    "GOOGLE_SERVICE_ACCOUNT_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS_JSON",
];

/// Words that make a store option's value a secret (`aws_secret_access_key`,
/// `azure_storage_sas_key`, `google_service_account_key`, ...).
const SECRET_WORDS: &[&str] = &["secret", "token", "password", "key", "sas", "credential", "signature"];

/// True if a store option named `key` holds a credential (its value is
/// never shown).
pub fn is_secret_option(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

/// The secret values a store was configured with, to strip from messages.
#[derive(Clone, Default)]
pub struct Secrets {
    values: Vec<String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} values)", self.values.len())
    }
}

impl Secrets {
    /// The secret values among `options` and in the environment.
    pub fn collect<'a>(options: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let mut values: Vec<String> = options
            .into_iter()
            .filter(|(k, _)| is_secret_option(k))
            .map(|(_, v)| v.to_owned())
            .collect();
        values.extend(SECRET_ENV.iter().filter_map(|name| std::env::var(name).ok()));
        // Short values would blank out ordinary words.
        values.retain(|v| v.len() >= 4);
        values.sort_by_key(|v| std::cmp::Reverse(v.len()));
        values.dedup();
        Secrets { values }
    }

    /// `message` with every secret value replaced by `[redacted]`.
    pub fn redact(&self, message: &str) -> String {
        let mut out = message.to_owned();
        for v in &self.values {
            if out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "[redacted]");
            }
        }
        out
    }
}

/// `url` as it may be shown: without `user:password@` and without a query
/// string or fragment.
pub fn display_url(url: &str) -> String {
    let (base, _) = url.split_once(['?', '#']).unwrap_or((url, ""));
    match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
            let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            match path {
                Some(p) => format!("{scheme}://{authority}/{p}"),
                None => format!("{scheme}://{authority}"),
            }
        }
        None => base.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(display_url("s3://bucket/a/b"), "s3://bucket/a/b");
        assert_eq!(display_url("s3://key:secret@bucket/a"), "s3://bucket/a");
        assert_eq!(
            display_url("https://acct.blob.core.windows.net/c/p?sv=2020&sig=abc"),
            "https://acct.blob.core.windows.net/c/p"
        );
        assert_eq!(display_url("file:///var/snap"), "file:///var/snap");
    }

    #[test]
    fn secret_option_values_are_redacted() {
        let s = Secrets::collect([("aws_secret_access_key", "s3cr3t-value"), ("aws_region", "eu-west-1")]);
        assert_eq!(
            s.redact("failed with s3cr3t-value in eu-west-1"),
            "failed with [redacted] in eu-west-1"
        );
        assert!(is_secret_option("AZURE_STORAGE_SAS_KEY"));
        assert!(!is_secret_option("aws_endpoint"));
        assert!(format!("{s:?}").contains("values"));
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
