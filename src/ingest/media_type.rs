//! A source's optional `content_types` allow-list. Without one, every webhook reaches the
//! adapter whatever its `Content-Type` (or none): providers rarely promise one, and the adapter
//! already answers `malformed` to a body that is not its provider's. With one, the media type
//! (parameters such as `charset` left out, compared case-insensitively) must be on it.

/// Why a configured media type was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MediaTypeError {
    /// An empty list would turn away every webhook.
    #[error("content_types is empty: list the media types to accept, or remove it to accept any")]
    Empty,
    /// Not `type/subtype` made of RFC 9110 token characters.
    #[error(
        "content_types entry {0:?} is not a media type such as \"application/json\" \
         (type/subtype, without parameters)"
    )]
    Invalid(String),
}

/// The accepted media types of a source, lowercased, without parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedMediaTypes(Vec<String>);

impl AllowedMediaTypes {
    /// Checks and normalises the configured list (each entry `type/subtype`, any case).
    pub fn new(configured: &[String]) -> Result<Self, MediaTypeError> {
        if configured.is_empty() {
            return Err(MediaTypeError::Empty);
        }
        let mut types = Vec::with_capacity(configured.len());
        for entry in configured {
            let valid = entry
                .split_once('/')
                .is_some_and(|(kind, subtype)| is_token(kind) && is_token(subtype));
            if !valid {
                return Err(MediaTypeError::Invalid(entry.clone()));
            }
            let lower = entry.to_ascii_lowercase();
            if !types.contains(&lower) {
                types.push(lower);
            }
        }
        Ok(Self(types))
    }

    /// Whether a request with this `Content-Type` value (`None`: no header, or one that is not
    /// visible ASCII) is accepted: its media type, without parameters, is on the list.
    pub fn allows(&self, content_type: Option<&str>) -> bool {
        let Some(essence) = content_type.map(essence) else {
            return false;
        };
        self.0
            .iter()
            .any(|allowed| allowed.eq_ignore_ascii_case(essence))
    }

    /// The accepted types, for the 415 answer's detail.
    pub fn list(&self) -> String {
        self.0.join(", ")
    }
}

/// The media type of a `Content-Type` value: before any `;`, surrounding whitespace trimmed.
fn essence(value: &str) -> &str {
    value.split(';').next().unwrap_or_default().trim()
}

/// RFC 9110 `token`: one or more of ``!#$%&'*+-.^_`|~``, digits and letters.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Result<AllowedMediaTypes, MediaTypeError> {
        AllowedMediaTypes::new(&entries.iter().map(|e| (*e).to_owned()).collect::<Vec<_>>())
    }

    #[test]
    fn parameters_and_case_do_not_matter() {
        let allowed = list(&["Application/JSON", "application/cloudevents+json"]).expect("valid");
        assert_eq!(
            allowed.list(),
            "application/json, application/cloudevents+json"
        );
        for accepted in [
            "application/json",
            "APPLICATION/JSON",
            "application/json; charset=utf-8",
            " application/json ;charset=\"UTF-8\"",
            "application/cloudevents+json",
        ] {
            assert!(allowed.allows(Some(accepted)), "{accepted}");
        }
        for refused in [
            "text/plain",
            "application/jsonx",
            "application/x-www-form-urlencoded",
            "",
            "application",
        ] {
            assert!(!allowed.allows(Some(refused)), "{refused}");
        }
        assert!(!allowed.allows(None), "no Content-Type");
    }

    #[test]
    fn invalid_entries_and_empty_lists_are_refused() {
        assert_eq!(list(&[]), Err(MediaTypeError::Empty));
        for invalid in [
            "json",
            "application/",
            "/json",
            "application/json; charset=utf-8",
            "application/json/x",
            "appli cation/json",
            "",
        ] {
            assert_eq!(
                list(&[invalid]),
                Err(MediaTypeError::Invalid(invalid.to_owned())),
                "{invalid}"
            );
        }
        assert_eq!(
            list(&["text/plain", "TEXT/PLAIN"]).expect("valid").list(),
            "text/plain"
        );
    }
}
