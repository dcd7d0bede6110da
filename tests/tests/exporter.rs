//! `zc-trace serve` scraped by a real Prometheus (issue 11, item 4): a
//! known workload in a cgroup of its own, 64 MiB copied with read+write
//! and 64 MiB sent with sendfile, checked through Prometheus's HTTP API.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use zc_trace_tests::fleet::{Cgroup, run_born_in};
use zc_trace_tests::harness::{Proc, TempDir, require_root, skip, tracer_bin, wait_until};

const MIB: f64 = 1048576.0;
/// Prometheus's scrape interval in this test.
const SCRAPE_S: f64 = 0.5;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

fn now_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

/// The value of an instant query at `time` (None when it has no result).
fn query(prom: u16, expr: &str, time: f64) -> Option<f64> {
    let out = Command::new("curl")
        .args(["-sfG", &format!("http://127.0.0.1:{prom}/api/v1/query")])
        .args(["--data-urlencode", &format!("query={expr}")])
        .args(["--data-urlencode", &format!("time={time:.3}")])
        .output()
        .expect("run curl");
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
fn issue11_prometheus_scrapes_serve_and_sees_the_workloads_bytes() {
    if !require_root("issue11_prometheus_scrapes_serve_and_sees_the_workloads_bytes") {
        return;
    }
    if Command::new("prometheus")
        .arg("--version")
        .output()
        .is_err()
    {
        skip(
            "issue11_prometheus_scrapes_serve_and_sees_the_workloads_bytes",
            "needs Debian's prometheus (cargo xtask setup installs it)",
        );
        return;
    }
    let dir = TempDir::new("exporter");
    let cg = Cgroup::new("exporter");
    let (port, prom) = (free_port(), free_port());
    let mut serve = Proc::spawn(Command::new(tracer_bin()).args([
        "serve",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--cgroup",
        &cg.path.to_string_lossy(),
        "--update",
        "100ms",
    ]));
    serve.wait_for_line("zc-trace: serving", Duration::from_secs(30));
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: {}ms\nscrape_configs:\n  - job_name: zc\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n",
            (SCRAPE_S * 1000.0) as u64
        ),
    )
    .expect("write the scrape config");
    let _prometheus = Proc::spawn(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom}")),
    );
    wait_until(
        "Prometheus to scrape zc-trace",
        Duration::from_secs(60),
        || query(prom, "up{job=\"zc\"}", now_s()) == Some(1.0),
    );
    // A few scrapes with nothing in the cgroup yet.
    std::thread::sleep(Duration::from_secs_f64(3.0 * SCRAPE_S));

    let input = dir.join("input");
    std::fs::write(&input, vec![7u8; 64 << 20]).expect("write the input file");
    let t0 = now_s();
    let env = ["PATH=/usr/bin:/bin", "LC_ALL=C"];
    // Each workload waits a few scrapes first, so its series exists
    // (with the few bytes of its start) before its 64 MiB go through.
    let read_write = format!(
        "sleep 2; exec dd if={} of={} bs=64k status=none",
        input.display(),
        dir.join("copy").display()
    );
    assert_eq!(
        run_born_in(&cg.path, &["/bin/sh", "-c", &read_write], &env),
        0
    );
    let sendfile = format!(
        "import os, time\ntime.sleep(2)\n\
         i = os.open({:?}, os.O_RDONLY); o = os.open({:?}, os.O_WRONLY | os.O_CREAT, 0o600)\n\
         left = 64 << 20\nwhile left:\n    left -= os.sendfile(o, i, None, left)\n",
        input.display().to_string(),
        dir.join("sent").display().to_string()
    );
    assert_eq!(
        run_born_in(
            &cg.path,
            &["/usr/bin/python3", "-S", "-I", "-c", &sendfile],
            &env
        ),
        0
    );
    let sum = |class: &str, t: f64| {
        query(
            prom,
            &format!("sum(zc_trace_bytes_total{{class=\"{class}\"}})"),
            t,
        )
        .unwrap_or(0.0)
    };
    wait_until(
        "Prometheus to see the sendfile",
        Duration::from_secs(60),
        || sum("zero_copy", now_s()) >= 64.0 * MIB,
    );
    std::thread::sleep(Duration::from_secs_f64(3.0 * SCRAPE_S));
    let t1 = now_s();
    let range = (t1 - t0).ceil() as u64;

    // Exact: the counters' difference between two instants.
    let delta = |class: &str| sum(class, t1) - sum(class, t0);
    assert_eq!(delta("zero_copy"), 64.0 * MIB, "sendfile's bytes");
    let copied = delta("copied_from_user");
    assert!(
        (64.0 * MIB..=65.0 * MIB).contains(&copied),
        "dd's writes: {copied}"
    );
    let read = delta("copied_to_user");
    // dd's 64 MiB and what the programs read as they start.
    assert!(
        (64.0 * MIB..=72.0 * MIB).contains(&read),
        "dd's reads: {read}"
    );

    // increase(), which Prometheus extrapolates to the range's ends: within
    // one scrape interval's worth of the average rate.
    let slack = 1.0 + 2.0 * SCRAPE_S / range as f64;
    let increase = |class: &str| {
        query(
            prom,
            &format!("sum(increase(zc_trace_bytes_total{{class=\"{class}\"}}[{range}s]))"),
            t1,
        )
        .unwrap_or(0.0)
    };
    for (class, exact) in [
        ("zero_copy", delta("zero_copy")),
        ("copied_from_user", copied),
        ("copied_to_user", read),
    ] {
        let inc = increase(class);
        assert!(
            inc >= exact * 0.999 && inc <= exact * slack,
            "increase of {class}: {inc} for {exact} moved (range {range}s)"
        );
    }
    // Labelled by cgroup and process.
    let name = format!("/{}", cg.path.file_name().unwrap().to_string_lossy());
    let python = query(
        prom,
        &format!(
            "sum(zc_trace_bytes_total{{class=\"zero_copy\",cgroup=\"{name}\",process=\"python3\"}})"
        ),
        t1,
    );
    assert_eq!(python, Some(64.0 * MIB), "python3's series in {name}");
    let own = query(prom, "zc_trace_collector_cpu_seconds_total", t1);
    assert!(
        own.is_some_and(|s| s > 0.0),
        "zc-trace's own cost is exported"
    );
    serve.child.kill().ok();
}
