//! Makes sure the official Socket.IO browser bundle is installed (`npm ci` in
//! `js-client/`) and tells the crate where it is, so the binary embeds it.

use std::path::Path;
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let root = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    let js_client = Path::new(&root).join("js-client");
    let dist = js_client.join("node_modules/socket.io-client/dist");
    println!("cargo:rerun-if-changed=js-client/package-lock.json");
    println!(
        "cargo:rerun-if-changed={}",
        dist.join("socket.io.js").display()
    );

    if !dist.join("socket.io.js").is_file() {
        println!("cargo:warning=installing the Socket.IO client bundle: npm ci in js-client/");
        let status = Command::new("npm")
            .args(["ci", "--omit=dev", "--no-audit", "--no-fund"])
            .current_dir(&js_client)
            .status();
        let why = match status {
            Ok(status) if status.success() => None,
            Ok(status) => Some(format!("`npm ci` in js-client/ failed ({status})")),
            Err(e) => Some(format!("cannot run npm ({e})")),
        };
        if let Some(why) = why {
            eprintln!(
                "error: chatterbox embeds the official Socket.IO client bundle from npm, and {why}.\n\
                 Install Node.js and npm (Debian: `apt-get install nodejs npm`), then run \
                 `npm ci` in js-client/ or build again."
            );
            return ExitCode::FAILURE;
        }
    }
    println!("cargo:rustc-env=CHATTERBOX_BUNDLE_DIR={}", dist.display());
    ExitCode::SUCCESS
}
