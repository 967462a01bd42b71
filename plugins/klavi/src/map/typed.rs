//! An event's `payload`, typed: one struct with the keys every Klavi event family reads, and
//! the objects inside it. Each field reads what the `Value` helpers read (`str_at`,
//! `strings_at`, `timestamp_at`...).

use std::borrow::Cow;

use serde::de::MapAccess;
use tributary_plugin_sdk::lenient::{Item, Key, LenientObject, Obj, Str, Strings, Text};
use tributary_plugin_sdk::lenient_object;

lenient_object! {
    /// `payload` of any Klavi API event.
    pub struct Payload<'a> {
        "linkId" => link_id: Text<'a>,
        "personalTaxId" => personal_tax_id: Text<'a>,
        "businessTaxId" => business_tax_id: Text<'a>,
        "consents" => consents: Item<'a, Consent<'a>>,
        "failureReason" => failure_reason: Text<'a>,
        "reason" => reason: Text<'a>,
        "requestId" => request_id: Text<'a>,
        "product" => product: Text<'a>,
        "requestBody" => request_body: Obj<RequestBody<'a>>,
    }
}

lenient_object! {
    /// One consent of `payload.consents`.
    pub struct Consent<'a> {
        "consentId" => consent_id: Text<'a>,
        "externalTrackId" => external_track_id: Text<'a>,
        "institutionCode" => institution_code: Text<'a>,
        "permissionsApply" => permissions_apply: Strings<'a>,
        "permissionsGranted" => permissions_granted: Strings<'a>,
        "expireAt" => expire_at: Str<'a>,
        "failureReason" => failure_reason: Text<'a>,
        "reason" => reason: Text<'a>,
    }
}

lenient_object! {
    /// `payload.requestBody` of a product request; the callback map has four spellings, and
    /// the first one present wins even when it is not an object (hence `Item`).
    pub struct RequestBody<'a> {
        "linkId" => link_id: Text<'a>,
        "institutionCode" => institution_code: Text<'a>,
        "taxId" => tax_id: Text<'a>,
        "products" => products: Strings<'a>,
        "consentIds" => consent_ids: Strings<'a>,
        "productCallbackURL" => product_callback_url: Item<'a, CallbackUrls<'a>>,
        "productsCallbackURL" => products_callback_url: Item<'a, CallbackUrls<'a>>,
        "productCallbackUrl" => product_callback_url_lower: Item<'a, CallbackUrls<'a>>,
        "productsCallbackUrl" => products_callback_url_lower: Item<'a, CallbackUrls<'a>>,
    }
}

/// A product -> callback URL object: every entry, the value only when it is a string. A
/// repeated key keeps its last value (as in a `Value` map), so a later non-string value still
/// removes an earlier URL.
#[derive(Debug, Default)]
pub struct CallbackUrls<'a>(pub Vec<(Cow<'a, str>, Option<Cow<'a, str>>)>);

impl<'a> LenientObject<'a> for CallbackUrls<'a> {
    fn fill<A: MapAccess<'a>>(&mut self, mut map: A) -> Result<(), A::Error> {
        while let Some(Key(product)) = map.next_key::<Key<'a>>()? {
            let Str(url) = map.next_value::<Str<'a>>()?;
            match self.0.iter_mut().find(|(known, _)| *known == product) {
                Some(entry) => entry.1 = url,
                None => self.0.push((product, url)),
            }
        }
        Ok(())
    }
}

/// The strings of a [`Strings`] field, owned.
pub fn owned(strings: &Strings<'_>) -> Vec<String> {
    strings.0.iter().map(|s| s.clone().into_owned()).collect()
}
