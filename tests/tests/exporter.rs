//! `zc-trace serve` scraped by a real Prometheus (issue 11, item 4): a
//! known workload in a cgroup of its own, 64 MiB copied with read+write
//! and 64 MiB sent with sendfile, checked through Prometheus's HTTP API.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use zc_trace_tests::fleet::{Cgroup, metric_sum, run_born_in};
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

fn scrape(port: u16) -> String {
    let out = Command::new("curl")
        .args(["-sf", &format!("http://127.0.0.1:{port}/metrics")])
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The kernel's own run count of `pid`'s program on tracepoint `tp`, from
/// the fdinfo of its link and program fds.
fn raw_run_count(pid: u32, tp: &str) -> u64 {
    let infos: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fdinfo"))
        .expect("read fdinfo")
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
        .collect();
    let field = |info: &str, name: &str| -> Option<String> {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    let prog = infos
        .iter()
        .find(|i| field(i, "tp_name").as_deref() == Some(tp))
        .and_then(|i| field(i, "prog_id"))
        .unwrap_or_else(|| panic!("no link to {tp} among zc-trace's fds"));
    infos
        .iter()
        .find(|i| field(i, "link_type").is_none() && field(i, "prog_id") == Some(prog.clone()))
        .and_then(|i| field(i, "run_cnt")?.parse().ok())
        .unwrap_or_else(|| panic!("no run_cnt for program {prog}"))
}

/// The share of 200 looks over ~2 s in which `pid` held a BPF statistics
/// fd (BPF_ENABLE_STATS returns an anonymous "bpf-stats" inode).
fn stats_fd_share(pid: u32) -> f64 {
    let holds = || {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| {
                d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                    .any(|l| l.to_string_lossy() == "anon_inode:bpf-stats")
            })
            .unwrap_or(false)
    };
    let looks = 200;
    let held = (0..looks)
        .filter(|_| {
            std::thread::sleep(Duration::from_millis(10));
            holds()
        })
        .count();
    held as f64 / looks as f64
}

/// Issue 12 for the exporter: by default the BPF statistics are sampled
/// (the kernel counted far fewer sys_exit runs than calls), yet the
/// exported probe runs cover every traced call; `--exact-cost` keeps
/// them on all along.
#[test]
fn issue11_serve_samples_the_bpf_statistics_and_still_exports_every_run() {
    if !require_root("issue11_serve_samples_the_bpf_statistics_and_still_exports_every_run") {
        return;
    }
    for exact in [false, true] {
        let cg = Cgroup::new("exporter-cost");
        let port = free_port();
        let mut cmd = Command::new(tracer_bin());
        cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--cgroup", &cg.path.to_string_lossy(), "--update", "100ms"]);
        if exact {
            cmd.arg("--exact-cost");
        }
        let mut serve = Proc::spawn(&mut cmd);
        serve.wait_for_line("zc-trace: serving", Duration::from_secs(30));
        let dd = [
            "/bin/dd",
            "if=/dev/zero",
            "of=/dev/null",
            "bs=1",
            "count=300000",
            "status=none",
        ];
        assert_eq!(run_born_in(&cg.path, &dd, &["LC_ALL=C"]), 0);
        let mut text = String::new();
        wait_until(
            "the exporter to count dd's calls",
            Duration::from_secs(30),
            || {
                text = scrape(port);
                metric_sum(&text, "zc_trace_syscalls_total") as u64 >= 600_000
            },
        );
        let syscalls = metric_sum(&text, "zc_trace_syscalls_total") as u64;
        let exported = metric_sum(&text, "zc_trace_probe_runs_total") as u64;
        let raw = raw_run_count(serve.child.id(), "sys_exit");
        assert!(
            exported >= syscalls,
            "exact={exact}: {exported} probe runs exported for {syscalls} calls counted"
        );
        // The statistics are global: another tool may have them on, so
        // what tells is whether zc-trace holds them on (its stats fd).
        let on = stats_fd_share(serve.child.id());
        if exact {
            assert!(
                raw >= syscalls,
                "--exact-cost: the kernel counted {raw} runs for {syscalls} calls"
            );
            assert_eq!(on, 1.0, "--exact-cost: statistics held on all along");
        } else {
            assert!(
                on < 0.25,
                "sampled: zc-trace held the statistics on {:.0}% of the time",
                on * 100.0
            );
        }
        serve.child.kill().ok();
    }
}

/// Each thread of `pid`, by thread id: its name and how many times it
/// went to sleep and was woken (voluntary context switches: counted, not
/// timed, so a busy machine does not change them).
fn wakeups(pid: u32) -> std::collections::BTreeMap<u32, (String, u64)> {
    let mut threads = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).expect("read the tasks") {
        let task = task.expect("a task");
        let Ok(status) = std::fs::read_to_string(task.path().join("status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .unwrap_or_default()
        };
        let tid = task.file_name().to_string_lossy().parse().expect("a tid");
        let woken = field("voluntary_ctxt_switches:").parse().expect("a count");
        threads.insert(tid, (field("Name:"), woken));
    }
    threads
}

/// The wakeups of each thread between two readings, by thread name.
fn woken_between(
    before: &std::collections::BTreeMap<u32, (String, u64)>,
    after: &std::collections::BTreeMap<u32, (String, u64)>,
) -> std::collections::BTreeMap<String, u64> {
    let mut by_name = std::collections::BTreeMap::new();
    for (tid, (name, n)) in after {
        let was = before.get(tid).map_or(0, |(_, n)| *n);
        *by_name.entry(name.clone()).or_default() += n - was;
    }
    by_name
}

/// `zc-trace serve` on an empty cgroup (nothing to count, little to read).
fn serve_quietly(cg: &Cgroup, port: u16, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(tracer_bin());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .args(["--cgroup", &cg.path.to_string_lossy()])
        .args(extra);
    let mut serve = Proc::spawn(&mut cmd);
    serve.wait_for_line("zc-trace: serving", Duration::from_secs(30));
    serve
}

/// On a busy machine every thread a request wakes waits for a CPU: a
/// scrape wakes one thread of the exporter, once or twice (accept, then
/// the request if it was not there yet), which finds the answer rendered;
/// the update loop sleeps through it. tiny_http woke three threads per
/// scrape and rendered in the handler.
#[test]
fn issue11_a_scrape_wakes_one_thread_of_the_exporter() {
    if !require_root("issue11_a_scrape_wakes_one_thread_of_the_exporter") {
        return;
    }
    let cg = Cgroup::new("exporter-wakeups");
    let port = free_port();
    // No update and no statistics window (--exact-cost) during the scrapes.
    let serve = serve_quietly(&cg, port, &["--update", "1h", "--exact-cost"]);
    let pid = serve.child.id();
    let first = scrape(port);
    assert!(
        first.contains("# EOF"),
        "a whole OpenMetrics answer: {first}"
    );
    let scrapes = 40;
    let before = wakeups(pid);
    for _ in 0..scrapes {
        assert_eq!(scrape(port), first, "no update: the same answer");
    }
    let woken = woken_between(&before, &wakeups(pid));
    let http = woken.get("zc-trace-http").copied().unwrap_or(0);
    let others: u64 = woken
        .iter()
        .filter(|(name, _)| *name != "zc-trace-http")
        .map(|(_, n)| n)
        .sum();
    assert!(
        (scrapes..=2 * scrapes).contains(&http),
        "the HTTP thread woke {http} times for {scrapes} scrapes: {woken:?}"
    );
    assert!(
        others < scrapes / 4,
        "other threads woke {others} times for {scrapes} scrapes: {woken:?}"
    );
}

/// The update loop wakes once per update (a timerfd), and the BPF
/// statistics' windows open at an update's wakeup: tokio's timers woke it
/// twice per update (an interval 64 ms or more away is moved down tokio's
/// timing wheel first), and the windows on wakeups of their own.
#[test]
fn issue11_serve_wakes_once_per_update() {
    if !require_root("issue11_serve_wakes_once_per_update") {
        return;
    }
    let cg = Cgroup::new("exporter-updates");
    let port = free_port();
    let update = Duration::from_millis(250);
    // Sampled statistics (the default): windows open and close meanwhile.
    let serve = serve_quietly(&cg, port, &["--update", "250ms"]);
    let pid = serve.child.id();
    let before = wakeups(pid);
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(4));
    let woken = woken_between(&before, &wakeups(pid));
    let updates = (t0.elapsed().as_secs_f64() / update.as_secs_f64()).ceil() as u64;
    let main = woken.get("zc-trace").copied().unwrap_or(0);
    // Each update, plus the closing of each statistics window (at most
    // one per update: a window lasts at most 1 s, a gap 49 times that).
    assert!(
        main <= updates + updates / 2,
        "the update loop woke {main} times for {updates} updates: {woken:?}"
    );
    assert!(
        main >= updates / 2,
        "the update loop woke {main} times for {updates} updates (does it update?): {woken:?}"
    );
}
