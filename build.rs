//! Compiles the os_log shim (src/output/os_log.c) for macOS builds; nothing elsewhere.

fn main() {
    println!("cargo:rerun-if-changed=src/output/os_log.c");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("macos") {
        cc::Build::new()
            .file("src/output/os_log.c")
            .warnings(true)
            .compile("devicetrust_os_log");
    }
}
