//! Generates the seed message's Rust module (`examples/Message.tsch`) with
//! tachyon-gen, as a user's crate would: `$TACHYON_GEN` when set (a built
//! tachyon-gen binary), else `go run ./cmd/tachyon-gen` in this checkout.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("../../..");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let schema = root.join("examples/Message.tsch");
    println!("cargo:rerun-if-env-changed=TACHYON_GEN");
    println!("cargo:rerun-if-changed={}", schema.display());
    for dir in ["gen/rust", "schema"] {
        println!("cargo:rerun-if-changed={}", root.join(dir).display());
    }
    let mut cmd = match env::var_os("TACHYON_GEN") {
        Some(bin) => Command::new(bin),
        None => {
            let mut c = Command::new("go");
            c.args(["run", "./cmd/tachyon-gen"]).current_dir(&root);
            c
        }
    };
    let status = cmd
        .arg("generate")
        .arg("--rust-out")
        .arg(&out)
        .arg(&schema)
        .status()
        .expect("run tachyon-gen (set TACHYON_GEN, or have Go installed)");
    assert!(
        status.success(),
        "tachyon-gen generate --rust-out failed: {status}"
    );
}
