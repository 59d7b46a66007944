//! Decoding the path, argv and environment of an exec from a hostile address space: the input
//! lays out pages and pointers; decoding must never panic, read past its bounds, or return more
//! than the limits allow.
#![no_main]
use libfuzzer_sys::fuzz_target;
use session_wrapper::sys::memory::{scan_env, read_argv, read_path, FakeMemory, Limits, PtrWidth, Remote, PAGE};

fuzz_target!(|data: &[u8]| {
    if data.len() < 4 {
        return;
    }
    // The first bytes choose the layout; the rest fills up to four pages at chosen bases.
    let width = if data[0] & 1 == 0 { PtrWidth::Bits64 } else { PtrWidth::Bits32 };
    let npages = (data[1] % 4) as usize + 1;
    let body = &data[4..];
    let chunk = body.len() / npages.max(1);
    let mut pages = Vec::new();
    for i in 0..npages {
        let base = (u64::from(data[2].wrapping_add(i as u8)) % 8) * PAGE + 0x10000;
        let piece = body.get(i * chunk..(i + 1) * chunk).unwrap_or(&[]);
        pages.push((base, piece.to_vec()));
    }
    let limits = Limits { path: 300, arg: 200, argv_total: 2000, entries: 64 };
    let start = 0x10000 + u64::from(data[3]) * 7;
    let mut mem = Remote::with_source(FakeMemory { pages });
    if let Ok(p) = read_path(&mut mem, start, &limits) {
        assert!(p.len() <= limits.path && !p.contains(&0));
    }
    if let Ok(argv) = read_argv(&mut mem, start, width, &limits) {
        assert!(argv.len() <= limits.entries);
        assert!(argv.iter().map(|a| a.len() + 1).sum::<usize>() <= limits.argv_total);
    }
    let names = vec!["LD_PRELOAD".to_string(), "LD_AUDIT".to_string()];
    let paths = vec!["LD_LIBRARY_PATH".to_string()];
    if let Ok(scan) = scan_env(&mut mem, start, width, &names, &paths, &limits, 256) {
        assert!(scan.paths.iter().all(|(_, v)| v.len() < limits.arg));
        // The whole strings kept for the kernel's check never pass what was asked for.
        assert!(scan.strings.as_ref().map_or(true, |s| s.len() < 256 && s.last().map_or(true, |&b| b == 0)));
    }
});
