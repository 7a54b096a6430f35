//! A byte relay between a TCP listener and a Unix socket, or the reverse, for the real-cluster
//! backend of the e2e harness.
//!
//! A real API server refuses to proxy to loopback addresses, so a Service whose backend runs
//! on 127.0.0.1 cannot be reached through `.../services/<name>/proxy/...`. The harness gives
//! such a backend a real address inside a network namespace of its own (a veth pair): this
//! relay runs *inside* that namespace listening on TCP and forwards every connection to a Unix
//! socket (Unix sockets are file system objects, reachable across network namespaces), where a
//! second relay in the host namespace forwards to the backend's loopback address. No other
//! address is ever contacted.
//!
//! ```text
//! e2e-relay tcp-to-unix 10.250.3.6:8080 /tmp/x/relay.sock     # inside the namespace
//! e2e-relay unix-to-tcp /tmp/x/relay.sock 127.0.0.1:40123     # in the host namespace
//! ```
//!
//! It prints `listening` on stdout once it accepts connections.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::process::ExitCode;

/// Copies both directions of a connection until each side has closed its half.
fn splice<A, B>(a: A, b: B)
where
    A: std::io::Read + std::io::Write + Send + 'static + TryCloneStream,
    B: std::io::Read + std::io::Write + Send + 'static + TryCloneStream,
{
    let (Ok(mut a2), Ok(mut b2)) = (a.try_clone_stream(), b.try_clone_stream()) else {
        return;
    };
    let (mut a, mut b) = (a, b);
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a2, &mut b2);
        b2.shutdown_write();
    });
    let _ = std::io::copy(&mut b, &mut a);
    a.shutdown_write();
    let _ = forward.join();
}

/// The two stream types' `try_clone` and half-close, behind one trait.
trait TryCloneStream: Sized {
    fn try_clone_stream(&self) -> std::io::Result<Self>;
    fn shutdown_write(&self);
}

impl TryCloneStream for TcpStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

impl TryCloneStream for UnixStream {
    fn try_clone_stream(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn shutdown_write(&self) {
        let _ = self.shutdown(std::net::Shutdown::Write);
    }
}

fn ready() {
    let mut out = std::io::stdout();
    let _ = writeln!(out, "listening");
    let _ = out.flush();
}

fn run(mode: &str, from: &str, to: &str) -> Result<(), String> {
    match mode {
        "tcp-to-unix" => {
            let listener =
                TcpListener::bind(from).map_err(|e| format!("cannot listen on {from}: {e}"))?;
            ready();
            for conn in listener.incoming().flatten() {
                let to = to.to_owned();
                std::thread::spawn(move || match UnixStream::connect(&to) {
                    Ok(target) => splice(conn, target),
                    Err(e) => eprintln!("e2e-relay: cannot connect to {to}: {e}"),
                });
            }
            Ok(())
        }
        "unix-to-tcp" => {
            let _ = std::fs::remove_file(from);
            let listener =
                UnixListener::bind(from).map_err(|e| format!("cannot listen on {from}: {e}"))?;
            ready();
            for conn in listener.incoming().flatten() {
                let to = to.to_owned();
                std::thread::spawn(move || match TcpStream::connect(&to) {
                    Ok(target) => splice(conn, target),
                    Err(e) => eprintln!("e2e-relay: cannot connect to {to}: {e}"),
                });
            }
            Ok(())
        }
        other => Err(format!(
            "unknown mode `{other}` (expected tcp-to-unix or unix-to-tcp)"
        )),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, from, to] = args.as_slice() else {
        eprintln!("usage: e2e-relay tcp-to-unix HOST:PORT SOCKET | unix-to-tcp SOCKET HOST:PORT");
        return ExitCode::from(2);
    };
    match run(mode, from, to) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e-relay: {e}");
            ExitCode::FAILURE
        }
    }
}
