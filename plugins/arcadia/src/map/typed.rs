//! Pieces the typed mappers share: the `provider` object, credential references, correlation
//! ids and the date/instant readers, each read as the `Value` helpers of `map` read them.

use tributary_plugin_sdk::convert::date;
use tributary_plugin_sdk::lenient::{Flag, Obj, Objects, Str, Strings, Text};
use tributary_plugin_sdk::lenient_object;
use tributary_plugin_sdk::prelude::*;

use super::push_unique;

lenient_object! {
    /// A `provider` object: the institution, plus what statement account lines add.
    #[derive(Clone)]
    pub struct Provider<'a> {
        "id" => id: Text<'a>,
        "name" => name: Text<'a>,
        "country" => country: Text<'a>,
        "classification" => classification: Text<'a>,
        "publisherProviderAccountId" => publisher_provider_account_id: Text<'a>,
        "isIntervalDataSupported" => interval_data_supported: Flag,
        "isRealTimeCredentialValidationSupported" => real_time_validation_supported: Flag,
    }
}

lenient_object! {
    /// An object of which only `id` is read (`credential`, `credentials[]`).
    #[derive(Clone)]
    pub struct IdOnly<'a> {
        "id" => id: Text<'a>,
    }
}

/// The four keys that name a credential (`account::credential_ids_of`), borrowed from one
/// object.
pub struct CredentialRefs<'r, 'a> {
    /// `credentialId`.
    pub credential_id: &'r Text<'a>,
    /// `credential` {id}.
    pub credential: &'r Obj<IdOnly<'a>>,
    /// `credentialIds[]`.
    pub credential_ids: &'r Strings<'a>,
    /// `credentials[]` {id}.
    pub credentials: &'r Objects<IdOnly<'a>>,
}

/// `account::credential_id` on typed objects: the one credential they name, in the same order;
/// empty when none or several.
pub fn credential_id<'r, 'a: 'r>(
    objects: impl IntoIterator<Item = CredentialRefs<'r, 'a>>,
) -> String {
    let mut ids = Vec::new();
    for refs in objects {
        push_unique(&mut ids, refs.credential_id.to_string_owned());
        if let Some(credential) = &refs.credential.0 {
            push_unique(&mut ids, credential.id.to_string_owned());
        }
        for id in &refs.credential_ids.0 {
            push_unique(&mut ids, id.clone().into_owned());
        }
        for credential in &refs.credentials.0 {
            push_unique(&mut ids, credential.id.to_string_owned());
        }
    }
    match ids.as_slice() {
        [only] => only.clone(),
        _ => String::new(),
    }
}

/// `provider` {id, name, country} as an Institution; `None` when not an object or empty.
pub fn institution(provider: &Obj<Provider<'_>>) -> Option<Institution> {
    let provider = provider.0.as_ref()?;
    let institution = Institution {
        id: provider.id.to_string_owned(),
        name: provider.name.to_string_owned(),
        country: provider.country.to_string_owned(),
        interval_data_supported: provider.interval_data_supported.0,
        real_time_validation_supported: provider.real_time_validation_supported.0,
    };
    (institution != Institution::default()).then_some(institution)
}

/// `correlationId` and `correlationIds[]`, without empties or repeats.
pub fn correlation_ids(single: &Text<'_>, many: &Strings<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for id in std::iter::once(&single.0).chain(&many.0) {
        push_unique(&mut ids, id.clone().into_owned());
    }
    ids
}

/// `date_at`: a "YYYY-MM-DD" string.
pub fn date_of(value: &Str<'_>) -> Option<Date> {
    value.get().and_then(date)
}

/// `timestamp_at`: an RFC 3339 string.
pub fn instant_of(value: &Str<'_>) -> Option<Timestamp> {
    value.get().and_then(timestamp)
}
