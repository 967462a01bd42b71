//! The name of a source, checked once where it enters (config, reload, an append) so every
//! backend can use it in subjects, keys and message ids without escaping or ambiguity.

use std::fmt;

use crate::LogError;

/// Longest source name, in bytes.
pub const MAX_SOURCE_NAME: usize = 64;

/// A valid source name: 1 to [`MAX_SOURCE_NAME`] bytes of `A-Z a-z 0-9 _ -`.
///
/// No `:`, so `<source>:<provider id>` (a NATS message id) splits at its first `:` and
/// source `s:x` with id `y` cannot collide with source `s` and id `x:y`; no `.`, `*` or `>`,
/// which are subject and key separators and wildcards.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceName(String);

impl SourceName {
    /// `name` as a source name, or [`LogError::Invalid`] saying what is allowed.
    pub fn new(name: &str) -> Result<Self, LogError> {
        if Self::is_valid(name) {
            Ok(Self(name.to_owned()))
        } else {
            Err(LogError::Invalid(format!(
                "source names are 1 to {MAX_SOURCE_NAME} characters of A-Z a-z 0-9 _ - \
                 (got {name:?})"
            )))
        }
    }

    /// Whether `name` would be accepted by [`SourceName::new`].
    pub fn is_valid(name: &str) -> bool {
        (1..=MAX_SOURCE_NAME).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SourceName {
    type Error = LogError;

    fn try_from(name: String) -> Result<Self, LogError> {
        if Self::is_valid(&name) {
            Ok(Self(name))
        } else {
            Self::new(&name)
        }
    }
}

impl AsRef<str> for SourceName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SourceName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SourceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<SourceName> for String {
    fn from(name: SourceName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_once() {
        for name in ["arcadia", "klavi-br_2", "Z9", &"s".repeat(MAX_SOURCE_NAME)] {
            let parsed = SourceName::new(name).expect(name);
            assert_eq!(parsed.as_str(), name);
            assert_eq!(SourceName::try_from(name.to_owned()).ok(), Some(parsed));
        }
        let too_long = "s".repeat(MAX_SOURCE_NAME + 1);
        for name in [
            "",
            "s:x",
            "a.b",
            "a*",
            "a>",
            "a b",
            "é",
            "a/b",
            too_long.as_str(),
        ] {
            match SourceName::new(name) {
                Err(LogError::Invalid(message)) => {
                    assert!(message.starts_with("source names are 1 to 64"), "{message}")
                }
                other => panic!("{name:?}: {other:?}"),
            }
            assert!(SourceName::try_from(name.to_owned()).is_err(), "{name:?}");
        }
    }
}
