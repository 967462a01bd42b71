//! The plugin host's tests, one binary: real libraries (small C plugins built for each test)
//! loaded and called through the host.

mod calls;
mod instance_info;
mod load_errors;
mod support;
mod trust;
