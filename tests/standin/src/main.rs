//! `kube-standin`: serves an in-memory Kubernetes API on loopback until killed.
//!
//! ```text
//! kube-standin --listen 127.0.0.1:0 --kubeconfig-out /tmp/kubeconfig \
//!     --endpoint kube-system/sealed-secrets-controller=127.0.0.1:8080
//! ```
//! The kubeconfig is written (atomically) only once the server answers, so scripts can wait
//! for the file to appear.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use kube_standin as standin;
use kube_standin::{Config, Faults};

/// In-memory Kubernetes API server for tests, on loopback only.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the kubeconfig once the server is ready.
    #[arg(long)]
    kubeconfig_out: PathBuf,
    /// Service proxy target, `NAMESPACE/SERVICE=HOST:PORT` (repeatable).
    #[arg(long = "endpoint", value_parser = parse_endpoint)]
    endpoints: Vec<(String, String, String)>,
    /// Require this bearer token on every request.
    #[arg(long, env = "KUBE_STANDIN_TOKEN")]
    token: Option<String>,
    /// Fraction of resource requests answered 500.
    #[arg(long, env = "KUBE_STANDIN_FAULT_500", default_value_t = 0.0)]
    fault_500: f64,
    /// Fraction of resource requests answered 429.
    #[arg(long, env = "KUBE_STANDIN_FAULT_429", default_value_t = 0.0)]
    fault_429: f64,
    /// Fraction of updates and patches answered 409 Conflict.
    #[arg(long, env = "KUBE_STANDIN_FAULT_CONFLICT", default_value_t = 0.0)]
    fault_conflict: f64,
    /// Latency added to every request, in milliseconds.
    #[arg(long, env = "KUBE_STANDIN_FAULT_LATENCY_MS", default_value_t = 0)]
    fault_latency_ms: u64,
    /// Cut every watch stream after this many seconds (0: never).
    #[arg(
        long,
        env = "KUBE_STANDIN_FAULT_WATCH_CUT_SECONDS",
        default_value_t = 0
    )]
    fault_watch_cut_seconds: u64,
    /// Refuse watches asking for initial events (`sendInitialEvents`), as an API server
    /// without the WatchList feature.
    #[arg(long, env = "KUBE_STANDIN_FAULT_REFUSE_STREAMING_LISTS")]
    fault_refuse_streaming_lists: bool,
    /// Seed for the fault dice.
    #[arg(long, env = "KUBE_STANDIN_FAULT_SEED")]
    fault_seed: Option<u64>,
    /// Number of changes kept for watch resumption; older versions answer 410 Gone.
    #[arg(long, default_value_t = standin::DEFAULT_HISTORY_LIMIT)]
    history_limit: usize,
    /// Interval between watch bookmarks, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    bookmark_interval_ms: u64,
}

fn parse_endpoint(s: &str) -> Result<(String, String, String), String> {
    let (svc, addr) = s
        .split_once('=')
        .ok_or("expected NAMESPACE/SERVICE=HOST:PORT")?;
    let (ns, name) = svc
        .split_once('/')
        .ok_or("expected NAMESPACE/SERVICE=HOST:PORT")?;
    if ns.is_empty() || name.is_empty() || addr.is_empty() {
        return Err("expected NAMESPACE/SERVICE=HOST:PORT".into());
    }
    Ok((ns.to_owned(), name.to_owned(), addr.to_owned()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let config = Config {
        token: args.token,
        faults: Faults {
            error500_fraction: args.fault_500,
            error429_fraction: args.fault_429,
            conflict_fraction: args.fault_conflict,
            latency_ms: args.fault_latency_ms,
            watch_cut_seconds: args.fault_watch_cut_seconds,
            refuse_streaming_lists: args.fault_refuse_streaming_lists,
        },
        fault_seed: args.fault_seed,
        endpoints: args.endpoints,
        history_limit: args.history_limit,
        bookmark_interval: Duration::from_millis(args.bookmark_interval_ms.max(10)),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("failed to listen on {}", args.listen))?;
    let out = args.kubeconfig_out;
    let mut write_result = Ok(());
    let serve = standin::run(config, listener, |handle| {
        write_result = handle.write_kubeconfig(&out);
        if write_result.is_ok() {
            eprintln!(
                "kube-standin: serving {} (kubeconfig {})",
                handle.url(),
                out.display()
            );
        } else {
            handle.shutdown();
        }
    });
    tokio::select! {
        r = serve => r.context("the stand-in failed")?,
        _ = shutdown_signal() => {}
    }
    write_result.context("failed to write the kubeconfig")?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        if let Ok(mut term) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = ctrl_c.await;
}
