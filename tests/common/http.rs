//! A minimal HTTP/1.1 client (tests need no HTTP client crate), and TCP connections
//! from a chosen local address.

use std::net::SocketAddr;

use super::WAIT;

/// A minimal HTTP/1.1 GET returning the body of a 200 response (tests need no HTTP
/// client crate).
pub async fn http_get(addr: SocketAddr, path: &str) -> String {
    let (head, body) = http_request(addr, path, &[]).await;
    assert!(head.starts_with("http/1.1 200"), "{path}: {head}");
    body
}

/// A minimal HTTP/1.1 GET with extra `headers`; returns the response head (status line
/// and headers, lowercased names) and body.
pub async fn http_request(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    http_exchange(stream, addr, path, headers).await
}

/// [`http_request`] from the local address `from`.
pub async fn http_request_from(
    from: std::net::IpAddr,
    addr: SocketAddr,
    path: &str,
) -> (String, String) {
    http_exchange(connect_from(from, addr).await, addr, path, &[]).await
}

async fn http_exchange(
    mut stream: tokio::net::TcpStream,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("HTTP response");
    (head.to_ascii_lowercase(), body.to_owned())
}

/// A TCP connection to `addr` from the local address `from`.
pub async fn connect_from(from: std::net::IpAddr, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.bind(SocketAddr::new(from, 0)).expect("bind");
    socket.connect(addr).await.expect("connect")
}
