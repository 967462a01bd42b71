//! Subcommands other than `serve`.
//!
//! The doc comments of the argument structs are the commands' `--help` text, written for a
//! terminal (`plugins/<name>`), not as rustdoc markup.
#![allow(rustdoc::invalid_html_tags)]

pub mod adapter;
pub mod admin;
pub mod archive;
pub mod audit;
pub mod dry_run;
pub mod endpoint;
pub mod events;
pub mod rejections;
pub mod report;
pub mod scaffold;
pub mod shadow;
pub mod table;
