//! Standard Webhooks verification: `webhook-id`, `webhook-timestamp` and `webhook-signature`,
//! a space-separated list of `v1,<base64>` (HMAC-SHA256) and `v1a,<base64>` (Ed25519)
//! signatures over `{id}.{timestamp}.{body}`. One valid signature by one configured key is
//! enough; every comparison with a secret is constant-time.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signature, VerifyingKey};
use tributary_plugin_sdk::Request;
use tributary_plugin_sdk::model::v1::{InstanceInfo, Rejection, SecretInfo, VerificationState};
use tributary_plugin_sdk::model::well_known::Timestamp;
use tributary_plugin_sdk::reject;
use tributary_plugin_sdk::secrets::{self, SecretEntry, Secrets};
use tributary_plugin_sdk::verify::{
    DISABLED_SWITCH, constant_time_eq, disabled_warning, hmac_sha256,
};

/// The header of the provider's unique message id (also the dedup key).
pub const ID_HEADER: &str = "webhook-id";
/// The header of the attempt's Unix time in seconds.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
/// The header of the signatures.
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;
/// Most signatures read from one `webhook-signature` header (a rotation sends two or three).
pub const MAX_SIGNATURES: usize = 16;
/// Most keys one source may configure.
pub const MAX_KEYS: usize = secrets::MAX_SECRETS;
/// The specification's bounds on a `whsec_` secret, in bytes.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// One configured key.
enum Key {
    /// The decoded bytes of a `whsec_` secret: checks `v1` signatures.
    Hmac(Vec<u8>),
    /// A `whpk_` public key: checks `v1a` signatures.
    Ed25519(VerifyingKey),
}

/// The configured keys and tolerance, ready to check webhooks.
pub struct Verifier {
    /// Each key with its position, label and end; none (every webhook refused) or switched
    /// off.
    keys: Secrets<Key>,
    tolerance: u64,
}

/// Decodes standard base64 (with padding), as the specification serialises keys and
/// signatures.
fn base64(text: &str) -> Option<Vec<u8>> {
    STANDARD.decode(text).ok()
}

/// One `whsec_` secret or `whpk_` public key. Errors never include the value.
fn parse_key(secret: &str) -> Result<Key, String> {
    let secret = secret.trim();
    if let Some(encoded) = secret.strip_prefix("whsec_") {
        let bytes = base64(encoded).ok_or("whsec_ must be followed by base64")?;
        if !SECRET_BYTES.contains(&bytes.len()) {
            return Err(format!(
                "a whsec_ secret decodes to {} bytes; the specification asks for {} to {}",
                bytes.len(),
                SECRET_BYTES.start(),
                SECRET_BYTES.end()
            ));
        }
        Ok(Key::Hmac(bytes))
    } else if let Some(encoded) = secret.strip_prefix("whpk_") {
        let bytes: [u8; 32] = base64(encoded)
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or("whpk_ must be followed by a base64 32-byte Ed25519 key")?;
        let key =
            VerifyingKey::from_bytes(&bytes).map_err(|_| "not an Ed25519 public key".to_owned())?;
        if key.is_weak() {
            return Err("a weak (small-order) Ed25519 key".to_owned());
        }
        Ok(Key::Ed25519(key))
    } else if secret.starts_with("whsk_") {
        Err(
            "whsk_ is the provider's private signing key; configure its whpk_ public key \
             instead (and treat the whsk_ key as leaked)"
                .to_owned(),
        )
    } else {
        Err("must start with whsec_ (a shared secret) or whpk_ (an Ed25519 public key)".to_owned())
    }
}

impl Verifier {
    /// Parses bare keys (no label, no end). Errors name the entry by position, never its
    /// value.
    pub fn new(secrets: &[String], tolerance: u64, disabled: bool) -> Result<Self, String> {
        let entries = secrets.iter().map(SecretEntry::bare).collect();
        Self::from_entries(entries, tolerance, disabled)
    }

    /// Parses `verification.secrets` entries. Errors name the entry by position, never its
    /// value.
    pub fn from_entries(
        entries: Vec<SecretEntry>,
        tolerance: u64,
        disabled: bool,
    ) -> Result<Self, String> {
        Ok(Self {
            keys: Secrets::new(entries, disabled, parse_key)?,
            tolerance,
        })
    }

    /// How this source verifies, for the host.
    pub fn instance_info(&self) -> InstanceInfo {
        self.keys.instance_info()
    }

    /// Start-up warnings: verification switched off, or no key (every webhook rejected), or
    /// keys past their `not_after`.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = match self.keys.state() {
            VerificationState::Disabled => vec![disabled_warning("standard-webhooks")],
            VerificationState::NotConfigured => vec![format!(
                "standard-webhooks: no secret is configured: every webhook is rejected (401) \
                 until verification.secrets lists the provider's whsec_ secret or whpk_ public \
                 key, or verification is switched off with {DISABLED_SWITCH}"
            )],
            _ => Vec::new(),
        };
        warnings.extend(
            self.keys
                .expired_warnings("standard-webhooks", &secrets::now()),
        );
        warnings
    }

    /// Checks the three headers and the signatures; says which key verified. Reasons name
    /// what failed, never a value.
    pub fn verify(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        match self.keys.state() {
            VerificationState::Disabled => return Ok(None),
            VerificationState::NotConfigured => {
                return Err(reject::unauthenticated(
                    "no secret is configured for this source",
                ));
            }
            _ => {}
        }
        let header = |name: &str| {
            request
                .header(name)
                .map(str::trim)
                .ok_or_else(|| reject::unauthenticated(format!("missing header `{name}`")))
        };
        let id = header(ID_HEADER)?;
        let timestamp = header(TIMESTAMP_HEADER)?;
        let signatures = header(SIGNATURE_HEADER)?;
        if id.is_empty() || id.len() > MAX_ID_LEN {
            return Err(reject::unauthenticated(format!(
                "`{ID_HEADER}` must be 1 to {MAX_ID_LEN} characters"
            )));
        }
        self.check_timestamp(request, timestamp)?;
        if signatures.split(' ').filter(|s| !s.is_empty()).count() > MAX_SIGNATURES {
            return Err(reject::unauthenticated(format!(
                "`{SIGNATURE_HEADER}` lists more than {MAX_SIGNATURES} signatures"
            )));
        }
        let parts: [&[u8]; 5] = [
            id.as_bytes(),
            b".",
            timestamp.as_bytes(),
            b".",
            request.body(),
        ];
        let at = secrets::request_time(request);
        self.any_signature_matches(&parts, signatures, &at)
            .map(Some)
            .ok_or_else(|| {
                reject::unauthenticated(format!(
                    "no signature in `{SIGNATURE_HEADER}` matches a configured key valid at the \
                     receive time"
                ))
            })
    }

    /// `webhook-timestamp`: Unix seconds (digits only) within the tolerance of the receive
    /// time, either way.
    fn check_timestamp(&self, request: &Request<'_>, timestamp: &str) -> Result<(), Rejection> {
        let seconds: i64 = timestamp
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| timestamp.parse().ok())
            .flatten()
            .ok_or_else(|| {
                reject::unauthenticated(format!("`{TIMESTAMP_HEADER}` is not Unix seconds"))
            })?;
        let received = request
            .received_at()
            .map(|t| t.seconds)
            .ok_or_else(|| reject::unauthenticated("request has no receive time"))?;
        if received.abs_diff(seconds) > self.tolerance {
            return Err(reject::unauthenticated(format!(
                "`{TIMESTAMP_HEADER}` is more than {} s from the receive time",
                self.tolerance
            )));
        }
        Ok(())
    }

    /// The first key valid at `at` (in configuration order) of which one `v1`/`v1a` entry is a
    /// valid signature of `parts`. Entries of other versions, and undecodable ones, are skipped
    /// (a provider may add schemes this adapter does not know beside one it does).
    fn any_signature_matches(
        &self,
        parts: &[&[u8]; 5],
        signatures: &str,
        at: &Timestamp,
    ) -> Option<SecretInfo> {
        let valid: Vec<(&Key, &SecretInfo)> = self.keys.valid_at(at).collect();
        let mut hmacs: Option<Vec<(usize, [u8; 32])>> = None;
        let mut message: Option<Vec<u8>> = None;
        let mut matched: Option<usize> = None;
        let mut record = |position: usize, ok: bool| {
            if ok {
                matched = Some(matched.map_or(position, |m| m.min(position)));
            }
        };
        for entry in signatures.split(' ').filter(|s| !s.is_empty()) {
            let Some((version, encoded)) = entry.split_once(',') else {
                continue;
            };
            let Some(signature) = base64(encoded) else {
                continue;
            };
            match version {
                "v1" => {
                    let macs = hmacs.get_or_insert_with(|| {
                        valid
                            .iter()
                            .enumerate()
                            .filter_map(|(position, (key, _))| match key {
                                Key::Hmac(secret) => Some((position, hmac_sha256(secret, parts))),
                                Key::Ed25519(_) => None,
                            })
                            .collect()
                    });
                    // Every key is compared, so the time does not tell which one matched.
                    for (position, mac) in macs.iter() {
                        record(*position, constant_time_eq(mac, &signature));
                    }
                }
                "v1a" => {
                    let Ok(signature) = Signature::from_slice(&signature) else {
                        continue;
                    };
                    let message = message.get_or_insert_with(|| parts.concat());
                    for (position, (key, _)) in valid.iter().enumerate() {
                        if let Key::Ed25519(key) = key {
                            record(position, key.verify_strict(message, &signature).is_ok());
                        }
                    }
                }
                _ => {}
            }
        }
        matched
            .and_then(|position| valid.get(position))
            .map(|(_, info)| (*info).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};
    use tributary_plugin_sdk::model::v1::{RejectionKind, WebhookRequest};
    use tributary_plugin_sdk::testing::webhook;

    /// The specification's published vector (its libraries' tests, e.g. the JavaScript
    /// library's "sign function works").
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    /// The asymmetric vector (the Go library's `TestAsymmetricWebhookSign`): the base64 seed
    /// of the signing key and the signature it gives over the same message.
    const SPEC_ED25519_SEED: &str = "VEVTVFNJR05JTkdLRVlET05PVFVTRVRISVNGT1JBTlk=";
    const SPEC_ED25519_SIGNATURE: &str = "v1a,tQ9V2XOqn7jL/DQenEFpqIugdBVtiMmER5mhSkXBNwM0mkATuDe6KYYUuxqtaiHeYGb7KaaBRdM5WqyeFiL8Ag==";

    fn verifier(secrets: &[&str]) -> Verifier {
        let secrets: Vec<String> = secrets.iter().map(|s| (*s).to_owned()).collect();
        Verifier::new(&secrets, 300, false).expect("valid keys")
    }

    fn request(id: &str, timestamp: &str, signature: &str, received: i64) -> WebhookRequest {
        webhook(SPEC_BODY)
            .header(ID_HEADER, id)
            .header(TIMESTAMP_HEADER, timestamp)
            .header(SIGNATURE_HEADER, signature)
            .received_at(received)
            .build()
    }

    fn spec_request(signature: &str) -> WebhookRequest {
        request(
            SPEC_ID,
            &SPEC_TIMESTAMP.to_string(),
            signature,
            SPEC_TIMESTAMP,
        )
    }

    fn check(v: &Verifier, raw: &WebhookRequest) -> Result<(), Rejection> {
        v.verify(&Request::new(raw)).map(drop)
    }

    fn rejected(v: &Verifier, raw: &WebhookRequest) -> bool {
        matches!(check(v, raw), Err(r) if r.kind == RejectionKind::Unauthenticated as i32)
    }

    /// `v1,<base64 HMAC>` of `id.timestamp.body` with a whsec_ secret.
    fn sign_v1(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> String {
        let key = base64(secret.strip_prefix("whsec_").expect("whsec_")).expect("base64");
        let ts = timestamp.to_string();
        let mac = hmac_sha256(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
        format!("v1,{}", STANDARD.encode(mac))
    }

    fn spec_signing_key() -> SigningKey {
        let seed: [u8; 32] = base64(SPEC_ED25519_SEED)
            .expect("base64")
            .try_into()
            .expect("32 bytes");
        SigningKey::from_bytes(&seed)
    }

    fn whpk(key: &SigningKey) -> String {
        format!("whpk_{}", STANDARD.encode(key.verifying_key().as_bytes()))
    }

    fn sign_v1a(key: &SigningKey, id: &str, timestamp: i64, body: &[u8]) -> String {
        let message = [
            id.as_bytes(),
            b".",
            timestamp.to_string().as_bytes(),
            b".",
            body,
        ]
        .concat();
        format!("v1a,{}", STANDARD.encode(key.sign(&message).to_bytes()))
    }

    #[test]
    fn the_specifications_published_vectors_verify() {
        let v = verifier(&[SPEC_SECRET]);
        assert_eq!(check(&v, &spec_request(SPEC_SIGNATURE)), Ok(()));
        // Our signing agrees with the published signature.
        assert_eq!(
            sign_v1(SPEC_SECRET, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_SIGNATURE
        );
        // The asymmetric vector, checked with the public key of the published signing key.
        let key = spec_signing_key();
        assert_eq!(
            sign_v1a(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
            SPEC_ED25519_SIGNATURE
        );
        let v = verifier(&[&whpk(&key)]);
        assert_eq!(check(&v, &spec_request(SPEC_ED25519_SIGNATURE)), Ok(()));
        assert!(
            rejected(&v, &spec_request(SPEC_SIGNATURE)),
            "a v1 for a whpk_ key"
        );
    }

    #[test]
    fn the_libraries_multi_signature_vector_verifies() {
        // From the libraries' "multi sig payload is valid": unknown versions and wrong
        // signatures around the valid one.
        let header = format!(
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= \
             v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= {SPEC_SIGNATURE} \
             v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc="
        );
        assert_eq!(
            check(&verifier(&[SPEC_SECRET]), &spec_request(&header)),
            Ok(())
        );
    }

    #[test]
    fn rotation_any_configured_secret_verifies() {
        const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const NEW: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";
        const NOW: i64 = 1_704_067_200;
        let old = sign_v1(OLD, "msg_rot", NOW, SPEC_BODY);
        let new = sign_v1(NEW, "msg_rot", NOW, SPEC_BODY);
        let at = |signature: &str| request("msg_rot", &NOW.to_string(), signature, NOW);
        // During the rotation the provider sends both; the consumer lists both, either order.
        let both = verifier(&[OLD, NEW]);
        let reversed = verifier(&[NEW, OLD]);
        for v in [&both, &reversed] {
            assert_eq!(check(v, &at(&format!("{old} {new}"))), Ok(()));
            assert_eq!(check(v, &at(&new)), Ok(()));
            assert_eq!(check(v, &at(&old)), Ok(()));
        }
        // A consumer that has dropped the old secret still verifies the pair, not the old alone.
        let new_only = verifier(&[NEW]);
        assert_eq!(check(&new_only, &at(&format!("{old} {new}"))), Ok(()));
        assert!(rejected(&new_only, &at(&old)));
        // A consumer still on the old secret verifies the pair.
        assert_eq!(
            check(&verifier(&[OLD]), &at(&format!("{new} {old}"))),
            Ok(())
        );
    }

    #[test]
    fn rotation_with_not_after_names_the_key_that_verified() {
        const OLD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        const NEW: &str = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";
        const END: i64 = 1_704_067_200; // 2024-01-01T00:00:00Z
        let v = Verifier::from_entries(
            vec![
                SecretEntry {
                    secret: OLD.into(),
                    label: "old".into(),
                    not_after: Some(Timestamp {
                        seconds: END,
                        nanos: 0,
                    }),
                },
                SecretEntry {
                    secret: NEW.into(),
                    label: "new".into(),
                    not_after: None,
                },
            ],
            300,
            false,
        )
        .expect("valid keys");
        let at = |secret: &str, received: i64| {
            let signature = sign_v1(secret, "msg_rot", received, SPEC_BODY);
            let raw = request("msg_rot", &received.to_string(), &signature, received);
            v.verify(&Request::new(&raw))
                .map(|s| s.map(|s| (s.index, s.label)))
                .map_err(|r| r.reason)
        };
        assert_eq!(at(OLD, END), Ok(Some((0, "old".to_owned()))));
        assert_eq!(at(NEW, END), Ok(Some((1, "new".to_owned()))));
        assert!(at(OLD, END + 1).is_err());
        assert_eq!(at(NEW, END + 1), Ok(Some((1, "new".to_owned()))));
        // Both signatures sent: the first configured key still valid is named.
        let both = format!(
            "{} {}",
            sign_v1(NEW, "msg_rot", END, SPEC_BODY),
            sign_v1(OLD, "msg_rot", END, SPEC_BODY)
        );
        let raw = request("msg_rot", &END.to_string(), &both, END);
        let by = v.verify(&Request::new(&raw)).expect("verifies");
        assert_eq!(by.map(|s| s.index), Some(0));
    }

    #[test]
    fn ed25519_with_a_key_made_here_and_mixed_with_hmac() {
        const NOW: i64 = 1_704_067_200;
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let signature = sign_v1a(&key, "msg_ed", NOW, SPEC_BODY);
        let at = |signature: &str| request("msg_ed", &NOW.to_string(), signature, NOW);
        let v = verifier(&[SPEC_SECRET, &whpk(&key)]);
        assert_eq!(check(&v, &at(&signature)), Ok(()));
        let hmac = sign_v1(SPEC_SECRET, "msg_ed", NOW, SPEC_BODY);
        assert_eq!(check(&v, &at(&hmac)), Ok(()));
        // Signed by a key that is not configured, or over another id: rejected.
        assert!(rejected(
            &v,
            &at(&sign_v1a(&other, "msg_ed", NOW, SPEC_BODY))
        ));
        assert!(rejected(
            &v,
            &at(&sign_v1a(&key, "msg_other", NOW, SPEC_BODY))
        ));
        // A v1a signature presented as v1, and the reverse: no match.
        assert!(rejected(&v, &at(&signature.replacen("v1a,", "v1,", 1))));
        assert!(rejected(&v, &at(&hmac.replacen("v1,", "v1a,", 1))));
    }

    #[test]
    fn wrong_stale_future_missing_unknown_and_malformed_are_rejected() {
        let v = verifier(&[SPEC_SECRET]);
        let ts = SPEC_TIMESTAMP.to_string();
        let good = |received: i64| request(SPEC_ID, &ts, SPEC_SIGNATURE, received);
        // Within five minutes either way, and not beyond.
        assert_eq!(check(&v, &good(SPEC_TIMESTAMP + 300)), Ok(()));
        assert_eq!(check(&v, &good(SPEC_TIMESTAMP - 300)), Ok(()));
        assert!(rejected(&v, &good(SPEC_TIMESTAMP + 301)), "stale");
        assert!(rejected(&v, &good(SPEC_TIMESTAMP - 301)), "future");
        // A configured tolerance.
        let wide = Verifier::new(&[SPEC_SECRET.to_owned()], 3600, false).expect("valid");
        assert_eq!(check(&wide, &good(SPEC_TIMESTAMP + 3600)), Ok(()));
        assert!(rejected(&wide, &good(SPEC_TIMESTAMP + 3601)));
        for signature in [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1,dawfeoifkpqwoekfpqoekf",
            &SPEC_SIGNATURE[..8],
            "v1,",
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=x",
            "v1,!!!!",
            "V1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            "",
        ] {
            assert!(rejected(&v, &spec_request(signature)), "{signature:?}");
        }
        // The body, id or timestamp changed under the signature.
        let mut other_body = spec_request(SPEC_SIGNATURE);
        other_body.body = br#"{"test": 2432232315}"#.to_vec();
        assert!(rejected(&v, &other_body));
        assert!(rejected(
            &v,
            &request("msg_other", &ts, SPEC_SIGNATURE, SPEC_TIMESTAMP)
        ));
        let next = (SPEC_TIMESTAMP + 1).to_string();
        assert!(rejected(
            &v,
            &request(SPEC_ID, &next, SPEC_SIGNATURE, SPEC_TIMESTAMP)
        ));
        for timestamp in ["hello", "+1614265330", "1614265330.0", "-1", ""] {
            let raw = request(SPEC_ID, timestamp, SPEC_SIGNATURE, SPEC_TIMESTAMP);
            assert!(rejected(&v, &raw), "{timestamp:?}");
        }
        // Each header missing.
        for missing in [ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER] {
            let mut raw = spec_request(SPEC_SIGNATURE);
            raw.headers.retain(|h| h.name != missing);
            let reason = check(&v, &raw).expect_err("rejected").reason;
            assert_eq!(reason, format!("missing header `{missing}`"));
        }
        // No receive time: nothing to check the timestamp against.
        let mut raw = spec_request(SPEC_SIGNATURE);
        raw.received_at = None;
        assert!(rejected(&v, &raw));
        // Too many signatures to try.
        let many = vec![SPEC_SIGNATURE; MAX_SIGNATURES + 1].join(" ");
        assert!(rejected(&v, &spec_request(&many)));
        let enough = vec![SPEC_SIGNATURE; MAX_SIGNATURES].join(" ");
        assert_eq!(check(&v, &spec_request(&enough)), Ok(()));
        // Reasons never carry a value.
        let reason = check(&v, &spec_request("v1,AAAA"))
            .expect_err("rejected")
            .reason;
        assert!(
            !reason.contains("AAAA") && !reason.contains(SPEC_ID),
            "{reason}"
        );
    }

    #[test]
    fn no_secret_rejects_everything_and_warns() {
        let v = verifier(&[]);
        assert!(rejected(&v, &spec_request(SPEC_SIGNATURE)));
        let warnings = v.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(
            warnings[0].contains("every webhook is rejected"),
            "{warnings:?}"
        );
        assert!(verifier(&[SPEC_SECRET]).warnings().is_empty());
        let off = Verifier::new(&[], 300, true).expect("valid");
        assert_eq!(check(&off, &webhook(b"{}".to_vec()).build()), Ok(()));
        assert!(off.warnings()[0].contains("verification.disabled = true"));
    }

    #[test]
    fn bad_keys_are_refused_without_their_value() {
        let refuse = |secret: &str, disabled: bool| {
            Verifier::new(&[secret.to_owned()], 300, disabled)
                .err()
                .expect("refused")
        };
        let key = spec_signing_key();
        for (secret, expected) in [
            ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "must start with whsec_"),
            ("whsec_not base64!", "followed by base64"),
            ("whsec_c2hvcnQ=", "decodes to 5 bytes"),
            ("whpk_AAAA", "32-byte Ed25519 key"),
            ("whpk_AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "weak"),
            (&format!("whsk_{SPEC_ED25519_SEED}"), "private signing key"),
        ] {
            let error = refuse(secret, false);
            assert!(error.contains(expected), "{secret}: {error}");
            assert!(error.starts_with("verification.secrets[0]: "), "{error}");
            assert!(!error.contains(&secret[secret.len().min(6)..]), "{error}");
        }
        let error = refuse(&whpk(&key), true);
        assert!(error.contains("cannot be combined"), "{error}");
        let many = vec![SPEC_SECRET.to_owned(); MAX_KEYS + 1];
        assert!(Verifier::new(&many, 300, false).is_err());
    }
}
