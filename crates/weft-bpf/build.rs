//! Compiles bpf/weft.bpf.c with clang-19 into a libbpf skeleton.
//!
//! clang-19 is required: Debian's default clang-14 produces objects that the
//! verifier rejects and lacks `-mcpu=v4`. Override with `WEFT_CLANG`.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let bpf_dir = manifest.join("../../bpf");
    let src = bpf_dir.join("weft.bpf.c");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("weft.skel.rs");
    let clang = env::var("WEFT_CLANG").unwrap_or_else(|_| "clang-19".to_string());

    if let Err(e) = std::process::Command::new(&clang).arg("--version").output() {
        panic!(
            "weft needs {clang} to build its BPF programs ({e}); install it with \
             `apt-get install clang-19 llvm-19` or set WEFT_CLANG to a clang >= 19"
        );
    }

    SkeletonBuilder::new()
        .source(&src)
        .clang(&clang)
        .clang_args([
            format!("-I{}", bpf_dir.join("include").display()),
            format!("-I{}", bpf_dir.display()),
            "-mcpu=v3".to_string(),
            "-Wall".to_string(),
            "-Werror".to_string(),
            "-Wno-unused-function".to_string(),
        ])
        .build_and_generate(&out)
        .unwrap_or_else(|e| panic!("building {}: {e:#}", src.display()));

    for entry in std::fs::read_dir(&bpf_dir)
        .expect("bpf/ directory")
        .flatten()
    {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    for entry in std::fs::read_dir(bpf_dir.join("include"))
        .expect("bpf/include")
        .flatten()
    {
        println!("cargo:rerun-if-changed={}", entry.path().display());
    }
    println!("cargo:rerun-if-env-changed=WEFT_CLANG");
}
