//! The personal-data policy: how fields such as tax ids, usernames and account numbers leave
//! an adapter. One policy per source, set in its config; any adapter applies it with
//! [`PersonalDataGuard::apply`] (a [`PersonalDataPolicy`] resolved with the installation key)
//! so personal data never reaches a subscriber, a log line or a span in clear unless an
//! operator chose so.

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use tributary_model::v1::{PersonalData, PersonalDataTreatment};

/// What to do with one personal-data field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Treatment {
    /// Keep the value in clear.
    Keep,
    /// Keep only the last `mask_keep_last` characters ("*******2137").
    Mask,
    /// Replace with `"hmac-sha256:<hex>"` keyed with the policy's key: the same value hashes the
    /// same across events and restarts, and cannot be reversed without the key.
    #[default]
    Hash,
}

/// The policy for a source: a default treatment plus per-field overrides.
///
/// ```toml
/// [sources.klavi.config.personal_data]
/// default = "hash"              # keep | mask | hash
/// hash_key = "..."              # optional: defaults to the installation key
/// mask_keep_last = 4
/// fields = { business_tax_id = "keep" }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonalDataPolicy {
    /// Treatment of fields without an override.
    #[serde(default)]
    pub default: Treatment,
    /// Per-field overrides, by the adapter's field name ("personal_tax_id").
    #[serde(default)]
    pub fields: HashMap<String, Treatment>,
    /// Key for `hash`. When absent the host's installation key is used.
    #[serde(default)]
    pub hash_key: Option<String>,
    /// Characters kept in clear by `mask`.
    #[serde(default = "default_keep_last")]
    pub mask_keep_last: usize,
}

fn default_keep_last() -> usize {
    4
}

impl Default for PersonalDataPolicy {
    fn default() -> Self {
        Self {
            default: Treatment::Hash,
            fields: HashMap::new(),
            hash_key: None,
            mask_keep_last: default_keep_last(),
        }
    }
}

/// A policy ready to apply: the key is resolved, and its HMAC state prepared once (hashing a
/// value then costs two SHA-256 blocks instead of four).
#[derive(Clone)]
pub struct PersonalDataGuard {
    policy: PersonalDataPolicy,
    mac: Hmac<Sha256>,
}

/// Without the key: a guard may end up in a log line.
impl fmt::Debug for PersonalDataGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PersonalDataGuard")
            .field("default", &self.policy.default)
            .field("fields", &self.policy.fields)
            .field("mask_keep_last", &self.policy.mask_keep_last)
            .finish_non_exhaustive()
    }
}

impl PersonalDataPolicy {
    /// Resolves the hash key (the configured one, else the host's installation key). Fails when
    /// a field must be hashed and no key is available at all.
    pub fn resolve(self, installation_key: &str) -> Result<PersonalDataGuard, String> {
        let key = self
            .hash_key
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| installation_key.to_owned());
        let hashes =
            self.default == Treatment::Hash || self.fields.values().any(|t| *t == Treatment::Hash);
        if hashes && key.is_empty() {
            return Err(
                "personal_data: `hash` needs a hash_key and the host gave no installation key"
                    .into(),
            );
        }
        let mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
            .map_err(|e| format!("personal_data: hash key: {e}"))?;
        Ok(PersonalDataGuard { policy: self, mac })
    }
}

impl PersonalDataGuard {
    /// The treatment configured for `field`.
    pub fn treatment(&self, field: &str) -> Treatment {
        self.policy
            .fields
            .get(field)
            .copied()
            .unwrap_or(self.policy.default)
    }

    /// Applies the policy to one value of `field`. Empty values stay empty.
    pub fn apply(&self, field: &str, value: &str) -> PersonalData {
        if value.is_empty() {
            return PersonalData::default();
        }
        match self.treatment(field) {
            Treatment::Keep => PersonalData {
                value: value.to_owned(),
                treatment: PersonalDataTreatment::Kept as i32,
            },
            Treatment::Mask => PersonalData {
                value: mask(value, self.policy.mask_keep_last),
                treatment: PersonalDataTreatment::Masked as i32,
            },
            Treatment::Hash => PersonalData {
                value: self.hash(value),
                treatment: PersonalDataTreatment::Hashed as i32,
            },
        }
    }

    /// Like [`Self::apply`] but `None` for an empty value, for optional message fields.
    pub fn apply_opt(&self, field: &str, value: &str) -> Option<PersonalData> {
        (!value.is_empty()).then(|| self.apply(field, value))
    }
}

impl PersonalDataGuard {
    /// "hmac-sha256:" and the lowercase hex of the value's HMAC under the policy's key.
    fn hash(&self, value: &str) -> String {
        const PREFIX: &str = "hmac-sha256:";
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut mac = self.mac.clone();
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 2 * digest.len());
        out.push_str(PREFIX);
        for byte in digest {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
        out
    }
}

fn mask(value: &str, keep_last: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    let keep = keep_last.min(chars.len() / 2);
    let hidden = chars.len() - keep;
    std::iter::repeat_n('*', hidden)
        .chain(chars[hidden..].iter().copied())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::hmac_sha256;

    fn guard(toml_like: serde_json::Value) -> PersonalDataGuard {
        let policy: PersonalDataPolicy = serde_json::from_value(toml_like).expect("policy");
        policy.resolve("installation-key").expect("resolves")
    }

    #[test]
    fn default_is_keyed_hash_stable_per_key() {
        let g = guard(serde_json::json!({}));
        let a = g.apply("personal_tax_id", "25872252137");
        assert_eq!(a.treatment, PersonalDataTreatment::Hashed as i32);
        assert_eq!(
            a.value,
            format!(
                "hmac-sha256:{}",
                hex::encode(hmac_sha256(b"installation-key", &[b"25872252137"]))
            )
        );
        assert_eq!(a, g.apply("personal_tax_id", "25872252137"));
        let other = guard(serde_json::json!({"hash_key": "k2"}));
        assert_ne!(a.value, other.apply("personal_tax_id", "25872252137").value);
    }

    #[test]
    fn per_field_mask_and_keep() {
        let g =
            guard(serde_json::json!({"fields": {"personal_tax_id": "mask", "username": "keep"}}));
        let masked = g.apply("personal_tax_id", "25872252137");
        assert_eq!(masked.value, "*******2137");
        assert_eq!(masked.treatment, PersonalDataTreatment::Masked as i32);
        assert_eq!(g.apply("username", "bob").value, "bob");
        assert_eq!(mask("12", 4), "*2");
        assert_eq!(g.apply("personal_tax_id", ""), PersonalData::default());
    }

    #[test]
    fn hash_without_any_key_is_refused() {
        let policy = PersonalDataPolicy::default();
        assert!(policy.resolve("").is_err());
    }
}
