//! Rebuild when bpf-linker changes: the link step depends on it but cargo
//! cannot see that.

fn main() {
    if let Ok(linker) = which::which("bpf-linker") {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
