//! Subcommands other than `serve`.

pub mod adapter;
pub mod admin;
