//! link_created -> connection.created.

use tributary_plugin_sdk::prelude::*;

use super::Mapped;
use super::typed::Payload as KlaviPayload;

/// The user linked an institution; the link id is the subject (and the connection reference).
pub fn link_created(payload: &KlaviPayload<'_>) -> Mapped {
    Mapped {
        r#type: "connection.created",
        subject: payload.link_id.to_string_owned(),
        payload: Payload::Connection(ConnectionEvent {
            status: ConnectionStatus::Created as i32,
            ..Default::default()
        }),
    }
}
