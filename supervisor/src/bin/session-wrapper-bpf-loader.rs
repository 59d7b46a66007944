//! `session-wrapper-bpf-loader`: loads, attaches and pins the kernel's exec check, once per
//! boot, for the supervisor that first needs it. Not meant to be run by hand; see
//! session-wrapper(8). Its argument is the tag of the programs the supervisor expects.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let status = session_wrapper::sys::bpf::load::main(&args);
    ExitCode::from(u8::try_from(status).unwrap_or(1))
}
