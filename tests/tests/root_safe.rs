//! Issue 15, security: root's zc-trace must never be turned against the
//! machine. Other users plant links and connect to ports as user 65534
//! (nobody), through `setpriv`, exactly as a hostile local user would.

use std::{
    io::Write as _,
    net::TcpStream,
    os::unix::fs::{MetadataExt as _, PermissionsExt as _, symlink},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use zc_trace_tests::harness::{TempDir, require_root, tracer_bin};

const NOBODY: &str = "65534";

fn run(args: &[&str]) -> Output {
    Command::new(tracer_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs `sh -c script` as nobody, with no groups.
fn as_nobody(script: &str) {
    let out = Command::new("setpriv")
        .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .args(["sh", "-c", script])
        .output()
        .expect("setpriv (util-linux) runs");
    assert!(
        out.status.success(),
        "as nobody: {script}: {}",
        text(&out.stderr)
    );
}

/// The single `zc-trace: error:` line of a failed run.
fn error_line(out: &Output) -> String {
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("zc-trace: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line expected: {stderr}");
    errors[0].to_owned()
}

/// A root-owned file that a planted link points at.
fn victim(dir: &TempDir) -> PathBuf {
    let v = dir.join("victim");
    std::fs::write(&v, "precious\n").unwrap();
    v
}

fn assert_intact(victim: &Path) {
    assert_eq!(
        std::fs::read_to_string(victim).unwrap(),
        "precious\n",
        "the file a planted link points at was written"
    );
}

/// A directory anyone may write into: sticky like /tmp, or not.
fn shared_dir(parent: &TempDir, name: &str, sticky: bool) -> PathBuf {
    let d = parent.join(name);
    std::fs::create_dir(&d).unwrap();
    let mode = if sticky { 0o1777 } else { 0o777 };
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode)).unwrap();
    d
}

/// Issue 15 item 1: a link at the output path is replaced by the report,
/// never written through (it used to truncate what it pointed at).
#[test]
fn a_link_at_the_json_path_is_replaced_not_followed() {
    if !require_root("a_link_at_the_json_path_is_replaced_not_followed") {
        return;
    }
    let dir = TempDir::new("link-json");
    let victim = victim(&dir);
    let json = dir.join("report.json");
    symlink(&victim, &json).unwrap();
    let out = run(&["--quiet", "--json", json.to_str().unwrap(), "--", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_intact(&victim);
    let meta = std::fs::symlink_metadata(&json).unwrap();
    assert!(meta.is_file(), "the link is now the report");
    assert_eq!(meta.mode() & 0o777, 0o600, "reports hold argv: 0600");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(report["schema_version"].is_u64());
}

/// Issue 15 item 1: in a sticky shared directory (/tmp) another user's
/// link at the output path is refused before the command runs.
#[test]
fn another_users_link_in_a_sticky_dir_is_refused() {
    if !require_root("another_users_link_in_a_sticky_dir_is_refused") {
        return;
    }
    let dir = TempDir::new("link-sticky");
    let victim = victim(&dir);
    let shared = shared_dir(&dir, "tmp", true);
    let json = shared.join("report.json");
    as_nobody(&format!("ln -s {} {}", victim.display(), json.display()));
    let marker = dir.join("ran");
    let out = run(&[
        "--json",
        json.to_str().unwrap(),
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let e = error_line(&out);
    assert!(e.contains("belongs to user 65534"), "{e}");
    assert!(
        !marker.exists(),
        "the command ran although an output was refused"
    );
    assert_intact(&victim);

    // So is `-o` onto that directory, before the run, not after it.
    let out = run(&[
        "-o",
        shared.to_str().unwrap(),
        "--",
        "touch",
        marker.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(error_line(&out).contains("belongs to user 65534"));
    assert!(
        !marker.exists(),
        "the command ran although an output was refused"
    );
    assert_intact(&victim);

    // A new file there is fine, and is 0600.
    let fresh = shared.join("fresh.json");
    let out = run(&["--quiet", "--json", fresh.to_str().unwrap(), "--", "true"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
}

/// Issue 15 item 1: a directory other users can write without the sticky
/// bit lets them swap any file for a link: refused, for `-o` and `--json`,
/// and the old write-test probe name is not touched.
#[test]
fn an_output_dir_writable_by_others_is_refused() {
    if !require_root("an_output_dir_writable_by_others_is_refused") {
        return;
    }
    let dir = TempDir::new("open-dir");
    let victim = victim(&dir);
    let open = shared_dir(&dir, "open", false);
    as_nobody(&format!(
        "ln -s {v} {d}/.zc-trace-write-test && ln -s {v} {d}/report.json",
        v = victim.display(),
        d = open.display()
    ));
    let json = open.join("r.json");
    for args in [
        ["-o", open.to_str().unwrap()],
        ["--json", json.to_str().unwrap()],
    ] {
        let out = run(&[args[0], args[1], "--", "true"]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let e = error_line(&out);
        assert!(e.contains("writable by other users"), "{e}");
    }
    assert_intact(&victim);
    // The lab's work directory may not go there either.
    let out = run(&["lab", "--size", "64K", "--dir", open.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(error_line(&out).contains("writable by other users"));
    // A directory on the way that another user owns is refused too.
    let theirs = dir.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(65534), Some(65534)).unwrap();
    let out = run(&["-o", theirs.join("out").to_str().unwrap(), "--", "true"]);
    assert!(error_line(&out).contains("belongs to user 65534"));
}

/// Issue 15 item 1: a directory on the output path that is another user's
/// link (to /etc, say) is refused.
#[test]
fn another_users_link_to_a_directory_is_refused() {
    if !require_root("another_users_link_to_a_directory_is_refused") {
        return;
    }
    let dir = TempDir::new("link-dir");
    let victim = victim(&dir);
    let shared = shared_dir(&dir, "tmp", true);
    let target = dir.join("etc");
    std::fs::create_dir(&target).unwrap();
    std::fs::copy(&victim, target.join("report.json")).unwrap();
    as_nobody(&format!(
        "ln -s {} {}/out",
        target.display(),
        shared.display()
    ));
    let out = run(&["-o", shared.join("out").to_str().unwrap(), "--", "true"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(error_line(&out).contains("is a link owned by user 65534"));
    assert_intact(&target.join("report.json"));
}

/// Issue 15 item 3: with CAP_BPF + CAP_PERFMON but not root, a user may
/// attach only to processes they could ptrace.
#[test]
fn capabilities_without_root_trace_only_your_own_processes() {
    if !require_root("capabilities_without_root_trace_only_your_own_processes") {
        return;
    }
    let caps = |script: &str| {
        Command::new("setpriv")
            .args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
            .args(["--inh-caps=+bpf,+perfmon", "--ambient-caps=+bpf,+perfmon"])
            .args(["bash", "-c", script])
            .env("ZC", tracer_bin())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let mut roots = Command::new("sleep").arg("60").spawn().unwrap();
    let out = caps(&format!("\"$ZC\" -p {} --duration 1s", roots.id()));
    let _ = roots.kill();
    let _ = roots.wait();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let e = error_line(&out);
    assert!(e.contains("belongs to another user"), "{e}");
    assert!(!text(&out.stderr).contains("tracing pid"), "it attached");

    // Their own process: traced (the capabilities do load the probes).
    let out = caps("sleep 60 & \"$ZC\" -p $! --duration 1s --no-cost; r=$?; kill $!; exit $r");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("tracing pid"), "{stderr}");
}

/// Issue 15 item 4: what a traced process names itself reaches the
/// operator's terminal escaped, in the summary, the HTML and the charts.
#[test]
fn terminal_escapes_in_names_and_argv_are_escaped() {
    if !require_root("terminal_escapes_in_names_and_argv_are_escaped") {
        return;
    }
    let dir = TempDir::new("escapes");
    let out_dir = dir.join("out");
    // A program's name (comm) is the file name it was run by: a link named
    // with an OSC title sequence. bash runs it as a child, so the
    // per-process table lists it (the trailing `:` keeps bash from
    // exec-ing it in its own place); the argv carries more escapes.
    let named = dir.join("\u{1b}]0;pwned\u{7}");
    symlink("/bin/true", &named).unwrap();
    let out = run(&[
        "-o",
        out_dir.to_str().unwrap(),
        "--svg",
        "--",
        "bash",
        "-c",
        "\"$0\"; :",
        named.to_str().unwrap(),
        "\u{1b}[2J\u{9b}31m",
    ]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("\\x1b]0;pwned\\x07"),
        "comm not shown escaped: {stderr}"
    );
    assert!(
        stderr.contains("\\x1b[2J\\u{9b}31m"),
        "argv not shown escaped: {stderr}"
    );
    let raw = |b: &[u8]| {
        b.iter().any(|&c| c == 0x1b || c == 0x07) || b.windows(2).any(|w| w == [0xc2, 0x9b])
    };
    assert!(
        !raw(&out.stderr),
        "a raw escape reached the terminal: {stderr:?}"
    );
    for name in ["report.html", "ledger.svg", "processes.svg"] {
        let bytes = std::fs::read(out_dir.join(name)).unwrap();
        assert!(!raw(&bytes), "a raw escape in {name}");
    }
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(
        html.contains("\\x1b]0;pwned\\x07"),
        "the HTML lost the name"
    );

    // compare: a run's label is its file name, which anyone may choose.
    let json = out_dir.join("report.json");
    let odd = dir.join("\u{1b}]0;x\u{7}.json");
    std::fs::copy(&json, &odd).unwrap();
    let out = run(&["compare", odd.to_str().unwrap(), json.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !raw(&out.stdout) && !raw(&out.stderr),
        "compare printed a raw escape"
    );
}

/// Issue 15 item 5: a local user who connects to the lab's loopback port
/// first (and says nothing, or something wrong) cannot hang or corrupt it.
#[test]
fn a_stranger_connecting_first_cannot_hang_the_lab() {
    if !require_root("a_stranger_connecting_first_cannot_hang_the_lab") {
        return;
    }
    let dir = TempDir::new("lab-stranger");
    let (stdout, stderr) = (dir.join("stdout"), dir.join("stderr"));
    let mut lab = Command::new(tracer_bin())
        .args([
            "lab",
            "--size",
            "4M",
            "--methods",
            "read-write",
            "--runs",
            "1",
        ])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let pid = lab.id();
    // Connect as soon as the port appears, and keep connecting while the
    // lab runs, so every run of it meets strangers queued before its sender.
    let stranger = std::thread::spawn(move || {
        let mut held = std::collections::VecDeque::new();
        let mut connected = 0;
        while Path::new(&format!("/proc/{pid}/status")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .contains("State:\tZ")
        {
            let stream =
                listening_port(pid).and_then(|p| TcpStream::connect(("127.0.0.1", p)).ok());
            if let Some(mut c) = stream {
                if connected % 2 == 1 {
                    let _ = c.write_all(b"not the token, but 16 bytes long");
                }
                connected += 1;
                held.push_back(c);
                if held.len() > 8 {
                    held.pop_front();
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        connected
    });
    // A hung lab is the failure this test looks for: give up on it after
    // three minutes (the run takes seconds) rather than hang the suite.
    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = lab.try_wait().unwrap() {
            break Some(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = lab.kill();
            let _ = lab.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let connected = stranger.join().unwrap();
    let stderr = std::fs::read_to_string(&stderr).unwrap();
    let stdout = std::fs::read_to_string(&stdout).unwrap();
    let status = status.unwrap_or_else(|| panic!("the lab hung: {stderr}"));
    assert!(status.success(), "the lab failed: {stderr}");
    assert!(connected > 0, "the stranger never got to connect");
    assert!(stdout.contains("read+write"), "{stdout}");
}

/// The TCP port `pid` listens on, from /proc (its socket inodes matched
/// against /proc/net/tcp's listening sockets).
fn listening_port(pid: u32) -> Option<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let s = l.to_string_lossy().into_owned();
            Some(s.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
        })
        .collect();
    let tcp = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).ok()?;
    tcp.lines().skip(1).find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        // local_address, state 0A = LISTEN, inode at column 9.
        if f.get(3) == Some(&"0A") && inodes.iter().any(|i| Some(&i.as_str()) == f.get(9)) {
            u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()
        } else {
            None
        }
    })
}

/// Issue 15 item 2: the lab's work directory has a random name and mode
/// 0700; one left by a killed lab is removed by the next run, and one of a
/// run still going is kept.
#[test]
fn the_lab_removes_work_dirs_of_killed_runs_only() {
    if !require_root("the_lab_removes_work_dirs_of_killed_runs_only") {
        return;
    }
    let dir = TempDir::new("lab-stale");
    let work_dirs = || -> Vec<PathBuf> {
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    // A lab killed while it writes its test file leaves its directory.
    let mut killed = Command::new(tracer_bin())
        .args(["lab", "--size", "1G", "--runs", "1", "--dir"])
        .arg(dir.path())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !work_dirs().iter().any(|d| d.join("data.bin").exists()) {
        assert!(
            std::time::Instant::now() < deadline,
            "the lab made no work dir"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    killed.kill().unwrap();
    killed.wait().unwrap();
    let stale = work_dirs();
    assert_eq!(stale.len(), 1, "{stale:?}");
    let meta = std::fs::metadata(&stale[0]).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o700, "others could plant files in it");

    // A directory of a run that still goes (this test's own process).
    let ns = std::fs::read_link("/proc/self/ns/pid").unwrap();
    let me = std::process::id();
    let stat = std::fs::read_to_string(format!("/proc/{me}/stat")).unwrap();
    let started = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .to_owned();
    let live = dir.join("zc-trace-lab-running");
    std::fs::create_dir(&live).unwrap();
    std::fs::set_permissions(&live, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::write(
        live.join("owner"),
        format!("{me} {started} {}\n", ns.to_string_lossy()),
    )
    .unwrap();

    let out = run(&[
        "lab",
        "--size",
        "64K",
        "--methods",
        "sendfile",
        "--runs",
        "1",
        "--dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !stale[0].exists(),
        "the killed run's directory is still there"
    );
    assert!(live.exists(), "a running lab's directory was removed");
    assert_eq!(work_dirs(), [live], "the lab left files behind");
}
