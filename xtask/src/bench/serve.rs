//! The exporter's own cost (issue 11): `zc-trace serve -a` on this
//! machine, its CPU and memory over a window of scrapes, and how long each
//! /metrics answer took.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow};

use super::proc;
use zc_trace_tests::fleet::metric_sum;

/// Scrapes in the window, one every SCRAPE_EVERY.
const SCRAPES: usize = 30;
const SCRAPE_EVERY: Duration = Duration::from_millis(100);
const SERVING_LINE: &str = "zc-trace: serving";

#[derive(Debug, Default)]
pub struct ServeFigures {
    pub window_s: f64,
    /// CPU of the exporter's threads in the window, ns.
    pub cpu_ns: u64,
    pub rss_kib: u64,
    /// Each scrape, connect to the end of the answer, ms.
    pub scrape_ms: Vec<f64>,
    /// The exporter's own estimate of its probes' CPU, and the syscalls it
    /// counted, at the last scrape.
    pub probe_s: f64,
    pub syscalls: f64,
    /// Since the exporter's probes went live, s.
    pub live_s: f64,
}

/// Runs `zc-trace serve -a` for a window of scrapes and measures it.
pub fn measure(zc: &Path) -> Result<ServeFigures> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let argv: Vec<OsString> = vec![
        zc.into(),
        "serve".into(),
        "-a".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}").into(),
    ];
    let mut serve = proc::spawn(&argv, Duration::from_secs(120))?;
    serve.wait_for_line(SERVING_LINE, Duration::from_secs(30))?;
    let live = Instant::now();
    std::thread::sleep(Duration::from_millis(500));
    let pid = serve.pid();
    let cpu = || proc::threads_cpu_ns(pid).ok_or_else(|| anyhow!("the exporter exited"));
    let (t0, c0) = (Instant::now(), cpu()?);
    let mut figures = ServeFigures::default();
    let mut last = String::new();
    for _ in 0..SCRAPES {
        std::thread::sleep(SCRAPE_EVERY);
        let at = Instant::now();
        last = scrape(port)?;
        figures.scrape_ms.push(at.elapsed().as_secs_f64() * 1e3);
    }
    figures.cpu_ns = cpu()?.saturating_sub(c0);
    figures.window_s = t0.elapsed().as_secs_f64();
    figures.live_s = live.elapsed().as_secs_f64();
    figures.rss_kib = rss_kib(pid);
    figures.probe_s = metric_sum(&last, "zc_trace_probe_seconds_total");
    figures.syscalls = metric_sum(&last, "zc_trace_syscalls_total");
    // SAFETY: a signal to our own child, not yet reaped.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    serve.wait()?.check()?;
    Ok(figures)
}

/// GET /metrics over HTTP/1.0: the whole answer.
fn scrape(port: u16) -> Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text).context("read /metrics")?;
    if !text.starts_with("HTTP/1.") || !text.contains(" 200 ") {
        return Err(anyhow!(
            "/metrics answered: {}",
            text.lines().next().unwrap_or("")
        ));
    }
    Ok(text)
}

fn rss_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
