//! The capped HTTP transport against a loopback server: a normal reply is read, a reply over the
//! cap is refused whether it announces its length or streams without one, and an error status is
//! reported with its body.

use std::time::Duration;

use alloy::providers::Provider;
use keel_feeds::http::{http_provider, http_provider_capped};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// How the server answers every request.
#[derive(Clone, Copy)]
enum Reply {
    /// `{"jsonrpc":"2.0","id":ID,"result":"0x2a"}`, with `pad` spaces before the closing brace,
    /// as one `Content-Length` body.
    Sized { pad: usize },
    /// The same, chunked (no length announced), in 64 KiB chunks.
    Chunked { pad: usize },
    /// HTTP 503 with a short body.
    Unavailable,
    /// Announces a body of `len` bytes, sends a few, and holds the connection open: a client
    /// that tried to read the announced body would wait forever.
    Announced { len: u64 },
}

/// Serves `reply` on 127.0.0.1 until the test's runtime ends; returns the URL.
async fn serve(reply: Reply) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                loop {
                    let Some(id) = read_request(&mut sock).await else { return };
                    let json = |pad: usize| {
                        format!(r#"{{"jsonrpc":"2.0","id":{id},"result":"0x2a"{}}}"#, " ".repeat(pad))
                    };
                    let ok = match reply {
                        Reply::Sized { pad } => {
                            let body = json(pad);
                            let head = format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            sock.write_all(head.as_bytes()).await.is_ok()
                                && sock.write_all(body.as_bytes()).await.is_ok()
                        }
                        Reply::Chunked { pad } => {
                            let body = json(pad);
                            let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                            let mut ok = sock.write_all(head.as_bytes()).await.is_ok();
                            for chunk in body.as_bytes().chunks(64 << 10) {
                                if !ok {
                                    break;
                                }
                                let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
                                frame.extend_from_slice(chunk);
                                frame.extend_from_slice(b"\r\n");
                                ok = sock.write_all(&frame).await.is_ok();
                            }
                            ok && sock.write_all(b"0\r\n\r\n").await.is_ok()
                        }
                        Reply::Announced { len } => {
                            let head =
                                format!("HTTP/1.1 200 OK\r\ncontent-length: {len}\r\n\r\n{{\"jsonrpc\"");
                            sock.write_all(head.as_bytes()).await.is_ok()
                        }
                        Reply::Unavailable => {
                            let body = "node is syncing";
                            let head = format!(
                                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n",
                                body.len()
                            );
                            sock.write_all(head.as_bytes()).await.is_ok()
                                && sock.write_all(body.as_bytes()).await.is_ok()
                        }
                    };
                    if !ok {
                        return;
                    }
                }
            });
        }
    });
    url
}

/// Reads one request (headers, then a `Content-Length` body); its JSON-RPC id.
async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<u64> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let len: usize = head.lines().find_map(|l| l.strip_prefix("content-length:"))?.trim().parse().ok()?;
    let mut body = vec![0u8; len];
    sock.read_exact(&mut body).await.ok()?;
    let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
    v["id"].as_u64()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn a_reply_under_the_cap_is_read_and_one_over_it_is_refused_naming_the_cap() {
    runtime().block_on(async {
        let timeout = |f| tokio::time::timeout(Duration::from_secs(10), f);
        // Well under the cap, sized and chunked: read.
        for reply in [Reply::Sized { pad: 1_000 }, Reply::Chunked { pad: 200_000 }] {
            let p = http_provider_capped(&serve(reply).await, 1 << 20).unwrap();
            assert_eq!(timeout(p.get_block_number()).await.unwrap().unwrap(), 42);
        }
        // Announced over the cap: refused before the body is read.
        let p = http_provider_capped(&serve(Reply::Sized { pad: 2 << 20 }).await, 1 << 20).unwrap();
        let err = timeout(p.get_block_number()).await.unwrap().unwrap_err().to_string();
        assert!(err.contains("over the 1048576-byte cap"), "{err}");
        // It names the announced length: the padding plus the JSON around it.
        let announced: usize =
            err.split("node reply of ").nth(1).and_then(|r| r.split(' ').next()).unwrap().parse().unwrap();
        assert!((2 << 20..(2 << 20) + 64).contains(&announced), "{err}");
        // Announced over the cap and never sent: refused from the header, without waiting for
        // the body (a read of it would hang past the timeout).
        let p = http_provider_capped(&serve(Reply::Announced { len: 1 << 30 }).await, 1 << 20).unwrap();
        let err =
            timeout(p.get_block_number()).await.expect("refused without reading").unwrap_err().to_string();
        assert!(err.contains("node reply of 1073741824 bytes refused: over the 1048576-byte cap"), "{err}");
        // Streamed without a length: reading stops once past the cap.
        let p = http_provider_capped(&serve(Reply::Chunked { pad: 8 << 20 }).await, 1 << 20).unwrap();
        let err = timeout(p.get_block_number()).await.unwrap().unwrap_err().to_string();
        assert!(err.contains("more than") && err.contains("over the 1048576-byte cap"), "{err}");
        // The default cap reads a 4 MiB reply.
        let p = http_provider(&serve(Reply::Chunked { pad: 4 << 20 }).await).unwrap();
        assert_eq!(timeout(p.get_block_number()).await.unwrap().unwrap(), 42);
    });
}

#[test]
fn an_error_status_is_reported_with_its_body_and_a_bad_url_is_refused() {
    runtime().block_on(async {
        let p = http_provider(&serve(Reply::Unavailable).await).unwrap();
        let err = tokio::time::timeout(Duration::from_secs(10), p.get_block_number())
            .await
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(err.contains("503") && err.contains("node is syncing"), "{err}");
    });
    let err = http_provider("not a url").unwrap_err().to_string();
    assert!(err.contains("bad node RPC URL `not a url`"), "{err}");
}
