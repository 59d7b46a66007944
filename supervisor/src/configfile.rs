//! Reading the configuration from disk: the main file, then the drop-ins in `config.d/` next
//! to it (`*.toml`, in lexical order), handed to the pure parser of
//! [`session_wrapper_config`]. Symlinks in executable patterns are resolved here, through
//! directories and links only root can change ([`crate::sys::trust`]).
//!
//! When the reader is root, every file must be owned by root and writable by no one else:
//! otherwise whoever can write it decides what every session may run.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use session_wrapper_config::{Config, ConfigError, Source};

/// The main configuration file.
pub const DEFAULT_PATH: &str = "/etc/session-wrapper/config.toml";

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The main file does not exist.
    #[error("no configuration file at {0}")]
    NotFound(PathBuf),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file others can change.
    #[error("{0}: refusing a configuration file that is not owned by root or is writable by others")]
    Insecure(PathBuf),
    /// The files do not make a valid configuration.
    #[error("{0}")]
    Invalid(#[from] ConfigError),
}

/// Resolves a path in an executable pattern to the real path it leads to, when it leads there
/// through directories and links that only root can change; `None` otherwise (the pattern is
/// then matched as written, so a user's own symlink cannot widen it).
pub fn canonicalize(path: &str) -> Option<String> {
    crate::sys::trust::canonicalize(path)
}

fn check_owner(path: &Path, meta: &std::fs::Metadata) -> Result<(), LoadError> {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && (meta.uid() != 0 || meta.mode() & 0o022 != 0) {
        return Err(LoadError::Insecure(path.to_owned()));
    }
    Ok(())
}

fn read_source(path: &Path) -> Result<Source, LoadError> {
    let io = |source| LoadError::Io { path: path.to_owned(), source };
    let meta = std::fs::metadata(path).map_err(io)?;
    check_owner(path, &meta)?;
    let text = std::fs::read_to_string(path).map_err(io)?;
    Ok(Source::new(path.display().to_string(), text))
}

/// The files that make up the configuration at `main`: `main` itself, then
/// `config.d/*.toml` beside it in lexical order.
///
/// # Errors
/// [`LoadError::NotFound`] when `main` is missing; I/O and permission errors.
pub fn sources(main: &Path) -> Result<Vec<Source>, LoadError> {
    if !main.exists() {
        return Err(LoadError::NotFound(main.to_owned()));
    }
    let mut out = vec![read_source(main)?];
    let dir = main.parent().unwrap_or(Path::new("/")).join("config.d");
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            let mut files: Vec<PathBuf> = entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "toml") && p.is_file())
                .collect();
            files.sort();
            for f in files {
                out.push(read_source(&f)?);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(LoadError::Io { path: dir, source }),
    }
    Ok(out)
}

/// Loads and checks the configuration at `main` (and its drop-ins).
///
/// # Errors
/// [`LoadError`].
pub fn load(main: &Path) -> Result<Config, LoadError> {
    let sources = sources(main)?;
    Ok(Config::parse(&sources, &crate::sys::trust::canonicalizer())?)
}

/// The built-in default configuration, with patterns resolved on this system.
///
/// # Errors
/// Never in practice: a unit test of the config crate parses the built-in text.
pub fn builtin() -> Result<Config, LoadError> {
    Ok(Config::builtin(&canonicalize)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sw-cfg-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(d.join("config.d")).expect("mkdir");
        d
    }

    #[test]
    fn drop_ins_are_read_in_lexical_order_after_the_main_file() {
        let d = dir("order");
        std::fs::write(d.join("config.toml"), "mode = \"enforce\"\n").expect("w");
        std::fs::write(d.join("config.d/20-b.toml"), "mode = \"audit\"\n").expect("w");
        std::fs::write(d.join("config.d/10-a.toml"), "mode = \"enforce\"\n").expect("w");
        std::fs::write(d.join("config.d/ignored.txt"), "garbage").expect("w");
        let names: Vec<String> =
            sources(&d.join("config.toml")).expect("sources").into_iter().map(|s| s.name).collect();
        assert!(names[0].ends_with("config.toml"));
        assert!(names[1].ends_with("10-a.toml") && names[2].ends_with("20-b.toml"));
        assert_eq!(names.len(), 3);
        let c = load(&d.join("config.toml")).expect("valid");
        assert_eq!(c.mode, session_wrapper_config::Mode::Audit);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn missing_and_invalid_configs_are_reported_with_their_location() {
        let d = dir("bad");
        let e = load(&d.join("config.toml")).expect_err("missing");
        assert!(matches!(e, LoadError::NotFound(_)));
        std::fs::write(d.join("config.toml"), "[[rules]]\nexe = 3\n").expect("w");
        let e = load(&d.join("config.toml")).expect_err("invalid").to_string();
        assert!(e.contains("config.toml:2:"), "{e}");
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn world_writable_config_is_refused_when_root() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: the ownership check applies to root only and this test is not root");
            return;
        }
        let d = dir("perm");
        let p = d.join("config.toml");
        std::fs::write(&p, "").expect("w");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).expect("chmod");
        assert!(matches!(load(&p), Err(LoadError::Insecure(_))));
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn builtin_parses_and_patterns_resolve_through_root_only_paths() {
        let c = builtin().expect("built-in parses");
        assert_eq!(c.policy.default_action, session_wrapper_config::Action::Allow);
        let sh = std::fs::canonicalize("/bin/sh").expect("sh");
        assert_eq!(canonicalize("/bin/sh").as_deref(), sh.to_str());
    }
}
