//! Realistic webhook bodies from the plugins' seed fixtures, each made unique per request (the
//! provider's event id is rewritten, so the log does not deduplicate them) and signed the way
//! the source's adapter verifies it with its production settings (fail-closed adapters: every
//! source has its secret configured, and the load tool sends what a provider would).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Prefix of every provider event id the load tool sends: `bench-<request number>`.
pub const ID_PREFIX: &str = "bench-";

/// Placeholder written where the provider event id goes, then split out of the template.
const MARKER: &str = "__TRIBUTARY_BENCH_EVENT_ID__";

/// Secrets the load tool configures and signs with.
pub const ARCADIA_TOKEN: &str = "bench-arcadia-token";
/// HMAC key of the Finicity source.
pub const FINICITY_SECRET: &str = "bench-finicity-secret";
/// HMAC key of the Klavi source.
pub const KLAVI_SECRET: &str = "bench-klavi-secret";

/// How a source authenticates webhooks.
#[derive(Debug, Clone)]
pub enum Signing {
    /// A fixed shared header (Arcadia's custom-header verification).
    Header { name: &'static str, value: String },
    /// Hex HMAC-SHA256 of the body in `header`, and the send time (unix seconds) in
    /// `timestamp`, if any (Klavi's freshness check, required by default).
    Hmac {
        header: &'static str,
        key: Vec<u8>,
        timestamp: Option<&'static str>,
    },
}

/// One payload kind, ready to be stamped with an event id.
#[derive(Debug, Clone)]
pub struct Template {
    /// Source name (`POST /webhooks/{source}`).
    pub source: &'static str,
    /// Short label, e.g. "arcadia/statement".
    pub kind: &'static str,
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    signing: Signing,
}

/// A request ready to send.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Raw body bytes.
    pub body: Vec<u8>,
    /// The authentication headers (name, value).
    pub headers: Vec<(&'static str, String)>,
}

impl Template {
    /// Reads `file` (JSON), sets the id at `pointer` to a placeholder and keeps the bytes around
    /// it. The body is re-serialised compactly; its content is the fixture's.
    fn load(
        file: &Path,
        pointer: &str,
        source: &'static str,
        kind: &'static str,
        signing: Signing,
    ) -> anyhow::Result<Self> {
        let bytes =
            std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
        let mut json: Value = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not JSON", file.display()))?;
        let Some(id) = json.pointer_mut(pointer) else {
            bail!("{} has no {pointer}", file.display());
        };
        *id = Value::String(MARKER.to_owned());
        let text = serde_json::to_vec(&json)?;
        let at = text
            .windows(MARKER.len())
            .position(|w| w == MARKER.as_bytes())
            .context("placeholder lost in serialisation")?;
        Ok(Self {
            source,
            kind,
            prefix: text[..at].to_vec(),
            suffix: text[at + MARKER.len()..].to_vec(),
            signing,
        })
    }

    /// The body for request number `n` of run `run`, with provider event id
    /// `bench-<run>-<n>` (unique across the runs that share one log), and its signature.
    pub fn webhook(&self, run: &str, n: u64) -> Webhook {
        let id = format!("{ID_PREFIX}{run}-{n}");
        let mut body = Vec::with_capacity(self.prefix.len() + id.len() + self.suffix.len());
        body.extend_from_slice(&self.prefix);
        body.extend_from_slice(id.as_bytes());
        body.extend_from_slice(&self.suffix);
        let headers = match &self.signing {
            Signing::Header { name, value } => vec![(*name, value.clone())],
            Signing::Hmac {
                header,
                key,
                timestamp,
            } => {
                let mut headers = vec![(*header, hmac_hex(key, &body))];
                if let Some(name) = timestamp {
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs());
                    headers.push((*name, now.to_string()));
                }
                headers
            }
        };
        Webhook { body, headers }
    }
}

/// Lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The request number in a provider event id run `run` sent, if it is one.
pub fn request_number(provider_event_id: &str, run: &str) -> Option<usize> {
    provider_event_id
        .strip_prefix(ID_PREFIX)?
        .strip_prefix(run)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The six payload kinds of the three providers, read from `repo/plugins/*/fixtures`.
pub fn templates(repo: &Path) -> anyhow::Result<Vec<Template>> {
    let fixtures = |adapter: &str, name: &str| {
        repo.join("plugins")
            .join(adapter)
            .join("fixtures")
            .join(format!("{name}.raw.json"))
    };
    let arcadia = || Signing::Header {
        name: "x-arcadia-token",
        value: ARCADIA_TOKEN.to_owned(),
    };
    let finicity = || Signing::Hmac {
        header: "x-finicity-signature",
        key: FINICITY_SECRET.as_bytes().to_vec(),
        timestamp: None,
    };
    let klavi = || Signing::Hmac {
        header: "x-klavi-signature",
        key: KLAVI_SECRET.as_bytes().to_vec(),
        timestamp: Some("x-klavi-timestamp"),
    };
    Ok(vec![
        Template::load(
            &fixtures("arcadia", "seed-statement-new-data-available"),
            "/id",
            "arcadia",
            "arcadia/statement",
            arcadia(),
        )?,
        Template::load(
            &fixtures("arcadia", "seed-credential-status-change-success"),
            "/id",
            "arcadia",
            "arcadia/credential",
            arcadia(),
        )?,
        Template::load(
            &fixtures("arcadia", "seed-meter-new-data-available"),
            "/id",
            "arcadia",
            "arcadia/meter",
            arcadia(),
        )?,
        Template::load(
            &fixtures("finicity", "added"),
            "/eventId",
            "finicity",
            "finicity/added",
            finicity(),
        )?,
        Template::load(
            &fixtures("finicity", "discovered"),
            "/eventId",
            "finicity",
            "finicity/discovered",
            finicity(),
        )?,
        Template::load(
            &fixtures("klavi", "seed-consent-authorised"),
            "/0/eventId",
            "klavi",
            "klavi/consent",
            klavi(),
        )?,
    ])
}

/// What the generated service configuration contains besides the sources.
#[derive(Debug, Clone, Copy)]
pub struct ServiceConfig<'a> {
    /// `[log] durable`.
    pub durable: bool,
    /// `[log] engine` (only when set: older builds refuse the key).
    pub engine: Option<&'a str>,
    /// Switch off the per-client-address connection caps (`[http]`/`[grpc]
    /// max_connections_per_address`): every load comes from 127.0.0.1, and the fan-out
    /// scenarios open a connection per subscriber. Only for builds that have the caps.
    pub lift_address_caps: bool,
    /// Each adapter's secret under its own older key (Arcadia `verification.headers`,
    /// Finicity `secret`, Klavi `secret_key`), for a reference build that predates
    /// `verification.secrets`.
    pub legacy_secrets: bool,
    /// `[http.tls]` certificate and key files.
    pub tls: Option<(&'a Path, &'a Path)>,
    /// Write `[http] rate_limit_per_second = 0`. Binaries from before the per-source limit
    /// refuse the key (unknown keys stop start-up), and have no limit to switch off.
    pub rate_limit_off: bool,
    /// Write `[archive] enabled = false` (only then: older builds refuse the section).
    pub archive_off: bool,
}

/// The service configuration giving each source its secret, as TOML: Arcadia checks a shared
/// `X-Arcadia-Token` header, Finicity and Klavi an HMAC of the body (Klavi also the timestamp,
/// within its default 300 s), as in production. The per-source rate limit (default 1,000/s)
/// is switched off: the load tool measures the service, not the limiter.
pub fn service_config(config: &ServiceConfig<'_>) -> String {
    let durable = config.durable;
    let engine = config
        .engine
        .map(|engine| format!("engine = {}\n", toml_string(engine)))
        .unwrap_or_default();
    let mut http = String::new();
    if config.rate_limit_off || config.lift_address_caps {
        http.push_str("[http]\n");
        if config.rate_limit_off {
            http.push_str("rate_limit_per_second = 0\n");
        }
        if config.lift_address_caps {
            http.push_str("max_connections_per_address = 0\n");
        }
        http.push('\n');
    }
    if config.lift_address_caps {
        http.push_str("[grpc]\nmax_connections_per_address = 0\n\n");
    }
    if let Some((cert, key)) = config.tls {
        http.push_str(&format!(
            "[http.tls]\ncert_file = {}\nkey_file = {}\n\n",
            toml_string(&cert.display().to_string()),
            toml_string(&key.display().to_string()),
        ));
    }
    if config.archive_off {
        http.push_str("[archive]\nenabled = false\n\n");
    }
    let sources = if config.legacy_secrets {
        format!(
            r#"[sources.arcadia]
adapter = "arcadia"
[sources.arcadia.config.verification.headers]
X-Arcadia-Token = "{ARCADIA_TOKEN}"

[sources.finicity]
adapter = "finicity"
config = {{ secret = "{FINICITY_SECRET}" }}

[sources.klavi]
adapter = "klavi"
config = {{ secret_key = "{KLAVI_SECRET}" }}
"#
        )
    } else {
        format!(
            r#"[sources.arcadia]
adapter = "arcadia"
config = {{ verification = {{ secrets = ["{ARCADIA_TOKEN}"] }} }}

[sources.finicity]
adapter = "finicity"
config = {{ verification = {{ secrets = ["{FINICITY_SECRET}"] }} }}

[sources.klavi]
adapter = "klavi"
config = {{ verification = {{ secrets = ["{KLAVI_SECRET}"] }} }}
"#
        )
    };
    format!(
        r#"[log]
durable = {durable}
{engine}
{http}{sources}"#
    )
}

/// A TOML basic string (paths of temp directories: no control characters expected).
fn toml_string(text: &str) -> String {
    serde_json::Value::String(text.to_owned()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_rewritten_and_signed() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let templates = templates(&repo).expect("templates");
        assert_eq!(templates.len(), 6);
        for template in &templates {
            let webhook = template.webhook("r7", 42);
            let text = String::from_utf8(webhook.body.clone()).expect("utf8");
            assert!(
                text.contains("\"bench-r7-42\""),
                "{}: {text}",
                template.kind
            );
            match &template.signing {
                Signing::Hmac { key, timestamp, .. } => {
                    assert_eq!(webhook.headers[0].1, hmac_hex(key, &webhook.body));
                    assert_eq!(webhook.headers.len(), 1 + usize::from(timestamp.is_some()));
                }
                Signing::Header { value, .. } => assert_eq!(&webhook.headers[0].1, value),
            }
        }
        assert_eq!(request_number("bench-r7-42", "r7"), Some(42));
        assert_eq!(request_number("bench-r8-42", "r7"), None);
        assert_eq!(request_number("whk_1", "r7"), None);
    }
}
