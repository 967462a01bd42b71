//! The Tributary plugin SDK: everything an adapter author needs to turn one provider's webhooks
//! into canonical events, packaged as a dynamic library the service loads at run time.
//!
//! Implement [`Adapter`] and call [`export_adapter!`] once:
//!
//! ```ignore
//! use tributary_plugin_sdk::prelude::*;
//!
//! struct Acme;
//! impl Adapter for Acme {
//!     type Config = serde_json::Value;
//!     fn info() -> AdapterInfo { AdapterInfo { name: "acme".into(), version: env!("CARGO_PKG_VERSION").into(), personal_data_fields: vec!["email".into()], ..Default::default() } }
//!     fn new(_config: Self::Config, _host: &HostContext) -> Result<Self, String> { Ok(Acme) }
//!     fn verify(&self, _request: &Request<'_>) -> Result<(), Rejection> { Err(reject::unauthenticated("no secret configured")) }
//!     fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection> { todo!() }
//! }
//! export_adapter!(Acme);
//! ```
//!
//! The SDK owns the C boundary: it borrows the request from the host's memory (ABI v2), runs
//! `verify` then `normalize` inside `catch_unwind`, encodes the result and frees what it
//! allocated. Adapters stay synchronous
//! and pure: no async runtime, no I/O.

pub mod convert;
#[doc(hidden)]
pub mod ffi;
pub mod lenient;
pub mod personal_data;
mod request;
pub mod secrets;
#[cfg(feature = "testing")]
pub mod testing;
pub mod verify;

pub use request::Request;
pub use tributary_model as model;
pub use tributary_plugin_abi as abi;

use serde::Deserialize;
use serde::de::DeserializeOwned;
use tributary_model::v1::{AdapterInfo, InstanceInfo, Normalized, Rejection, SecretInfo};

/// What the host tells an adapter instance when it creates it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct HostContext {
    /// The source this instance serves ("arcadia", "finicity-sandbox").
    #[serde(default)]
    pub source: String,
    /// A secret the host keeps per installation, used as the personal-data hash key when the
    /// source configures none, so hashes are stable across restarts without extra setup.
    #[serde(default)]
    pub installation_key: String,
}

/// A provider adapter: verifies and normalizes one provider's webhooks.
///
/// One instance serves one source and is shared by all request threads, so it is immutable
/// after [`Adapter::new`].
pub trait Adapter: Sized + Send + Sync + 'static {
    /// The source's `config` table from the service configuration (secrets, policy).
    type Config: DeserializeOwned;

    /// Name, version and provider of this adapter, and `personal_data_fields`: the JSON key
    /// names of the provider's payloads that hold personal data, which the host redacts when it
    /// shows raw bodies (dead letters); and `display_fields`: the JSON keys whose string values
    /// are safe to show (ids, types, statuses), every other string value being masked there.
    /// The SDK lowercases, sorts and deduplicates both.
    fn info() -> AdapterInfo;

    /// Builds an instance for one source. Errors are shown to the operator at start-up.
    fn new(config: Self::Config, host: &HostContext) -> Result<Self, String>;

    /// Start-up warnings for the operator (e.g. "verification is switched off").
    fn warnings(&self) -> Vec<String> {
        Vec::new()
    }

    /// How this instance verifies webhooks (on, not configured, switched off) and its secrets'
    /// positions, labels and ends: a value the host shows, never read from a warning. An
    /// adapter keeping [`secrets::Secrets`] returns [`secrets::Secrets::instance_info`]. The
    /// default reports nothing (the host shows "unknown").
    fn instance_info(&self) -> InstanceInfo {
        InstanceInfo::default()
    }

    /// [`Adapter::verify`], also saying which configured secret verified the request (position
    /// and label, never the value; `None` when none did, e.g. verification switched off). The
    /// host counts webhooks per secret so an operator knows when an old one can go. The
    /// default runs `verify` and names none.
    fn verify_secret(&self, request: &Request<'_>) -> Result<Option<SecretInfo>, Rejection> {
        self.verify(request).map(|()| None)
    }

    /// Checks the request is authentic (signature, shared header...). Runs before `normalize`.
    ///
    /// Fail closed: while no secret is configured, reject every request with
    /// [`reject::unauthenticated`]; accept unverified requests only when the operator switched
    /// verification off explicitly ([`verify::VerificationSwitch`], with a start-up warning).
    fn verify(&self, request: &Request<'_>) -> Result<(), Rejection>;

    /// Maps the verified request to canonical events; unknown items go to `unmapped`.
    fn normalize(&self, request: &Request<'_>) -> Result<Normalized, Rejection>;
}

/// The result of a webhook that carries one provider event: that event, or, when it cannot be
/// mapped, the whole body as an unmapped item (dead-lettered by the host) with the reason.
pub fn single_event(
    mapped: Result<tributary_model::v1::Event, String>,
    provider_event_id: &str,
    provider_event_type: &str,
    request: &Request<'_>,
) -> Normalized {
    match mapped {
        Ok(event) => Normalized {
            events: vec![event],
            ..Default::default()
        },
        Err(reason) => Normalized {
            unmapped: vec![tributary_model::v1::UnmappedItem {
                provider_event_id: provider_event_id.to_owned(),
                provider_event_type: provider_event_type.to_owned(),
                reason,
                raw: request.body().to_vec(),
            }],
            ..Default::default()
        },
    }
}

/// Rejection helpers: the kinds the host turns into HTTP statuses.
pub mod reject {
    use tributary_model::v1::{Rejection, RejectionKind};

    /// Verification failed (401). The reason is logged, never sent to the caller.
    pub fn unauthenticated(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::Unauthenticated as i32,
            reason: reason.into(),
        }
    }

    /// The body is not JSON or not the provider's envelope (400).
    pub fn malformed(reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: RejectionKind::Malformed as i32,
            reason: reason.into(),
        }
    }
}

/// The names an adapter usually needs.
pub mod prelude {
    pub use crate::convert::{
        self, date, money, quantity, timestamp, timestamp_from_epoch_seconds,
    };
    pub use crate::personal_data::{PersonalDataPolicy, Treatment};
    pub use crate::reject;
    pub use crate::secrets::{self, SecretEntry, Secrets, Verification};
    pub use crate::verify;
    pub use crate::{Adapter, HostContext, Request, export_adapter, single_event};
    pub use tributary_model::v1::event::Payload;
    pub use tributary_model::v1::*;
    pub use tributary_model::well_known::{Struct, Timestamp};
}

/// Exports an [`Adapter`] type as a Tributary plugin (ABI v2). Call it once per cdylib.
#[macro_export]
macro_rules! export_adapter {
    ($adapter:ty) => {
        /// Entry point of the Tributary plugin ABI v2.
        #[unsafe(no_mangle)]
        pub extern "C" fn tributary_adapter_v2() -> *const $crate::abi::AdapterVTableV2 {
            static VTABLE: $crate::abi::AdapterVTableV2 = $crate::ffi::vtable::<$adapter>();
            &VTABLE
        }

        /// The ABI version this plugin was built for.
        #[unsafe(no_mangle)]
        pub extern "C" fn tributary_abi_version() -> u32 {
            $crate::abi::ABI_VERSION
        }
    };
}
