//! Hostile HTTP clients for the server-hardening tests (the controller's e2e suite and the
//! chaos suite's hostile cases): connections that pipeline requests and never read the
//! answers, slow-loris headers, slow bodies, and a probe that measures how long `/healthz`
//! takes. Every client connects from a loopback address of its own (`127.0.0.2` and up), so
//! that a per-client connection cap does not hide the global one, and the probe comes from
//! `127.0.0.1` as the kubelet comes from the node's address.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

/// The loopback address of hostile client number `i` (`127.0.0.2` and up, `127.0.1.x` past
/// 253): never `127.0.0.1`, the probe's address.
pub fn source(i: usize) -> Ipv4Addr {
    let i = i % (253 * 250);
    let (third, fourth) = (i / 253, 2 + i % 253);
    Ipv4Addr::new(
        127,
        0,
        u8::try_from(third).unwrap_or(0),
        u8::try_from(fourth).unwrap_or(2),
    )
}

/// Connects to `addr` from `from` with a small receive buffer (so that the server's answers
/// fill it quickly when not read), within five seconds.
pub async fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.set_recv_buffer_size(4096).ok()?;
    socket.bind(SocketAddr::from((from, 0))).ok()?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(addr))
        .await
        .ok()?
        .ok()
}

/// Opens `n` connections, `per_source` from each hostile address, each sending `requests`
/// pipelined `GET path` at once and never reading. Returns the connections the server
/// accepted and had not closed by the time the requests were written; keep them to keep the
/// attack going.
pub async fn pipelining_non_readers(
    addr: SocketAddr,
    n: usize,
    per_source: usize,
    path: &str,
    requests: usize,
) -> Vec<TcpStream> {
    let one = format!("GET {path} HTTP/1.1\r\nHost: hostile\r\n\r\n");
    let batch: std::sync::Arc<[u8]> = one.repeat(requests).into_bytes().into();
    let mut held = Vec::new();
    // Connect in groups, so that the listen backlog does not overflow into SYN retries on a
    // busy machine; the writes go on meanwhile.
    for group in (0..n).collect::<Vec<_>>().chunks(64) {
        let mut tasks = tokio::task::JoinSet::new();
        for &i in group {
            let from = source(i / per_source.max(1));
            let batch = batch.clone();
            tasks.spawn(async move {
                let mut s = connect_from(from, addr).await?;
                // The server stops reading once its answers back up: the write may never
                // finish.
                let _ = tokio::time::timeout(Duration::from_secs(3), s.write_all(&batch)).await;
                Some(s)
            });
        }
        while let Some(r) = tasks.join_next().await {
            held.extend(r.ok().flatten());
        }
    }
    held
}

/// Connections that send a request's headers one byte every `every`, from hostile addresses
/// starting at `first_source`, until `stop` is dropped or the server closes them. Returns the
/// tasks; each ends with how long its connection stayed open.
pub fn slow_headers(
    addr: SocketAddr,
    n: usize,
    first_source: usize,
    every: Duration,
) -> tokio::task::JoinSet<Duration> {
    let header = b"POST /v1/verify HTTP/1.1\r\nHost: hostile\r\nX-Slow: ".to_vec();
    trickle(addr, n, first_source, every, header, b'a')
}

/// Connections that send complete headers of a `POST /v1/verify` announcing a 100 kB body,
/// then the body one byte every `every` (see [`slow_headers`]).
pub fn slow_bodies(
    addr: SocketAddr,
    n: usize,
    first_source: usize,
    every: Duration,
) -> tokio::task::JoinSet<Duration> {
    let header =
        b"POST /v1/verify HTTP/1.1\r\nHost: hostile\r\nContent-Length: 100000\r\n\r\n{".to_vec();
    trickle(addr, n, first_source, every, header, b' ')
}

fn trickle(
    addr: SocketAddr,
    n: usize,
    first_source: usize,
    every: Duration,
    start: Vec<u8>,
    filler: u8,
) -> tokio::task::JoinSet<Duration> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let start = start.clone();
        tasks.spawn(async move {
            let t0 = Instant::now();
            let Some(mut s) = connect_from(source(first_source + i), addr).await else {
                return t0.elapsed();
            };
            if s.write_all(&start).await.is_err() {
                return t0.elapsed();
            }
            let mut buf = [0u8; 1024];
            loop {
                // A closed connection shows as EOF or an error on read (after any answer,
                // such as a 408); the wait between bytes is the read's timeout.
                if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(every, s.read(&mut buf)).await {
                    return t0.elapsed();
                }
                if s.write_all(&[filler]).await.is_err() {
                    return t0.elapsed();
                }
            }
        });
    }
    tasks
}

/// One `GET /healthz` from `127.0.0.1` with `Connection: close`: the time to a complete `200`
/// answer, or `None` if there was none within `limit`.
pub async fn probe(addr: SocketAddr, limit: Duration) -> Option<Duration> {
    let t0 = Instant::now();
    let fetch = async {
        let socket = TcpSocket::new_v4().ok()?;
        socket
            .bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .ok()?;
        let mut s = socket.connect(addr).await.ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let text = String::from_utf8_lossy(&raw);
        (text.starts_with("HTTP/1.1 200") && text.ends_with("ok\n")).then_some(())
    };
    tokio::time::timeout(limit, fetch).await.ok().flatten()?;
    Some(t0.elapsed())
}

/// Raises this process's soft limit of open files to at least `want` (up to the hard limit)
/// with util-linux's `prlimit`, so that hundreds of hostile connections fit; processes
/// spawned afterwards (the controller) inherit it. Returns the soft limit in force.
pub fn raise_open_files(want: u64) -> u64 {
    let soft = || -> Option<(u64, u64)> {
        let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        let mut f = line.split_whitespace().skip(3);
        let parse = |v: Option<&str>| match v? {
            "unlimited" => Some(u64::MAX),
            v => v.parse().ok(),
        };
        Some((parse(f.next())?, parse(f.next())?))
    };
    let Some((current, hard)) = soft() else {
        return 0;
    };
    if current >= want {
        return current;
    }
    let target = want.min(hard);
    let _ = std::process::Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={target}:"))
        .status();
    soft().map_or(current, |(s, _)| s)
}

/// Connections to local `port` that process `pid` holds open: its socket descriptors whose
/// TCP entry has that local port and is established. Counting exactly these, not every
/// descriptor, keeps the figure free of the controller's own API connections, timers and
/// files, which come and go on their own schedule; and of connections the peer has already
/// closed (`CLOSE_WAIT`: a readiness check's, say), which the process is about to close and
/// which no client holds.
pub fn held_connections(pid: u32, port: u16) -> usize {
    let inodes: std::collections::HashSet<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    tcp_entries(pid)
        .filter(|e| e.local_port == port && e.established && inodes.contains(&e.inode))
        .count()
}

/// Connections waiting in the accept queue of the listener on local `port` (as seen from
/// process `pid`'s network namespace); `None` when no such listener exists. Zero means the
/// server has accepted (and kept or closed) every connection that reached it.
pub fn accept_backlog(pid: u32, port: u16) -> Option<u64> {
    tcp_entries(pid)
        .find(|e| e.local_port == port && e.listening)
        .map(|e| e.rx_queue)
}

struct TcpEntry {
    local_port: u16,
    listening: bool,
    /// `ESTABLISHED`: neither side has closed (a peer's close turns it into `CLOSE_WAIT`
    /// until the process notices and closes its end).
    established: bool,
    /// For a listener, the length of its accept queue.
    rx_queue: u64,
    inode: u64,
}

/// The entries of `/proc/PID/net/tcp` and `tcp6`: `sl local rem st tx:rx tr:when retr uid
/// timeout inode ...`, addresses and numbers in hexadecimal.
fn tcp_entries(pid: u32) -> impl Iterator<Item = TcpEntry> {
    ["tcp", "tcp6"]
        .into_iter()
        .filter_map(move |f| std::fs::read_to_string(format!("/proc/{pid}/net/{f}")).ok())
        .flat_map(|text| {
            text.lines()
                .skip(1)
                .filter_map(|line| {
                    let f: Vec<&str> = line.split_whitespace().collect();
                    let local_port = u16::from_str_radix(f.get(1)?.rsplit(':').next()?, 16).ok()?;
                    let rx_queue = u64::from_str_radix(f.get(4)?.split(':').nth(1)?, 16).ok()?;
                    Some(TcpEntry {
                        local_port,
                        listening: *f.get(3)? == "0A",
                        established: *f.get(3)? == "01",
                        rx_queue,
                        inode: f.get(9)?.parse().ok()?,
                    })
                })
                .collect::<Vec<_>>()
        })
}
