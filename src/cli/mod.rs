//! Subcommands other than `serve`.

pub mod adapter;
pub mod admin;
pub mod dry_run;
pub mod events;
pub mod scaffold;
