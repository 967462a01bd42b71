//! The archive's keys: XChaCha20-Poly1305 (a random 192-bit nonce per entry, so no nonce
//! bookkeeping), several keys by id so they rotate: the first seals, every one opens.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadCore, AeadInPlace, KeyInit, OsRng, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use zeroize::{Zeroize, Zeroizing};

use super::ArchiveError;
use crate::files::write_private;

/// Longest key id, in bytes.
const MAX_KEY_ID: usize = 64;

/// The keys, the first one sealing.
pub struct Keyring {
    current: String,
    ciphers: HashMap<String, XChaCha20Poly1305>,
}

impl std::fmt::Debug for Keyring {
    /// Key ids only: never key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.ciphers.keys().collect();
        ids.sort();
        f.debug_struct("Keyring")
            .field("current", &self.current)
            .field("ids", &ids)
            .finish()
    }
}

/// What sealing produced.
pub struct Sealed {
    pub key_id: String,
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl Keyring {
    /// Parses `<key id> <64 hex digits>` per line (or `;`-separated); `#` starts a comment.
    /// The errors never quote key material.
    pub fn parse(text: &str) -> Result<Self, ArchiveError> {
        let mut current = None;
        let mut ciphers = HashMap::new();
        let entries = text
            .lines()
            .flat_map(|line| line.split('#').next().unwrap_or_default().split(';'));
        for (index, line) in entries.enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let invalid =
                |why: &str| ArchiveError::InvalidKeys(format!("entry {}: {why}", index + 1));
            let (id, hex_key) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| invalid("expected `<key id> <64 hex digits>`"))?;
            let valid_id = (1..=MAX_KEY_ID).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
            if !valid_id {
                return Err(invalid(
                    "key ids are 1 to 64 characters of A-Z a-z 0-9 . _ -",
                ));
            }
            // Every copy of key material is wiped when dropped (the ciphers wipe their own).
            let mut key = Zeroizing::new([0u8; 32]);
            hex::decode_to_slice(hex_key.trim(), key.as_mut_slice())
                .map_err(|_| invalid("the key is not 64 hex digits (32 bytes)"))?;
            if ciphers
                .insert(
                    id.to_owned(),
                    XChaCha20Poly1305::new(Key::from_slice(key.as_slice())),
                )
                .is_some()
            {
                return Err(invalid("key id given twice"));
            }
            current.get_or_insert_with(|| id.to_owned());
        }
        let current = current.ok_or_else(|| ArchiveError::InvalidKeys("no key given".into()))?;
        Ok(Self { current, ciphers })
    }

    /// Reads the keys from `path`, which must be readable by its owner only.
    pub fn read(path: &Path) -> Result<Self, ArchiveError> {
        let file = |why: String| ArchiveError::InvalidKeys(format!("{}: {why}", path.display()));
        let metadata = std::fs::metadata(path).map_err(|e| file(e.to_string()))?;
        if metadata.permissions().mode() & 0o077 != 0 {
            return Err(file(
                "the key file must be readable by its owner only (chmod 600)".into(),
            ));
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?);
        Self::parse(&text).map_err(|error| match error {
            ArchiveError::InvalidKeys(why) => file(why),
            other => other,
        })
    }

    /// The keys in `path`, creating the file with one random key when it does not exist.
    pub fn read_or_create(path: &Path) -> Result<Self, ArchiveError> {
        if !path.exists() {
            let mut key = XChaCha20Poly1305::generate_key(&mut OsRng);
            let hex_key = Zeroizing::new(hex::encode(key));
            key.as_mut_slice().zeroize();
            let text = Zeroizing::new(format!(
                "# Raw-archive keys: `<key id> <hex>`; the first seals. Keep a copy: without it\n\
                 # the archive cannot be read.\nk1 {}\n",
                hex_key.as_str()
            ));
            write_private(path, &text).map_err(|e| {
                ArchiveError::InvalidKeys(format!("{}: cannot create: {e}", path.display()))
            })?;
        }
        Self::read(path)
    }

    /// Seals `plaintext` with the current key, binding `associated` (not stored in it). The
    /// buffer becomes the ciphertext: encrypted in place, the tag appended.
    pub fn seal(&self, associated: &[u8], plaintext: Vec<u8>) -> Result<Sealed, ArchiveError> {
        let cipher = self
            .ciphers
            .get(&self.current)
            .ok_or_else(|| ArchiveError::UnknownKey(self.current.clone()))?;
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut ciphertext = plaintext;
        cipher
            .encrypt_in_place(&nonce, associated, &mut ciphertext)
            .map_err(|_| ArchiveError::Tampered)?;
        Ok(Sealed {
            key_id: self.current.clone(),
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// The id of the key that seals.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// Every configured key id: the current one first, then the others sorted.
    pub fn ids(&self) -> Vec<String> {
        let mut others: Vec<String> = self
            .ciphers
            .keys()
            .filter(|id| **id != self.current)
            .cloned()
            .collect();
        others.sort();
        let mut ids = vec![self.current.clone()];
        ids.extend(others);
        ids
    }

    /// Opens what [`seal`](Self::seal) produced; fails on a wrong key, a changed ciphertext or
    /// changed associated data.
    pub fn open(
        &self,
        key_id: &str,
        nonce: &[u8],
        associated: &[u8],
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, ArchiveError> {
        let cipher = self
            .ciphers
            .get(key_id)
            .ok_or_else(|| ArchiveError::UnknownKey(key_id.to_owned()))?;
        if nonce.len() != 24 {
            return Err(ArchiveError::Tampered);
        }
        cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated,
                },
            )
            .map_err(|_| ArchiveError::Tampered)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0101010101010101010101010101010101010101010101010101010101010101";
    const B: &str = "0202020202020202020202020202020202020202020202020202020202020202";

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = Keyring::parse(&format!("old {A}")).expect("keys");
        let sealed_old = old.seal(b"s", b"hello".to_vec()).expect("seal");
        let rotated = Keyring::parse(&format!("new {B}\n# retired\nold {A}")).expect("keys");
        let sealed_new = rotated.seal(b"s", b"hello".to_vec()).expect("seal");
        assert_eq!(
            (sealed_old.key_id.as_str(), sealed_new.key_id.as_str()),
            ("old", "new")
        );
        for sealed in [&sealed_old, &sealed_new] {
            let opened = rotated
                .open(&sealed.key_id, &sealed.nonce, b"s", &sealed.ciphertext)
                .expect("opens");
            assert_eq!(opened, b"hello");
        }
        assert!(matches!(
            old.open("new", &sealed_new.nonce, b"s", &sealed_new.ciphertext),
            Err(ArchiveError::UnknownKey(id)) if id == "new"
        ));
    }

    #[test]
    fn changed_bytes_or_associated_data_do_not_open() {
        let keys = Keyring::parse(&format!("k {A}")).expect("keys");
        let sealed = keys.seal(b"source-a", b"body".to_vec()).expect("seal");
        let mut flipped = sealed.ciphertext.clone();
        flipped[0] ^= 1;
        for (aad, bytes) in [
            (&b"source-b"[..], &sealed.ciphertext),
            (&b"source-a"[..], &flipped),
        ] {
            assert!(matches!(
                keys.open("k", &sealed.nonce, aad, bytes),
                Err(ArchiveError::Tampered)
            ));
        }
    }

    #[test]
    fn bad_key_lists_are_refused_without_quoting_keys() {
        for (text, why) in [
            ("", "no key given"),
            ("k1", "entry 1: expected `<key id> <64 hex digits>`"),
            (
                "k1 abcd",
                "entry 1: the key is not 64 hex digits (32 bytes)",
            ),
            (
                &format!("k/1 {A}"),
                "entry 1: key ids are 1 to 64 characters of A-Z a-z 0-9 . _ -",
            ),
            (&format!("k {A};k {B}"), "entry 2: key id given twice"),
        ] {
            match Keyring::parse(text) {
                Err(ArchiveError::InvalidKeys(got)) => assert_eq!(got, why, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_created_key_file_is_private_and_reused() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("archive.key");
        let first = Keyring::read_or_create(&path).expect("created");
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let sealed = first.seal(b"", b"x".to_vec()).expect("seal");
        let again = Keyring::read_or_create(&path).expect("read");
        assert_eq!(
            again
                .open(&sealed.key_id, &sealed.nonce, b"", &sealed.ciphertext)
                .expect("same key"),
            b"x"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            Keyring::read(&path),
            Err(ArchiveError::InvalidKeys(why)) if why.ends_with("readable by its owner only (chmod 600)")
        ));
    }
}
