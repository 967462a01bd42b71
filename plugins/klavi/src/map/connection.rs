//! link_created -> connection.created.

use serde_json::Value;
use tributary_plugin_sdk::convert::str_at;
use tributary_plugin_sdk::prelude::*;

use super::Mapped;

/// The user linked an institution; the link id is the subject (and the connection reference).
pub fn link_created(payload: &Value) -> Mapped {
    Mapped {
        r#type: "connection.created",
        subject: str_at(payload, "linkId"),
        payload: Payload::Connection(ConnectionEvent {
            status: ConnectionStatus::Created as i32,
            ..Default::default()
        }),
    }
}
