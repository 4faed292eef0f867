//! The fast path's unit tests: a loopback relay, and the answer parser on partial and malformed input.

use super::*;
use std::net::TcpListener;
use std::sync::mpsc;

use alloy::primitives::B256;

/// Generous bound on waits for the other side, so a broken build fails instead of hanging.
const GUARD: Duration = Duration::from_secs(20);

fn request(n: u8) -> SignedBundleRequest {
    SignedBundleRequest {
        body: format!(r#"{{"jsonrpc":"2.0","id":{n},"method":"eth_sendBundle","params":[]}}"#).into_bytes(),
        signature_header: format!("0x00000000000000000000000000000000000000{n:02x}:0xfeed"),
        bundle_hash: B256::repeat_byte(n),
        block_number: 7,
    }
}

fn ok_body(n: u8) -> String {
    format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"bundleHash":"{}"}}}}"#, B256::repeat_byte(n))
}

fn answer(status: u16, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads one whole request (head and Content-Length body); `None` at EOF.
fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut req = httparse::Request::new(&mut headers);
        if let Ok(httparse::Status::Complete(head)) = req.parse(buf) {
            let len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() >= head + len {
                return Some(buf.drain(..head + len).collect());
            }
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

type Replies = mpsc::Receiver<(u8, RelayReply)>;

fn poster(addr: std::net::SocketAddr, timeout_ms: u64) -> (FastPoster<u8>, Replies) {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let sink: ReplySink<u8> = Arc::new(move |tag, reply| {
        let _ = tx.lock().send((tag, reply));
    });
    let relays = vec![
        RelayConfig {
            name: "tls".into(),
            url: "https://relay.example/".into(),
            timeout_ms,
            fast_path: true,
            ca_cert: None,
            coinbase: None,
        },
        RelayConfig {
            name: "local".into(),
            url: format!("http://{addr}/bundle?v=1"),
            timeout_ms,
            fast_path: true,
            ca_cert: None,
            coinbase: None,
        },
        // switched off: the HTTP client sends to it
        RelayConfig {
            name: "off".into(),
            url: format!("http://{addr}/"),
            timeout_ms,
            fast_path: false,
            ca_cert: None,
            coinbase: None,
        },
    ];
    let p = FastPoster::new(&relays, sink).unwrap();
    (p, rx)
}

fn wait_connected(p: &FastPoster<u8>) {
    let t0 = Instant::now();
    while !p.is_connected(1) {
        assert!(t0.elapsed() < GUARD, "never connected");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn exact_bytes_on_the_wire_and_pipelined_answers_in_order() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        let first = read_request(&mut s, &mut buf).unwrap();
        let second = read_request(&mut s, &mut buf).unwrap();
        // Both answers in one write: one content-length, one chunked; then an RPC error and a 503.
        let body = ok_body(2);
        let (a, b) = body.split_at(10);
        let chunked = format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x};x=y\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        );
        let mut out = answer(200, &ok_body(1));
        out.extend_from_slice(chunked.as_bytes());
        s.write_all(&out).unwrap();
        let _third = read_request(&mut s, &mut buf).unwrap();
        let _fourth = read_request(&mut s, &mut buf).unwrap();
        let mut out =
            answer(400, r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"bad bundle"}}"#);
        out.extend_from_slice(&answer(503, "overloaded"));
        out.extend_from_slice(&answer(429, r#"{"error":{"code":-1,"message":"slow down"}}"#));
        s.write_all(&out).unwrap();
        let _fifth = read_request(&mut s, &mut buf).unwrap();
        (first, second)
    });
    let (mut p, rx) = poster(addr, 5_000);
    assert!(
        !p.handles(0) && p.handles(1) && !p.handles(2),
        "https and switched-off relays have no fast path"
    );
    assert!(matches!(p.send(0, &request(9), 9), Err((9, FastPostError::NoFastPath(0)))));
    wait_connected(&p);
    p.send(1, &request(1), 1).unwrap();
    p.send(1, &request(2), 2).unwrap();
    let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
    let (t2, r2) = rx.recv_timeout(GUARD).unwrap();
    assert_eq!((t1, r1.relay, r1.result), (1, 1, Ok(B256::repeat_byte(1))));
    assert_eq!((t2, r2.result), (2, Ok(B256::repeat_byte(2))));
    for n in 3..=5 {
        p.send(1, &request(n), n).unwrap();
    }
    let (t3, r3) = rx.recv_timeout(GUARD).unwrap();
    assert_eq!((t3, r3.result), (3, Err(RelayError::Rpc { code: -32602, message: "bad bundle".into() })));
    let (t4, r4) = rx.recv_timeout(GUARD).unwrap();
    let e4 = r4.result.unwrap_err();
    assert_eq!(t4, 4);
    assert!(matches!(e4, RelayError::Status { status: 503, .. }) && e4.is_recoverable(), "{e4:?}");
    let (t5, r5) = rx.recv_timeout(GUARD).unwrap();
    let e5 = r5.result.unwrap_err();
    assert_eq!(t5, 5);
    assert!(matches!(e5, RelayError::Status { status: 429, .. }) && e5.is_recoverable(), "{e5:?}");

    let (first, second) = server.join().unwrap();
    let req = request(1);
    let mut expected = format!(
        "POST /bundle?v=1 HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         X-Flashbots-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        req.signature_header,
        req.body.len()
    )
    .into_bytes();
    expected.extend_from_slice(&req.body);
    assert_eq!(String::from_utf8(first).unwrap(), String::from_utf8(expected).unwrap());
    assert!(String::from_utf8(second).unwrap().ends_with(std::str::from_utf8(&request(2).body).unwrap()));
}

#[test]
fn a_dropped_connection_fails_what_it_owed_and_reconnects() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // First connection: read a request and hang up without answering.
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).unwrap();
        drop(s);
        // Second connection: answer normally.
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).unwrap();
        s.write_all(&answer(200, &ok_body(2))).unwrap();
        read_request(&mut s, &mut buf)
    });
    let (mut p, rx) = poster(addr, 5_000);
    wait_connected(&p);
    p.send(1, &request(1), 1).unwrap();
    let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
    let e1 = r1.result.unwrap_err();
    assert_eq!(t1, 1);
    assert!(matches!(e1, RelayError::Transport(_)) && e1.is_recoverable(), "{e1:?}");
    // The reader reconnects by itself; a send while it is down is handed back, never lost.
    let t0 = Instant::now();
    loop {
        match p.send(1, &request(2), 2) {
            Ok(()) => break,
            Err((2, FastPostError::NotConnected(_) | FastPostError::Write { .. })) => {
                assert!(t0.elapsed() < GUARD, "never reconnected");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((t, e)) => panic!("unexpected {t} {e}"),
        }
    }
    let (t2, r2) = rx.recv_timeout(GUARD).unwrap();
    assert_eq!((t2, r2.result), (2, Ok(B256::repeat_byte(2))));
    drop(p);
    assert_eq!(server.join().unwrap(), None, "the poster closed its connection");
}

#[test]
fn a_hung_relay_times_out_and_the_connection_is_replaced() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).unwrap();
        // Never answers, never closes, until the test is done.
        let (_s2, _) = listener.accept().unwrap();
        let _ = hold_rx.recv();
    });
    let (mut p, rx) = poster(addr, 50);
    wait_connected(&p);
    p.send(1, &request(1), 1).unwrap();
    let (t1, r1) = rx.recv_timeout(GUARD).unwrap();
    assert_eq!(t1, 1);
    match r1.result {
        Err(RelayError::Transport(m)) => assert!(m.contains("timed out"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    hold_tx.send(()).unwrap();
    server.join().unwrap();
}

#[test]
fn only_plain_http_urls_get_a_fast_path() {
    assert_eq!(plain_http_target("https://relay.flashbots.net"), None);
    assert_eq!(plain_http_target("ws://127.0.0.1:1"), None);
    assert_eq!(
        plain_http_target("http://127.0.0.1:8080/relay?x=1"),
        Some(("127.0.0.1:8080".into(), "/relay?x=1".into()))
    );
    assert_eq!(plain_http_target("http://localhost"), Some(("localhost:80".into(), "/".into())));
    assert_eq!(plain_http_target("http://[::1]:9/"), Some(("[::1]:9".into(), "/".into())));
}

#[test]
fn partial_and_malformed_answers() {
    let full = answer(200, "{}");
    for cut in 0..full.len() {
        assert_eq!(parse_answer(&full[..cut]), Ok(None), "cut at {cut}");
    }
    let a = parse_answer(&full).unwrap().unwrap();
    assert_eq!((a.status, a.body.as_slice(), a.consumed, a.close), (200, &b"{}"[..], full.len(), false));
    let close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert!(parse_answer(close).unwrap().unwrap().close);
    assert!(parse_answer(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
    assert!(parse_answer(b"garbage\r\n\r\n").is_err());
    let interim = parse_answer(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap().unwrap();
    assert!(interim.interim);
}

#[test]
fn announced_sizes_past_the_cap_are_errors_not_panics() {
    for size in ["ffffffffffffffff", "fffffffffffffffe", "7fffffffffffffff", "100001"] {
        let raw = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{size}\r\nab\r\n0\r\n\r\n");
        let e = parse_answer(raw.as_bytes()).unwrap_err();
        assert!(e.contains("cap"), "{size}: {e}");
    }
    // Two chunks each under the cap whose sum is over it.
    let half = format!("{:x}", MAX_RESPONSE_BYTES / 2 + 1);
    let raw = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{half}\r\n{}\r\n{half}\r\n",
        "a".repeat(MAX_RESPONSE_BYTES / 2 + 1)
    );
    assert!(parse_answer(raw.as_bytes()).unwrap_err().contains("cap"));
    let raw = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n";
    assert!(parse_answer(raw.as_bytes()).unwrap_err().contains("cap"));
    // 20 hex digits do not fit in 64 bits: httparse refuses them.
    let raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n";
    assert!(parse_answer(raw.as_bytes()).is_err());
}

#[test]
fn a_chunk_size_of_u64_max_fails_one_request_and_the_reader_lives_on() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        // First connection: a chunk size that overflows any offset computed from it.
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab\r\n")
            .unwrap();
        // The reader drops that connection; the second one is answered normally.
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).unwrap();
        s.write_all(&answer(200, &ok_body(2))).unwrap();
        read_request(&mut s, &mut buf)
    });
    let (mut p, rx) = poster(addr, 5_000);
    wait_connected(&p);
    p.send(1, &request(1), 1).unwrap();
    let (t1, r1) = rx.recv_timeout(GUARD).expect("the reader thread answered (it did not die)");
    assert_eq!(t1, 1);
    match r1.result {
        Err(RelayError::Transport(m)) => assert!(m.contains("malformed") && m.contains("cap"), "{m}"),
        other => panic!("expected a transport error, got {other:?}"),
    }
    let t0 = Instant::now();
    loop {
        match p.send(1, &request(2), 2) {
            Ok(()) => break,
            Err((2, FastPostError::NotConnected(_) | FastPostError::Write { .. })) => {
                assert!(t0.elapsed() < GUARD, "never reconnected");
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((t, e)) => panic!("unexpected {t} {e}"),
        }
    }
    let (t2, r2) = rx.recv_timeout(GUARD).unwrap();
    assert_eq!((t2, r2.result), (2, Ok(B256::repeat_byte(2))));
    drop(p);
    assert_eq!(server.join().unwrap(), None);
}
