//! The raw archive: what a provider actually sent, kept so history can be re-normalized by a
//! newer adapter (replay) and an operator can see the source of a wrong event. The body and
//! headers hold personal data, so they are sealed here, before the log stores them; the log
//! sees only the entry's clear metadata (source, content key, time, adapter).

mod keys;

use std::path::Path;

use prost::Message;
use sha2::{Digest, Sha256};
use tributary_event_log::Reseal;
use tributary_model::v1::{ArchiveEntry, DeadLetter, RawWebhook, WebhookRequest};

use crate::config::ArchiveConfig;
use crate::error::{ErrorCode, ServiceError};

pub use keys::Keyring;

/// Headers that carry credentials whatever the provider.
const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
];
/// Config strings at least this long are withheld wherever they appear inside a value;
/// shorter ones (too likely to occur by chance inside other text) when they are the whole
/// value or one of its words.
const SUBSTRING_SECRET_LEN: usize = 8;
/// How entries are compressed before sealing (`ArchiveEntry.compression`).
const LZ4: &str = "lz4";
/// Largest webhook an entry opens to: far above any body limit the service accepts.
const MAX_RAW_BYTES: usize = 1 << 30;

/// Why an archive entry could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid archive keys: {0}")]
    InvalidKeys(String),
    /// The entry was sealed with a key that is not configured (any more).
    #[error("archive key `{0}` is not configured")]
    UnknownKey(String),
    /// Wrong key material, or the stored bytes were changed.
    #[error("the archive entry cannot be opened: wrong key or altered data")]
    Tampered,
    #[error("the archive entry does not decode: {0}")]
    Corrupt(#[from] prost::DecodeError),
    #[error("the archive entry does not decompress")]
    Decompress,
    /// Written by a newer version of the service.
    #[error("the archive entry uses an unknown compression `{0}`")]
    UnknownCompression(String),
}

impl ServiceError for ArchiveError {
    /// A configuration fault or damaged storage: nothing the caller can fix.
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Internal
    }

    fn public_message(&self) -> String {
        self.to_string()
    }
}

/// Seals webhooks into archive entries and opens them again.
#[derive(Debug)]
pub struct Archive {
    keys: Keyring,
    keep_secret_headers: bool,
}

impl Archive {
    /// The archive `config` describes, or `None` when it is off.
    pub fn open_configured(
        config: &ArchiveConfig,
        data_dir: &Path,
    ) -> Result<Option<Self>, ArchiveError> {
        if !config.enabled {
            return Ok(None);
        }
        let keys = match (&config.key_file, &config.key_env) {
            (Some(path), _) => Keyring::read(path)?,
            (None, Some(name)) => {
                let text = std::env::var(name).map_err(|_| {
                    ArchiveError::InvalidKeys(format!("environment variable {name} is not set"))
                })?;
                Keyring::parse(&text)?
            }
            (None, None) => {
                tracing::warn!(
                    "archive keys are generated in the data directory (archive.key): give \
                     archive.key_file or archive.key_env kept elsewhere to protect the archive \
                     from someone who can read the data directory"
                );
                Keyring::read_or_create(&data_dir.join("archive.key"))?
            }
        };
        Ok(Some(Self {
            keys,
            keep_secret_headers: config.keep_secret_headers,
        }))
    }

    /// The sealed entry for `request`, received by `source` and handled by `adapter` at
    /// `version`. `secrets` are the source's configured strings: a header or query parameter
    /// whose value holds one is withheld (unless configured otherwise), like `SECRET_HEADERS`.
    pub fn seal(
        &self,
        request: &WebhookRequest,
        (adapter, version): (&str, &str),
        secrets: &[String],
    ) -> Result<ArchiveEntry, ArchiveError> {
        let mut withheld = Vec::new();
        let is_secret = |name: &str, value: &str| {
            !self.keep_secret_headers
                && (SECRET_HEADERS
                    .iter()
                    .any(|secret| name.eq_ignore_ascii_case(secret))
                    || holds_secret(value, secrets))
        };
        let headers = request
            .headers
            .iter()
            .filter(|h| {
                let secret = is_secret(&h.name, &h.value);
                if secret {
                    withheld.push(h.name.clone());
                }
                !secret
            })
            .cloned()
            .collect();
        let query = request
            .query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .filter(|pair| {
                let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                let secret = is_secret("", value);
                if secret {
                    withheld.push(format!("?{name}"));
                }
                !secret
            })
            .collect::<Vec<_>>()
            .join("&");
        let content_key = content_key(&request.body);
        let raw = RawWebhook {
            source: request.source.clone(),
            adapter: adapter.to_owned(),
            adapter_version: version.to_owned(),
            received_at: request.received_at,
            method: request.method.clone(),
            path: request.path.clone(),
            query,
            headers,
            body: request.body.clone(),
            withheld,
            ..RawWebhook::default()
        };
        // Compressed, then encrypted in the same buffer (the tag appended to it).
        let packed = lz4_flex::block::compress_prepend_size(&raw.encode_to_vec());
        let sealed = self
            .keys
            .seal(&associated(&request.source, &content_key, LZ4), packed)?;
        Ok(ArchiveEntry {
            id: 0,
            source: request.source.clone(),
            content_key,
            received_at: request.received_at,
            adapter: adapter.to_owned(),
            adapter_version: version.to_owned(),
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            compression: LZ4.to_owned(),
            ..ArchiveEntry::default()
        })
    }

    /// The webhook sealed in `entry`, with the entry's id and what it produced.
    pub fn open(&self, entry: &ArchiveEntry) -> Result<RawWebhook, ArchiveError> {
        let plain = self.keys.open(
            &entry.key_id,
            &entry.nonce,
            &associated(&entry.source, &entry.content_key, &entry.compression),
            &entry.ciphertext,
        )?;
        let plain = match entry.compression.as_str() {
            "" => plain,
            LZ4 => decompress(&plain)?,
            other => return Err(ArchiveError::UnknownCompression(other.to_owned())),
        };
        let mut raw = RawWebhook::decode(plain.as_slice())?;
        raw.archive_id = entry.id;
        raw.sequences.clone_from(&entry.sequences);
        raw.dead_letter_ids.clone_from(&entry.dead_letter_ids);
        Ok(raw)
    }

    /// The key id that seals now (the first of the key file).
    pub fn current_key_id(&self) -> &str {
        self.keys.current()
    }

    /// Every configured key id, the current one first.
    pub fn key_ids(&self) -> Vec<String> {
        self.keys.ids()
    }

    /// `entry`'s content sealed again with the current key, bound to the same associated data
    /// (source, content key, compression), for [`EventLog::reseal_archive_entry`]: a key
    /// rotation. The compressed plaintext is sealed as it was opened, never decoded.
    ///
    /// [`EventLog::reseal_archive_entry`]: tributary_event_log::EventLog::reseal_archive_entry
    pub fn reseal(&self, entry: &ArchiveEntry) -> Result<Reseal, ArchiveError> {
        let associated = associated(&entry.source, &entry.content_key, &entry.compression);
        let plain = self
            .keys
            .open(&entry.key_id, &entry.nonce, &associated, &entry.ciphertext)?;
        // Encrypted in place: the opened bytes become the new ciphertext.
        let sealed = self.keys.seal(&associated, plain)?;
        Ok(Reseal {
            id: entry.id,
            from_key_id: entry.key_id.clone(),
            from_nonce: entry.nonce.clone(),
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        })
    }

    /// A dead letter's sealed raw item sealed again with the current key (same associated
    /// data), for [`EventLog::reseal_dead_letter`]. `letter` is as stored (`raw_key_id` set).
    ///
    /// [`EventLog::reseal_dead_letter`]: tributary_event_log::EventLog::reseal_dead_letter
    pub fn reseal_dead_letter(&self, letter: &DeadLetter) -> Result<Reseal, ArchiveError> {
        let associated = dead_letter_associated(letter);
        let plain = self.keys.open(
            &letter.raw_key_id,
            &letter.raw_nonce,
            &associated,
            &letter.raw,
        )?;
        let sealed = self.keys.seal(&associated, plain)?;
        Ok(Reseal {
            id: letter.id,
            from_key_id: letter.raw_key_id.clone(),
            from_nonce: letter.raw_nonce.clone(),
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
        })
    }

    /// Seals a dead letter's raw item in place (it holds personal data like the archive).
    pub fn seal_dead_letter(&self, letter: &mut DeadLetter) -> Result<(), ArchiveError> {
        let sealed = self.keys.seal(
            &dead_letter_associated(letter),
            std::mem::take(&mut letter.raw),
        )?;
        letter.raw = sealed.ciphertext;
        letter.raw_key_id = sealed.key_id;
        letter.raw_nonce = sealed.nonce;
        Ok(())
    }

    /// Opens a dead letter's raw item in place; one stored in clear is left as it is.
    pub fn open_dead_letter(&self, letter: &mut DeadLetter) -> Result<(), ArchiveError> {
        if letter.raw_key_id.is_empty() {
            return Ok(());
        }
        letter.raw = self.keys.open(
            &letter.raw_key_id,
            &letter.raw_nonce,
            &dead_letter_associated(letter),
            &letter.raw,
        )?;
        letter.raw_key_id.clear();
        letter.raw_nonce.clear();
        Ok(())
    }

    /// The request to normalize `raw` again (verification was done when it was received).
    pub fn replay_request(raw: &RawWebhook) -> WebhookRequest {
        WebhookRequest {
            source: raw.source.clone(),
            method: raw.method.clone(),
            path: raw.path.clone(),
            query: raw.query.clone(),
            headers: raw.headers.clone(),
            body: raw.body.clone(),
            received_at: raw.received_at,
            skip_verification: true,
            ..WebhookRequest::default()
        }
    }
}

/// `"sha256:<hex>"` of the body: a provider's retry sends the same bytes.
pub fn content_key(body: &[u8]) -> String {
    const PREFIX: &str = "sha256:";
    let mut hex = [0u8; 64];
    // A 32-byte digest always fits 64 hex digits.
    let _ = hex::encode_to_slice(Sha256::digest(body), &mut hex);
    let mut key = String::with_capacity(PREFIX.len() + hex.len());
    key.push_str(PREFIX);
    key.extend(hex.iter().map(|&digit| char::from(digit)));
    key
}

/// What a sealed entry is bound to: moving a ciphertext to another entry, or changing how it
/// says it was compressed, fails to open. (Entries sealed before compression bind no method.)
fn associated(source: &str, content_key: &str, compression: &str) -> Vec<u8> {
    let mut data = format!("tributary-archive-v1\n{source}\n{content_key}");
    if !compression.is_empty() {
        data.push('\n');
        data.push_str(compression);
    }
    data.into_bytes()
}

/// An LZ4 block with its size first. The bytes were authenticated before this, so the size
/// is the one the service wrote; the bound only keeps a damaged key file from allocating
/// without limit.
fn decompress(packed: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let (size, block) =
        lz4_flex::block::uncompressed_size(packed).map_err(|_| ArchiveError::Decompress)?;
    if size > MAX_RAW_BYTES {
        return Err(ArchiveError::Decompress);
    }
    lz4_flex::block::decompress(block, size).map_err(|_| ArchiveError::Decompress)
}

/// What a sealed dead-letter item is bound to.
fn dead_letter_associated(letter: &DeadLetter) -> Vec<u8> {
    format!(
        "tributary-dead-letter-v1\n{}\n{}",
        letter.source, letter.provider_event_id
    )
    .into_bytes()
}

/// Whether a header or query value holds one of `secrets`, compared on the value as sent
/// and percent-decoded (as a query parameter or a header in `application/x-www-form-urlencoded`
/// form would carry it): a long secret anywhere inside it, a short one as the whole value or
/// one of its words (split at anything but letters, digits, `-`, `_`, `.`, `~`).
pub fn holds_secret(value: &str, secrets: &[String]) -> bool {
    if secrets.is_empty() {
        return false;
    }
    let decoded = percent_decode(value);
    let word = |c: char| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '~'));
    [value, decoded.as_str()].into_iter().any(|candidate| {
        secrets
            .iter()
            .filter(|secret| !secret.is_empty())
            .any(|secret| {
                if secret.len() >= SUBSTRING_SECRET_LEN {
                    candidate.contains(secret.as_str())
                } else {
                    candidate == secret || candidate.split(word).any(|part| part == secret.as_str())
                }
            })
    })
}

/// `value` with `+` as a space and `%XX` escapes decoded (invalid escapes kept as they are).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        // Two hex digits: at most 255.
                        out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every non-empty string of a source's config (any depth): each may be a secret.
pub fn config_secrets(config: &toml::Table) -> Vec<String> {
    fn walk(value: &toml::Value, out: &mut Vec<String>) {
        match value {
            toml::Value::String(text) if !text.is_empty() => out.push(text.clone()),
            toml::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            toml::Value::Table(table) => table.values().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    config.values().for_each(|v| walk(v, &mut out));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tributary_model::v1::Header;

    fn header(name: &str, value: &str) -> Header {
        Header {
            name: name.to_owned(),
            value: value.to_owned(),
        }
    }

    fn archive(keep_secret_headers: bool) -> Archive {
        Archive {
            keys: Keyring::parse(
                "k1 0101010101010101010101010101010101010101010101010101010101010101",
            )
            .expect("keys"),
            keep_secret_headers,
        }
    }

    fn request() -> WebhookRequest {
        WebhookRequest {
            source: "arcadia".into(),
            method: "POST".into(),
            path: "/webhooks/arcadia".into(),
            query: "token=shared-secret-123&page=2".into(),
            headers: vec![
                header("content-type", "application/json"),
                header("x-arcadia-token", "shared-secret-123"),
                header("Authorization", "Bearer abc"),
                header("x-signature", "abcdef"),
            ],
            body: br#"{"id":"whk_1"}"#.to_vec(),
            ..WebhookRequest::default()
        }
    }

    #[test]
    fn secret_bearing_headers_and_parameters_are_withheld() {
        let secrets = vec!["shared-secret-123".to_owned()];
        let archive = archive(false);
        let entry = archive
            .seal(&request(), ("arcadia", "1.2.0"), &secrets)
            .expect("sealed");
        assert_eq!(
            entry.content_key,
            format!(
                "sha256:{}",
                hex::encode(Sha256::digest(br#"{"id":"whk_1"}"#))
            )
        );
        assert!(!entry.ciphertext.windows(6).any(|w| w == b"whk_1\""));
        let raw = archive.open(&entry).expect("opens");
        assert_eq!(raw.body, br#"{"id":"whk_1"}"#);
        assert_eq!(raw.query, "page=2");
        assert_eq!(
            raw.headers,
            vec![
                header("content-type", "application/json"),
                header("x-signature", "abcdef")
            ]
        );
        assert_eq!(raw.withheld, ["x-arcadia-token", "Authorization", "?token"]);
        assert_eq!(
            (raw.adapter.as_str(), raw.adapter_version.as_str()),
            ("arcadia", "1.2.0")
        );

        let keeping = self::tests::archive(true);
        let kept = keeping
            .seal(&request(), ("arcadia", "1.2.0"), &secrets)
            .expect("sealed");
        let raw = keeping.open(&kept).expect("opens");
        assert_eq!((raw.headers.len(), raw.withheld.len()), (4, 0));
    }

    #[test]
    fn an_entry_moved_to_another_source_does_not_open() {
        let archive = archive(false);
        let mut entry = archive
            .seal(&request(), ("arcadia", "1"), &[])
            .expect("sealed");
        entry.source = "elsewhere".into();
        assert!(matches!(archive.open(&entry), Err(ArchiveError::Tampered)));
    }

    #[test]
    fn entries_are_compressed_and_the_method_is_sealed_with_them() {
        let archive = archive(false);
        let mut request = request();
        request.body = br#"{"lineItems":["#
            .iter()
            .chain(br#"{"charge":12.5,"unit":"kWh"},"#.repeat(40).iter())
            .copied()
            .collect();
        let encoded_len = RawWebhook {
            body: request.body.clone(),
            ..RawWebhook::default()
        }
        .encoded_len();
        let entry = archive.seal(&request, ("a", "1"), &[]).expect("sealed");
        assert_eq!(entry.compression, "lz4");
        assert!(
            entry.ciphertext.len() < encoded_len / 4,
            "{} sealed bytes for a {encoded_len}-byte webhook",
            entry.ciphertext.len()
        );
        assert_eq!(archive.open(&entry).expect("opens").body, request.body);

        let mut changed = entry.clone();
        changed.compression.clear();
        assert!(matches!(
            archive.open(&changed),
            Err(ArchiveError::Tampered)
        ));
    }

    #[test]
    fn the_content_key_is_the_bodys_sha256_in_hex() {
        assert_eq!(
            content_key(b"abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn entries_sealed_before_compression_still_open() {
        let archive = archive(false);
        let raw = RawWebhook {
            source: "arcadia".into(),
            body: br#"{"id":"whk_1"}"#.to_vec(),
            ..RawWebhook::default()
        };
        let key = content_key(&raw.body);
        let sealed = archive
            .keys
            .seal(&associated("arcadia", &key, ""), raw.encode_to_vec())
            .expect("sealed");
        let entry = ArchiveEntry {
            source: "arcadia".into(),
            content_key: key,
            key_id: sealed.key_id,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            ..ArchiveEntry::default()
        };
        assert_eq!(archive.open(&entry).expect("opens").body, raw.body);
    }

    #[test]
    fn every_config_string_is_a_secret() {
        let config: toml::Table = toml::from_str(
            r#"verification = { headers = { "X-Token" = "long-enough-token" } }
               secret = "short"
               empty = ""
               list = ["another-long-one", 3]"#,
        )
        .expect("toml");
        let mut secrets = config_secrets(&config);
        secrets.sort();
        assert_eq!(secrets, ["another-long-one", "long-enough-token", "short"]);
    }

    #[test]
    fn secrets_are_found_decoded_and_whatever_their_length() {
        let secrets = vec!["s3cr/t+x y".to_owned(), "abc".to_owned()];
        // Percent-encoded (and `+` for a space) in a query value.
        assert!(holds_secret("s3cr%2Ft%2Bx+y", &secrets));
        assert!(holds_secret("prefix-s3cr%2Ft%2Bx%20y-suffix", &secrets));
        // A short secret: the whole value, or one of its words.
        assert!(holds_secret("abc", &secrets));
        assert!(holds_secret("Bearer abc", &secrets));
        assert!(holds_secret("t=1,v1=abc", &secrets));
        assert!(holds_secret("%61bc", &secrets));
        // ...but not inside another word.
        assert!(!holds_secret("abcdef", &secrets));
        assert!(!holds_secret("fabc", &secrets));
        assert!(!holds_secret("anything", &[]));
        assert!(holds_secret("a&b=abc", &secrets), "an & in a header value");
        assert_eq!(percent_decode("%41%4a+%zz%4"), "AJ %zz%4");
    }

    #[test]
    fn an_encoded_or_short_query_secret_is_withheld() {
        let mut request = request();
        request.query = "token=shared%2Dsecret%2D123&k=pin&page=2".into();
        request.headers.clear();
        let secrets = vec!["shared-secret-123".to_owned(), "pin".to_owned()];
        let entry = archive(false)
            .seal(&request, ("arcadia", "1.2.0"), &secrets)
            .expect("seal");
        let raw = archive(false).open(&entry).expect("open");
        assert_eq!(raw.query, "page=2");
        assert_eq!(raw.withheld, ["?token", "?k"]);
    }

    fn with_keys(text: &str) -> Archive {
        Archive {
            keys: Keyring::parse(text).expect("keys"),
            keep_secret_headers: false,
        }
    }

    #[test]
    fn a_resealed_entry_and_dead_letter_open_with_the_new_key_alone() {
        const A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
        const B: &str = "0202020202020202020202020202020202020202020202020202020202020202";
        let old = with_keys(&format!("ka {A}"));
        let rotating = with_keys(&format!("kb {B}\nka {A}"));
        let new = with_keys(&format!("kb {B}"));
        let mut entry = old
            .seal(&request(), ("arcadia", "1.0.0"), &[])
            .expect("seal");
        entry.id = 7;
        let mut letter = DeadLetter {
            id: 3,
            source: "arcadia".into(),
            provider_event_id: "whk_1".into(),
            raw: b"{\"id\":\"whk_1\"}".to_vec(),
            ..DeadLetter::default()
        };
        old.seal_dead_letter(&mut letter).expect("seal letter");
        assert!(matches!(new.open(&entry), Err(ArchiveError::UnknownKey(id)) if id == "ka"));

        let reseal = rotating.reseal(&entry).expect("reseal");
        assert_eq!(
            (
                reseal.id,
                reseal.from_key_id.as_str(),
                reseal.key_id.as_str()
            ),
            (7, "ka", "kb")
        );
        assert_eq!(reseal.from_nonce, entry.nonce);
        assert_ne!(reseal.nonce, entry.nonce, "a fresh nonce");
        let resealed = ArchiveEntry {
            key_id: reseal.key_id,
            nonce: reseal.nonce,
            ciphertext: reseal.ciphertext,
            ..entry.clone()
        };
        assert_eq!(
            new.open(&resealed).expect("opens with kb"),
            old.open(&entry).expect("opens with ka")
        );
        let moved = ArchiveEntry {
            content_key: "sha256:other".into(),
            ..resealed
        };
        assert!(
            matches!(new.open(&moved), Err(ArchiveError::Tampered)),
            "still bound to its content key"
        );

        let reseal = rotating.reseal_dead_letter(&letter).expect("reseal letter");
        assert_eq!((reseal.id, reseal.key_id.as_str()), (3, "kb"));
        let mut resealed = DeadLetter {
            raw: reseal.ciphertext,
            raw_key_id: reseal.key_id,
            raw_nonce: reseal.nonce,
            ..letter.clone()
        };
        new.open_dead_letter(&mut resealed).expect("opens with kb");
        assert_eq!(resealed.raw, b"{\"id\":\"whk_1\"}");
        assert!(
            new.reseal(&entry).is_err(),
            "an entry whose key is gone cannot be resealed"
        );
    }
}
