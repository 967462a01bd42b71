//! Verification helpers. Every comparison with a secret is constant-time.
//!
//! Adapters fail closed: until verification is configured (a secret, a token...) every webhook
//! is rejected as unauthenticated (HTTP 401). The only way to accept unauthenticated webhooks is
//! the explicit switch every adapter spells the same, `"verification": {"disabled": true}`
//! ([`VerificationSwitch`]), which also produces a start-up warning ([`disabled_warning`]).

use std::fmt;

use hmac::{Hmac, Mac};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, de::value::MapAccessDeserializer};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The config spelling of the switch, for messages: `verification.disabled = true`.
pub const DISABLED_SWITCH: &str = "verification.disabled = true";

/// The `verification` table of an adapter whose secrets live elsewhere in its config:
/// `{"disabled": true}` switches verification off, anything else (or nothing) keeps it on.
///
/// A bare string (`verification = "none"`, the spelling of earlier versions) is refused with a
/// message naming the new spelling, so an old config cannot silently change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerificationSwitch {
    /// Accept webhooks without checking them. Only for local testing.
    pub disabled: bool,
}

impl<'de> Deserialize<'de> for VerificationSwitch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            disabled: bool,
        }

        struct SwitchVisitor;

        impl<'de> Visitor<'de> for SwitchVisitor {
            type Value = VerificationSwitch;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table such as {\"disabled\": true}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                Err(E::custom(format!(
                    "verification = {text:?} is not accepted: configure the secret to verify \
                     webhooks, or switch verification off with {{\"disabled\": true}} \
                     (TOML: verification = {{ disabled = true }})"
                )))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                let table = Table::deserialize(MapAccessDeserializer::new(map))?;
                Ok(VerificationSwitch {
                    disabled: table.disabled,
                })
            }
        }

        deserializer.deserialize_any(SwitchVisitor)
    }
}

/// The start-up warning of an adapter whose verification is switched off.
pub fn disabled_warning(adapter: &str) -> String {
    format!(
        "{adapter}: webhook verification is switched off ({DISABLED_SWITCH}): anyone who can \
         reach the endpoint can inject events"
    )
}

/// Compares two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of the concatenated `parts`, keyed with `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `signature_hex` (hex, either case, surrounding whitespace ignored) is the
/// HMAC-SHA256 of the concatenated `parts` under `key`. Constant-time in the signature.
///
/// An adapter that checks every webhook with the same key keeps an [`HmacKey`] instead.
pub fn hmac_sha256_hex_matches(key: &[u8], parts: &[&[u8]], signature_hex: &str) -> bool {
    HmacKey::new(key).matches_hex(parts, signature_hex)
}

/// An HMAC-SHA256 key prepared once, when the adapter is created: each check then hashes the
/// message only (the key's two padded blocks are already absorbed), and the signature is
/// decoded on the stack.
#[derive(Clone)]
pub struct HmacKey(Hmac<Sha256>);

impl HmacKey {
    /// Prepares `key` (any length: HMAC hashes longer keys first).
    pub fn new(key: &[u8]) -> Self {
        // `Hmac` takes keys of any length; `KeyInit::new_from_slice` only exists for the
        // fixed-size ciphers that do not.
        Self(
            <Hmac<Sha256> as hmac::digest::KeyInit>::new_from_slice(key)
                .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length")),
        )
    }

    /// Whether `signature_hex` (hex, either case, surrounding whitespace ignored) is the
    /// HMAC-SHA256 of the concatenated `parts`. Constant-time in the signature; anything but
    /// 64 hex digits is no match.
    pub fn matches_hex(&self, parts: &[&[u8]], signature_hex: &str) -> bool {
        let mut signature = [0_u8; 32];
        if hex::decode_to_slice(signature_hex.trim(), &mut signature).is_err() {
            return false;
        }
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.verify_slice(&signature).is_ok()
    }
}

/// Without the key.
impl fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_known_vector() {
        // RFC 4231 test case 2.
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        assert!(hmac_sha256_hex_matches(
            b"Jefe",
            &[b"what do ya want ", b"for nothing?"],
            expected
        ));
        assert!(hmac_sha256_hex_matches(
            b"Jefe",
            &[b"what do ya want for nothing?"],
            &expected.to_uppercase()
        ));
        assert!(!hmac_sha256_hex_matches(b"Jefe", &[b"other"], expected));
        assert!(!hmac_sha256_hex_matches(b"Jefe", &[b"x"], "not hex"));
        // Only a whole 32-byte signature matches: shorter, longer or odd hex is refused.
        let key = HmacKey::new(b"Jefe");
        let parts: &[&[u8]] = &[b"what do ya want for nothing?"];
        assert!(key.matches_hex(parts, &format!("  {expected}\n")));
        assert!(!key.matches_hex(parts, &expected[..62]));
        assert!(!key.matches_hex(parts, &format!("{expected}00")));
        assert!(!key.matches_hex(parts, &expected[..63]));
        assert!(!key.matches_hex(parts, ""));
        assert_eq!(format!("{key:?}"), "HmacKey(..)");
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", &[b"what do ya want for nothing?"])),
            expected
        );
    }

    #[test]
    fn the_switch_is_a_table_and_old_strings_are_refused() {
        let parse = |text: &str| serde_json::from_str::<VerificationSwitch>(text);
        assert_eq!(
            parse(r#"{"disabled": true}"#).ok(),
            Some(VerificationSwitch { disabled: true })
        );
        assert_eq!(
            parse(r#"{"disabled": false}"#).ok(),
            Some(VerificationSwitch::default())
        );
        assert_eq!(parse("{}").ok(), Some(VerificationSwitch::default()));
        let old = parse(r#""none""#).expect_err("old spelling").to_string();
        assert!(old.contains("disabled = true"), "{old}");
        assert!(parse(r#"{"disable": true}"#).is_err(), "typo");
        assert!(parse(r#"{"disabled": "yes"}"#).is_err());
        assert!(parse("true").is_err());
        assert!(disabled_warning("acme").contains("verification.disabled = true"));
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
