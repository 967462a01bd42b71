//! Support shared by Tributary's test suites, so each suite does not grow its own copy.
//!
//! - [`pki`]: a private CA with a server and a client certificate, for TLS and mTLS tests.

pub mod pki;
