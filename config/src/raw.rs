//! The configuration file as written: serde types, every key optional so that drop-ins can set
//! just what they change. Semantic checks happen in `check/`, one module per table, called
//! from [`crate::Config::parse`].

use serde::Deserialize;
use toml::Spanned;

/// One TOML file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawFile {
    pub mode: Option<Spanned<String>>,
    pub fail_policy: Option<Spanned<String>>,
    pub log_failure: Option<Spanned<String>>,
    pub verify: Option<Spanned<String>>,
    pub deny_errno: Option<Spanned<String>>,
    pub default: Option<Spanned<String>>,
    pub default_message: Option<String>,
    pub scope: Option<RawScope>,
    pub guards: Option<RawGuards>,
    pub log: Option<RawLog>,
    pub tacacs: Option<RawTacacs>,
    #[serde(default)]
    pub rules: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub fallback: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub isolation: Vec<Spanned<RawIsolation>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawIsolation {
    pub name: Option<Spanned<String>>,
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub services: Option<Spanned<Vec<Spanned<String>>>>,
    pub block_syscalls: Option<Spanned<Vec<Spanned<String>>>>,
    pub memory_max: Option<Spanned<toml::Value>>,
    pub pids_max: Option<Spanned<i64>>,
    pub cpu_max: Option<Spanned<String>>,
    pub private_dirs: Option<Spanned<Vec<Spanned<String>>>>,
    pub landlock: Option<Spanned<RawLandlock>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawLandlock {
    pub read: Option<Vec<Spanned<String>>>,
    pub write: Option<Vec<Spanned<String>>>,
    pub execute: Option<Vec<Spanned<String>>>,
    pub tcp_bind: Option<Vec<Spanned<i64>>>,
    pub tcp_connect: Option<Vec<Spanned<i64>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTacacs {
    pub servers: Option<Vec<Spanned<RawServer>>>,
    pub key_file: Option<Spanned<String>>,
    pub service: Option<Spanned<String>>,
    pub protocol: Option<Spanned<String>>,
    pub priv_lvl: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub dead_server_retry_s: Option<Spanned<i64>>,
    pub single_connect: Option<bool>,
    pub cache_ttl_s: Option<Spanned<i64>>,
    pub accounting: Option<bool>,
    pub session_accounting: Option<bool>,
    pub accounting_queue: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawServer {
    pub host: Spanned<String>,
    pub port: Option<Spanned<i64>>,
    pub timeout_ms: Option<Spanned<i64>>,
    pub key_file: Option<Spanned<String>>,
    pub tls: Option<Spanned<RawTls>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawTls {
    pub ca_file: Spanned<String>,
    pub client_cert: Option<Spanned<String>>,
    pub client_key: Option<Spanned<String>>,
    pub server_name: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawScope {
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub services: Option<Spanned<Vec<Spanned<String>>>>,
    pub exempt_users: Option<Spanned<Vec<Spanned<String>>>>,
    pub exempt_groups: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawGuards {
    pub memfd: Option<Spanned<String>>,
    pub deleted: Option<Spanned<String>>,
    pub dynamic_loader: Option<Spanned<String>>,
    pub loader_env: Option<Spanned<Vec<Spanned<String>>>>,
    pub traced: Option<Spanned<String>>,
    pub io_uring: Option<Spanned<String>>,
    pub foreign_mount: Option<Spanned<String>>,
    pub user_namespaces: Option<Spanned<String>>,
    pub library_path: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawLog {
    pub socket: Option<String>,
    pub format: Option<Spanned<String>>,
    pub audit: Option<Spanned<String>>,
    pub spool_dir: Option<String>,
    pub argv_max: Option<Spanned<i64>>,
}

/// One `[[rules]]` or `[[fallback]]` rule. A new condition starts here: see "Adding a rule
/// condition" in `check/rule.rs`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct RawRule {
    pub name: Option<Spanned<String>>,
    pub users: Option<Spanned<Vec<Spanned<String>>>>,
    pub groups: Option<Spanned<Vec<Spanned<String>>>>,
    pub target_users: Option<Spanned<Vec<Spanned<String>>>>,
    pub services: Option<Spanned<Vec<Spanned<String>>>>,
    pub exe: Option<Spanned<OneOrMany>>,
    pub names: Option<Spanned<Vec<Spanned<String>>>>,
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
    pub any_arg: Option<Spanned<Vec<Spanned<String>>>>,
    pub cmdline: Option<Spanned<String>>,
    pub action: Option<Spanned<String>>,
    pub message: Option<Spanned<String>>,
}

/// `exe = "/usr/bin/ls"` or `exe = ["/usr/bin/ls", "/usr/bin/cat"]`.
#[derive(Debug)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<Spanned<String>>),
}

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a path pattern or a list of path patterns")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut v = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<String>>()? {
                    v.push(item);
                }
                Ok(OneOrMany::Many(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// The patterns of an `exe` value, with the offset of the value itself.
pub(crate) fn exe_patterns(value: Spanned<OneOrMany>) -> (usize, Vec<Spanned<String>>) {
    let span = value.span();
    match value.into_inner() {
        OneOrMany::One(s) => (span.start, vec![Spanned::new(span.clone(), s)]),
        OneOrMany::Many(v) => (span.start, v),
    }
}
