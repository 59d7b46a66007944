//! An allowed program for the loader-variable attacks: if it runs with `LD_PRELOAD` or
//! `LD_AUDIT` in its environment (the loader would have honoured them), it leaves evidence as
//! `sw-attack-mark` does (`win.<pid>` in `$SW_WIN_DIR`, `LOADER-ENV-REACHED`, exit 66);
//! otherwise it exits 0.

fn main() {
    let hit: Vec<String> = std::env::vars_os()
        .filter(|(k, _)| k == "LD_PRELOAD" || k == "LD_AUDIT")
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    if hit.is_empty() {
        std::process::exit(0);
    }
    if let Some(d) = std::env::var_os("SW_WIN_DIR") {
        let _ = std::fs::write(std::path::Path::new(&d).join(format!("win.{}", std::process::id())), format!("{hit:?}\n"));
    }
    println!("LOADER-ENV-REACHED {hit:?}");
    std::process::exit(66)
}
