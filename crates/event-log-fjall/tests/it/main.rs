//! The fjall log's tests, one binary, each on a temporary directory of its own.

mod common;
mod conformance;
mod crash;
mod group_commit;
mod segments;
mod stored_format;
