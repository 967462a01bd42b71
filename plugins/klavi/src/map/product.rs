//! product_request_received -> data_request.received;
//! product_generated_success / failed -> data_product.ready / failed.

use serde_json::Value;
use tributary_plugin_sdk::convert::{str_at, strings_at};
use tributary_plugin_sdk::prelude::*;

use super::Mapped;

/// Spellings of the product -> callback URL map: the webhook example says
/// `productCallbackURL`, the request APIs say `productsCallbackURL`.
const CALLBACK_KEYS: [&str; 4] = [
    "productCallbackURL",
    "productsCallbackURL",
    "productCallbackUrl",
    "productsCallbackUrl",
];

/// A data request was accepted: request id, products, callback URLs, consents drawn on.
pub fn request_received(payload: &Value) -> Mapped {
    let request_id = str_at(payload, "requestId");
    let body = payload.get("requestBody").unwrap_or(&Value::Null);
    let callbacks = CALLBACK_KEYS
        .iter()
        .find_map(|key| body.get(*key))
        .and_then(Value::as_object);
    let callback_urls = callbacks
        .map(|map| {
            map.iter()
                .filter_map(|(product, url)| url.as_str().map(|u| (product.clone(), u.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    Mapped {
        r#type: "data_request.received",
        subject: request_id.clone(),
        payload: Payload::DataRequest(DataRequestEvent {
            request_id,
            products: strings_at(body, "products"),
            callback_urls,
            consent_ids: strings_at(body, "consentIds"),
        }),
    }
}

/// A requested product was generated, or failed (with Klavi's reason).
pub fn generated(payload: &Value, status: DataProductStatus) -> Mapped {
    let request_id = str_at(payload, "requestId");
    Mapped {
        r#type: match status {
            DataProductStatus::Failed => "data_product.failed",
            _ => "data_product.ready",
        },
        subject: request_id.clone(),
        payload: Payload::DataProduct(DataProductEvent {
            status: status as i32,
            request_id,
            product: str_at(payload, "product"),
            failure_reason: str_at(payload, "failureReason"),
            ..Default::default()
        }),
    }
}
