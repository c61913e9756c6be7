//! Files embedded in the binary at build time: the official Socket.IO browser bundle
//! (from `js-client/node_modules/socket.io-client/dist`, installed by `build.rs`), our
//! chat page (`static/`), the original WebSocket chat page (`static/ws/`) and the
//! Socket.IO Admin UI (`ADMIN_UI`). Each is served with its content type, a strong ETag (answering
//! `If-None-Match` with 304) and `Cache-Control: no-cache`; gzip/br negotiation is done
//! by the compression layer in front of them.

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;

const JAVASCRIPT: &str = "application/javascript; charset=utf-8";
const SOURCE_MAP: &str = "application/json; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file and the path it is served at.
pub(crate) struct Asset {
    /// URL path.
    pub path: &'static str,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// The file's bytes.
    pub body: &'static [u8],
}

macro_rules! bundle_file {
    ($file:literal, $content_type:expr) => {
        Asset {
            path: concat!("/socket.io/", $file),
            content_type: $content_type,
            body: include_bytes!(concat!(env!("CHATTERBOX_BUNDLE_DIR"), "/", $file)),
        }
    };
}

/// The Socket.IO client bundle, at the paths the Node server serves it.
pub(crate) static BUNDLE: &[Asset] = &[
    bundle_file!("socket.io.js", JAVASCRIPT),
    bundle_file!("socket.io.js.map", SOURCE_MAP),
    bundle_file!("socket.io.min.js", JAVASCRIPT),
    bundle_file!("socket.io.min.js.map", SOURCE_MAP),
    bundle_file!("socket.io.esm.min.js", JAVASCRIPT),
    bundle_file!("socket.io.esm.min.js.map", SOURCE_MAP),
    bundle_file!("socket.io.msgpack.min.js", JAVASCRIPT),
    bundle_file!("socket.io.msgpack.min.js.map", SOURCE_MAP),
];

const INDEX_HTML: &[u8] = include_bytes!("../../static/index.html");

/// Our chat page.
pub(crate) static PAGES: &[Asset] = &[
    Asset {
        path: "/",
        content_type: HTML,
        body: INDEX_HTML,
    },
    Asset {
        path: "/index.html",
        content_type: HTML,
        body: INDEX_HTML,
    },
    Asset {
        path: "/css/index.css",
        content_type: CSS,
        body: include_bytes!("../../static/css/index.css"),
    },
    Asset {
        path: "/js/index.js",
        content_type: JAVASCRIPT,
        body: include_bytes!("../../static/js/index.js"),
    },
];

const WS_CHAT_HTML: &[u8] = include_bytes!("../../static/ws/index.html");

/// The original plain WebSocket chat page, unchanged (it connects to port 8001).
pub(crate) static WS_CHAT_PAGE: &[Asset] = &[
    Asset {
        path: "/ws/",
        content_type: HTML,
        body: WS_CHAT_HTML,
    },
    Asset {
        path: "/ws/index.html",
        content_type: HTML,
        body: WS_CHAT_HTML,
    },
];

/// A router serving `assets`, each at its path.
///
/// A file's ETag is computed when it is first asked for, not at start: hashing every
/// file (source maps included, about 2 MB) would bring all of them into the memory of a
/// server that may never serve them.
pub(crate) fn router<S: Clone + Send + Sync + 'static>(assets: &'static [Asset]) -> Router<S> {
    assets.iter().fold(Router::new(), |router, asset| {
        let etag = Arc::new(OnceLock::new());
        router.route(
            asset.path,
            get(move |headers: HeaderMap| async move {
                respond(asset, etag.get_or_init(|| etag_of(asset.body)), &headers)
            }),
        )
    })
}

fn respond(asset: &'static Asset, etag: &HeaderValue, headers: &HeaderMap) -> Response {
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == "*" || tag.as_bytes() == etag.as_bytes())
        });
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Body::empty())
    } else {
        (StatusCode::OK, Body::from(asset.body))
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(ETAG, etag.clone());
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// A strong ETag from the content (64-bit FNV-1a): stable across restarts and builds of
/// the same bytes.
fn etag_of(body: &[u8]) -> HeaderValue {
    let hash = body.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    HeaderValue::try_from(format!("\"{hash:016x}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

// The Socket.IO Admin UI (`ADMIN_UI`), served at `/admin/` when it is on: every file of
// `@socket.io/admin-ui`'s `ui/dist` but the source maps, and the Roboto and Material
// Design Icons fonts its page would load from CDNs, from their npm packages.
include!(concat!(env!("OUT_DIR"), "/admin_ui.rs"));
