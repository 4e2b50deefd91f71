//! A tiny traffic tool for the tests, run inside namespaces with
//! `ip netns exec`:
//!
//! - `nettest serve tcp|udp ADDR:PORT NAME` answers every connection or
//!   datagram with `NAME <peer address>` and logs `got <peer>` lines on
//!   stdout (one per datagram), until killed.
//! - `nettest connect tcp|udp ADDR:PORT [TIMEOUT_MS]` prints the answer;
//!   exits 1 when there is none.
//! - `nettest send-udp ADDR:PORT SOURCE_PORT INTERVAL_MS` sends a datagram
//!   from a fixed source port every INTERVAL_MS, until killed (a client
//!   that keeps its conntrack entry alive).
//! - `nettest serve sink ADDR:PORT NAME` reads each TCP connection to its
//!   end and answers with the number of bytes read.
//! - `nettest blast ADDR:PORT BYTES` sends BYTES over TCP and prints the
//!   microseconds from connecting until the sink's answer (a throughput
//!   measurement through whatever shapes the path).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::exit;
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_else(|| usage());
    let address =
        |i: usize| arg(i).parse::<SocketAddr>().unwrap_or_else(|e| fail(&format!("bad address {}: {e}", arg(i))));
    match (arg(0), arg(1)) {
        ("serve", "tcp") => serve_tcp(address(2), arg(3)),
        ("serve", "udp") => serve_udp(address(2), arg(3)),
        ("serve", "sink") => serve_sink(address(2)),
        ("blast", _) => blast(address(1), arg(2).parse().unwrap_or_else(|_| usage())),
        ("connect", protocol) => {
            let timeout = Duration::from_millis(args.get(3).and_then(|t| t.parse().ok()).unwrap_or(2000));
            let answer = match protocol {
                "tcp" => connect_tcp(address(2), timeout),
                "udp" => connect_udp(address(2), timeout),
                _ => usage(),
            };
            match answer {
                Ok(text) => println!("{text}"),
                Err(e) => fail(&format!("no answer from {}: {e}", arg(2))),
            }
        }
        ("send-udp", _) => {
            send_udp(address(1), arg(2).parse().unwrap_or_else(|_| usage()), arg(3).parse().unwrap_or_else(|_| usage()))
        }
        _ => usage(),
    }
}

fn usage() -> ! {
    fail(
        "usage: nettest serve tcp|udp ADDR:PORT NAME | connect tcp|udp ADDR:PORT [TIMEOUT_MS] | send-udp ADDR:PORT SRCPORT INTERVAL_MS",
    )
}

fn fail(message: &str) -> ! {
    eprintln!("nettest: {message}");
    exit(1)
}

fn serve_tcp(address: SocketAddr, name: &str) {
    let listener = TcpListener::bind(address).unwrap_or_else(|e| fail(&format!("bind {address}: {e}")));
    println!("listening");
    for stream in listener.incoming().flatten() {
        let peer = stream.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
        let mut stream = stream;
        let _ = stream.write_all(format!("{name} {peer}\n").as_bytes());
    }
}

fn serve_sink(address: SocketAddr) {
    let listener = TcpListener::bind(address).unwrap_or_else(|e| fail(&format!("bind {address}: {e}")));
    println!("listening");
    for mut stream in listener.incoming().flatten() {
        let read = std::io::copy(&mut stream, &mut std::io::sink()).unwrap_or(0);
        let _ = stream.write_all(format!("{read}\n").as_bytes());
    }
}

fn blast(address: SocketAddr, bytes: usize) {
    let start = std::time::Instant::now();
    let mut stream = TcpStream::connect(address).unwrap_or_else(|e| fail(&format!("connect {address}: {e}")));
    let chunk = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).unwrap_or_else(|e| fail(&format!("send: {e}")));
        left -= n;
    }
    stream.shutdown(std::net::Shutdown::Write).unwrap_or_else(|e| fail(&format!("shutdown: {e}")));
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap_or_else(|e| fail(&format!("reading the answer: {e}")));
    if answer.trim() != bytes.to_string() {
        fail(&format!("the sink read {} of {bytes} bytes", answer.trim()));
    }
    println!("{}", start.elapsed().as_micros());
}

fn serve_udp(address: SocketAddr, name: &str) {
    let socket = UdpSocket::bind(address).unwrap_or_else(|e| fail(&format!("bind {address}: {e}")));
    println!("listening");
    let mut buffer = [0u8; 1500];
    loop {
        let Ok((_, peer)) = socket.recv_from(&mut buffer) else { continue };
        println!("got {peer}");
        let _ = socket.send_to(format!("{name} {}\n", peer.ip()).as_bytes(), peer);
    }
}

fn connect_tcp(address: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer.trim().to_string())
}

fn connect_udp(address: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let bind: SocketAddr = if address.is_ipv4() { "0.0.0.0:0".parse().unwrap() } else { "[::]:0".parse().unwrap() };
    let socket = UdpSocket::bind(bind)?;
    socket.set_read_timeout(Some(timeout))?;
    socket.send_to(b"hello", address)?;
    let mut buffer = [0u8; 1500];
    let (n, _) = socket.recv_from(&mut buffer)?;
    Ok(String::from_utf8_lossy(&buffer[..n]).trim().to_string())
}

fn send_udp(address: SocketAddr, source_port: u16, interval_ms: u64) {
    let bind: SocketAddr = if address.is_ipv4() {
        ([0, 0, 0, 0], source_port).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, source_port).into()
    };
    let socket = UdpSocket::bind(bind).unwrap_or_else(|e| fail(&format!("bind {bind}: {e}")));
    loop {
        // Unanswered or refused datagrams are the point of the test.
        let _ = socket.send_to(b"ping", address);
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
}
