//! product_request_received -> data_request.received;
//! product_generated_success / failed -> data_product.ready / failed.

use tributary_plugin_sdk::lenient::Item;
use tributary_plugin_sdk::prelude::*;

use super::typed::{Payload as KlaviPayload, RequestBody, owned};
use super::{Mapped, tax_id};
use tributary_plugin_sdk::personal_data::PersonalDataGuard;

/// A data request was accepted: request id, products, callback URLs, consents drawn on.
pub fn request_received(payload: &KlaviPayload<'_>, guard: &PersonalDataGuard) -> Mapped {
    let request_id = payload.request_id.to_string_owned();
    let empty = RequestBody::default();
    let body = payload.request_body.0.as_ref().unwrap_or(&empty);
    // Spellings of the product -> callback URL map: the webhook example says
    // `productCallbackURL`, the request APIs say `productsCallbackURL`. The first present
    // counts, object or not.
    let callbacks = [
        &body.product_callback_url,
        &body.products_callback_url,
        &body.product_callback_url_lower,
        &body.products_callback_url_lower,
    ]
    .into_iter()
    .find(|callbacks| !matches!(callbacks, Item::Absent))
    .and_then(Item::as_object);
    let callback_urls = callbacks
        .map(|map| {
            map.0
                .iter()
                .filter_map(|(product, url)| {
                    let url = url.as_ref()?;
                    Some((product.clone().into_owned(), url.clone().into_owned()))
                })
                .collect()
        })
        .unwrap_or_default();
    Mapped {
        r#type: "data_request.received",
        subject: request_id.clone(),
        payload: Payload::DataRequest(DataRequestEvent {
            request_id,
            products: owned(&body.products),
            callback_urls,
            consent_ids: owned(&body.consent_ids),
            request_tax_id: tax_id(body.tax_id.as_str(), guard),
        }),
    }
}

/// A requested product was generated, or failed (with Klavi's reason).
pub fn generated(payload: &KlaviPayload<'_>, status: DataProductStatus) -> Mapped {
    let request_id = payload.request_id.to_string_owned();
    Mapped {
        r#type: match status {
            DataProductStatus::Failed => "data_product.failed",
            _ => "data_product.ready",
        },
        subject: request_id.clone(),
        payload: Payload::DataProduct(DataProductEvent {
            status: status as i32,
            request_id,
            product: payload.product.to_string_owned(),
            failure_reason: payload.failure_reason.to_string_owned(),
            ..Default::default()
        }),
    }
}
