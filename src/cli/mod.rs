//! Subcommands other than `serve`.

pub mod adapter;
