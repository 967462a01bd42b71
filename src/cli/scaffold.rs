//! `tributary adapter new`: a compiling adapter crate on the SDK, with one fixture and a test
//! that runs the fixtures through the built library.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

const CARGO_TOML: &str = include_str!("templates/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("templates/lib.rs.tmpl");
const FIXTURES_TEST: &str = include_str!("templates/fixtures_test.rs.tmpl");
const README: &str = include_str!("templates/README.md.tmpl");
const RAW: &str = include_str!("templates/raw.json.tmpl");
const EXPECTED: &str = include_str!("templates/expected.json.tmpl");

/// Options of `tributary adapter new`.
#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// Adapter name: lowercase letters, digits and '-', starting with a letter ("acme-pay").
    pub name: String,
    /// Where to create the crate (default: plugins/<name>). May be outside the repository.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The Tributary repository whose SDK the crate depends on (by path). Default: the
    /// checkout around the current directory, else (with a warning) the one this binary was
    /// built from.
    #[arg(long)]
    pub repo: Option<PathBuf>,
}

/// Whether `name` is a valid adapter name.
fn valid_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
}

/// "acme-pay" -> "AcmePay".
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Whether `dir` is a Tributary checkout: it holds the SDK crate.
fn is_checkout(dir: &Path) -> bool {
    dir.join("crates/plugin-sdk/Cargo.toml").is_file()
}

/// The checkout whose SDK the new crate uses: `--repo` (checked), else the one around the
/// current directory, else the one this binary was built from, with a warning.
fn repository(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(given) = given {
        let repo = std::path::absolute(given)
            .with_context(|| format!("invalid --repo {}", given.display()))?;
        if !is_checkout(&repo) {
            bail!(
                "--repo {} is not a Tributary checkout (no crates/plugin-sdk/Cargo.toml): give \
                 the directory of a clone of the Tributary repository",
                repo.display()
            );
        }
        return Ok(repo);
    }
    let here = std::env::current_dir().context("cannot read the current directory")?;
    if let Some(around) = here.ancestors().find(|dir| is_checkout(dir)) {
        return Ok(around.to_path_buf());
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    if is_checkout(&built) {
        eprintln!(
            "warning: not inside a Tributary checkout: the new crate depends on the SDK of {} by \
             absolute path (pass --repo to choose another checkout)",
            built.display()
        );
        return Ok(built);
    }
    bail!(
        "not inside a Tributary checkout and {} is gone: pass --repo with a clone of the \
         Tributary repository",
        built.display()
    )
}

/// Creates the crate; returns its directory.
pub fn create(args: &NewArgs) -> anyhow::Result<PathBuf> {
    let name = args.name.as_str();
    if !valid_name(name) {
        bail!(
            "invalid adapter name `{name}`: use lowercase letters, digits and '-', starting with a letter"
        );
    }
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| Path::new("plugins").join(name));
    if dir.exists()
        && std::fs::read_dir(&dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    let repo = repository(args.repo.as_deref())?;
    if repo.join("plugins").join(name).join("Cargo.toml").is_file() {
        bail!(
            "adapter name `{name}` is taken by the bundled adapter in {}: choose another name",
            repo.join("plugins").join(name).display()
        );
    }
    let crate_dir = std::path::absolute(&dir)
        .with_context(|| format!("invalid directory {}", dir.display()))?;
    // Inside the checkout the SDK is named relative to the crate, so the checkout can move.
    let sdk_root = match crate_dir.strip_prefix(&repo) {
        Ok(inside) => {
            let depth = inside.components().count();
            vec![".."; depth].join("/")
        }
        Err(_) => repo.display().to_string(),
    };
    let crate_name = format!("tributary-adapter-{name}");
    let header = format!("x-{name}-token");
    let library = tributary_plugin_host::library_file_name(&crate_name);
    let fill = |template: &str| {
        template
            .replace("{{crate}}", &crate_name)
            .replace("{{repo}}", &sdk_root)
            .replace("{{Type}}", &type_name(name))
            .replace("{{header}}", &header)
            .replace("{{library}}", &library)
            .replace("{{name}}", name)
    };
    let request = serde_json::json!({ "headers": { &header: "fixture-token" } });
    let files: [(&str, String); 9] = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("tests/fixtures.rs", fill(FIXTURES_TEST)),
        ("README.md", fill(README)),
        (".gitignore", "/target\n".to_owned()),
        (
            "fixtures/adapter-config.json",
            "{\"verification\": {\"secrets\": [\"fixture-token\"]}}\n".to_owned(),
        ),
        ("fixtures/consent-granted.raw.json", fill(RAW)),
        (
            "fixtures/consent-granted.request.json",
            format!("{request:#}\n"),
        ),
        ("fixtures/consent-granted.expected.json", fill(EXPECTED)),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    // The host's lock file pins the versions the SDK was tested with (and lets a build that
    // shares the host's target directory reuse its compiled dependencies).
    let lock = repo.join("Cargo.lock");
    if lock.is_file() {
        std::fs::copy(&lock, dir.join("Cargo.lock"))
            .with_context(|| format!("cannot copy {}", lock.display()))?;
    }
    Ok(dir)
}

/// Runs `tributary adapter new` and prints the next steps.
pub fn run(args: &NewArgs) -> anyhow::Result<()> {
    let dir = create(args)?;
    let library =
        tributary_plugin_host::library_file_name(&format!("tributary-adapter-{}", args.name));
    println!("created {}", dir.display());
    println!();
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  cargo build");
    println!("  tributary adapter test target/debug/{library} fixtures");
    println!(
        "  cp target/debug/{library} <the server's plugin directory>   # loaded without a restart"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_turned_into_type_names() {
        assert!(valid_name("acme-pay2"));
        assert!(!valid_name("Acme"));
        assert!(!valid_name("2acme"));
        assert!(!valid_name("acme_pay"));
        assert!(!valid_name("acme-"));
        assert_eq!(type_name("acme-pay2"), "AcmePay2");
    }
}
