//! Keeping configured secrets out of every text the process writes: the
//! values of `[influxdb] password` and `token`, `[elasticsearch] password`
//! and `api_key`, and of the secret-looking `[kafka_client]` properties are
//! registered once the configuration is loaded, and [`mask`] replaces them
//! with `****` wherever they appear. The logger passes every line through it
//! (librdkafka's error texts quote property values), and so do error
//! messages on stderr, dead-letter reasons and the health endpoint's texts.

use std::borrow::Cow;
use std::sync::RwLock;

use crate::config::Config;

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// The registered secrets, longest first (so that a secret containing
/// another is masked whole).
static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Registers every secret of `config` for [`mask`]. Registering adds: a
/// process that loads several configurations masks the secrets of all.
pub fn register(config: &Config) {
    let mut secrets = SECRETS.write().unwrap_or_else(|e| e.into_inner());
    for value in config.secret_values() {
        if !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_string());
        }
    }
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
}

/// `text` with every registered secret replaced by [`MASK`].
pub fn mask(text: &str) -> Cow<'_, str> {
    let secrets = SECRETS.read().unwrap_or_else(|e| e.into_inner());
    mask_with(text, &secrets)
}

fn mask_with<'a>(text: &'a str, secrets: &[String]) -> Cow<'a, str> {
    let mut out = Cow::Borrowed(text);
    for secret in secrets {
        if out.contains(secret.as_str()) {
            out = Cow::Owned(out.replace(secret.as_str(), MASK));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_occurrence_is_masked_longest_first() {
        let secrets = vec!["hunter2-long".to_string(), "hunter2".to_string()];
        assert_eq!(
            mask_with("a hunter2-long b hunter2 c hunter2", &secrets),
            "a **** b **** c ****"
        );
        assert!(matches!(
            mask_with("nothing here", &secrets),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn registered_secrets_of_a_configuration_are_masked() {
        let loaded = crate::config::load_str(
            "t.conf",
            "[influxdb]\npassword = influx-pw-123\n[kafka_client]\nsasl.password = kafka-pw-456\nclient.rack = rack-1\n",
        )
        .unwrap();
        register(&loaded.config);
        let text = "Client config error: x sasl.password kafka-pw-456; influx-pw-123; rack-1";
        assert_eq!(
            mask(text),
            "Client config error: x sasl.password ****; ****; rack-1"
        );
    }
}
