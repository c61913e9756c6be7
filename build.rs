//! Makes sure the official Socket.IO browser bundle and the Socket.IO Admin UI (with
//! the fonts it would ask CDNs for) are installed (`npm ci` in `js-client/`), tells the
//! crate where the bundle is, and writes the admin UI's list of embedded files
//! (`$OUT_DIR/admin_ui.rs`, with its page rewritten to load the fonts from chatterbox).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
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

    let modules = js_client.join("node_modules");
    let installed = dist.join("socket.io.js").is_file()
        && modules.join(ADMIN_UI).join("index.html").is_file()
        && modules.join(MDI_CSS).is_file()
        && modules.join(ROBOTO).is_dir();
    if !installed {
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
    if let Err(why) = admin_ui(&modules) {
        eprintln!("error: cannot embed the Socket.IO Admin UI: {why}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// The admin UI's built page, in `node_modules`.
const ADMIN_UI: &str = "@socket.io/admin-ui/ui/dist";
/// Material Design Icons' style sheet (its fonts are in `../fonts/`).
const MDI_CSS: &str = "@mdi/font/css/materialdesignicons.min.css";
/// Roboto's style sheets and fonts.
const ROBOTO: &str = "@fontsource/roboto";
/// The Roboto weights the admin UI's page asks Google Fonts for.
const ROBOTO_WEIGHTS: [u32; 6] = [100, 300, 400, 500, 700, 900];
/// The page's links to CDNs, and what replaces each.
const CDN_LINKS: [&str; 2] = [
    "https://fonts.googleapis.com/css?family=Roboto:100,300,400,500,700,900",
    "https://cdn.jsdelivr.net/npm/@mdi/font@latest/css/materialdesignicons.min.css",
];

/// Writes `$OUT_DIR/admin_ui.rs`: the `ADMIN_UI` assets (`crate::http::assets`), every
/// file of the UI but its source maps, under `/admin/`, and the fonts under
/// `/admin/fonts/`; the page's CDN links point at those.
fn admin_ui(modules: &Path) -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| e.to_string())?);
    let ui = modules.join(ADMIN_UI);
    let mut files: Vec<(String, PathBuf)> = Vec::new();
    for dir in ["", "css", "img", "js"] {
        let entries = std::fs::read_dir(ui.join(dir)).map_err(|e| format!("{dir}: {e}"))?;
        for entry in entries {
            let path = entry.map_err(|e| e.to_string())?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_owned();
            if path.is_file() && !name.ends_with(".map") && name != "index.html" {
                let url = if dir.is_empty() {
                    name
                } else {
                    format!("{dir}/{name}")
                };
                files.push((url, path));
            }
        }
    }
    let mut roboto_links = String::new();
    for weight in ROBOTO_WEIGHTS {
        let css = format!("latin-{weight}.css");
        files.push((
            format!("fonts/roboto/{css}"),
            modules.join(ROBOTO).join(&css),
        ));
        for ext in ["woff2", "woff"] {
            let font = format!("files/roboto-latin-{weight}-normal.{ext}");
            files.push((
                format!("fonts/roboto/{font}"),
                modules.join(ROBOTO).join(&font),
            ));
        }
        let _ = write!(
            roboto_links,
            r#"<link rel="stylesheet" href="fonts/roboto/{css}">"#
        );
    }
    files.push((
        "fonts/mdi/css/materialdesignicons.min.css".into(),
        modules.join(MDI_CSS),
    ));
    for ext in ["eot", "woff2", "woff", "ttf"] {
        let font = format!("fonts/materialdesignicons-webfont.{ext}");
        files.push((
            format!("fonts/mdi/{font}"),
            modules.join("@mdi/font").join(&font),
        ));
    }

    let page = std::fs::read_to_string(ui.join("index.html")).map_err(|e| e.to_string())?;
    let [roboto, mdi] = CDN_LINKS;
    let roboto_link = format!(r#"<link rel="stylesheet" href="{roboto}">"#);
    if !page.contains(&roboto_link) || !page.contains(mdi) {
        return Err("its index.html no longer links the fonts build.rs replaces".into());
    }
    let page = page
        .replace(&roboto_link, &roboto_links)
        .replace(mdi, "fonts/mdi/css/materialdesignicons.min.css");
    if page.contains("https://") {
        return Err("its index.html still loads something from the internet".into());
    }
    let page_path = out.join("admin-ui-index.html");
    std::fs::write(&page_path, page).map_err(|e| e.to_string())?;
    files.push((String::new(), page_path.clone()));
    files.push(("index.html".into(), page_path));

    let mut list =
        String::from("/// The Socket.IO Admin UI and its fonts (generated by build.rs).\n");
    list.push_str("pub(crate) static ADMIN_UI: &[Asset] = &[\n");
    for (url, path) in &files {
        if !path.is_file() {
            return Err(format!("{} is missing", path.display()));
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let content_type = match path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default()
        {
            "html" => "text/html; charset=utf-8",
            "js" => "application/javascript; charset=utf-8",
            "css" => "text/css; charset=utf-8",
            "svg" => "image/svg+xml",
            "png" => "image/png",
            "woff2" => "font/woff2",
            "woff" => "font/woff",
            "ttf" => "font/ttf",
            "eot" => "application/vnd.ms-fontobject",
            other => return Err(format!("no content type for .{other}")),
        };
        let _ = writeln!(
            list,
            "    Asset {{ path: {:?}, content_type: {content_type:?}, body: include_bytes!({:?}) }},",
            format!("/admin/{url}"),
            path.display().to_string(),
        );
    }
    list.push_str("];\n");
    std::fs::write(out.join("admin_ui.rs"), list).map_err(|e| e.to_string())
}
