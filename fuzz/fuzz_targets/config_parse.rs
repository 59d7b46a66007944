//! The configuration parser and policy on arbitrary text: never a panic; a configuration that
//! parses can decide any request.
#![no_main]
use libfuzzer_sys::fuzz_target;
use session_wrapper_config::{Config, ExeKind, Request, Source};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // Split the input into a main file and a drop-in at the first NUL, to fuzz the merge too.
    let (main, dropin) = text.split_once('\0').unwrap_or((&text, ""));
    let sources = [Source::new("main.toml", main), Source::new("config.d/x.toml", dropin)];
    if let Ok(c) = Config::parse(&sources, &|_| None) {
        let argv = vec![b"x".to_vec(), data.get(..8).unwrap_or(data).to_vec()];
        let links = vec![data.get(..4).unwrap_or(data).to_vec()];
        let req = Request {
            user: "u",
            groups: &[],
            target_user: "root",
            service: "sshd",
            exe: data.get(..16).unwrap_or(data),
            links: &links,
            kind: ExeKind::File,
            dynamic_loader: false,
            loader_env: None,
            traced: false,
            foreign_user_namespace: false,
            untrusted_library_path: None,
            argv: &argv,
        };
        let d = c.policy.decide(&req);
        let _ = c.policy.decider_name(d.by);
    }
});
