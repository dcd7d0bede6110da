//! Issue 9: the ledger's classes beyond the CPU copies, held to exact
//! figures on real programs (dd) traced with real eBPF.
//!
//! Needs root (eBPF) and a built tracer; without root each test says
//! SKIPPED on stderr, and fails under `CI=true`.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use zc_trace_tests::harness::{
    Report, TempDir, attach_tracer, require_root, run_traced, signal, tracer_bin, wait_until,
};
use zc_trace_tests::write_input_file;

const MIB: u64 = 1 << 20;
const SIZE: u64 = 64 * MIB;
/// What dd and its loader read or write besides the data (libc's ELF
/// header, locale files, dd's closing report on a pipe): a few KiB.
const STARTUP: u64 = 64 * 1024;

/// tmpfs accepts O_DIRECT (since 6.6) but serves it from its page cache,
/// which is a CPU copy; the direct I/O test needs a disk filesystem.
const TMPFS_MAGIC: i64 = 0x0102_1994;

fn is_tmpfs(dir: &Path) -> bool {
    let Ok(path) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return true;
    };
    // SAFETY: a valid C string and a zeroed statfs for the kernel to fill.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return true;
    }
    st.f_type as i64 == TMPFS_MAGIC
}

/// A 64 MiB input file in `dir` when that is on a disk filesystem, else in
/// /var/tmp (tmpfs /tmp is common); removed by the caller's TempDir or here.
struct Input(PathBuf);

impl Input {
    fn new(dir: &TempDir) -> Self {
        let path = if is_tmpfs(dir.path()) {
            PathBuf::from(format!("/var/tmp/zc-trace-ledger-{}", std::process::id()))
        } else {
            dir.join("input")
        };
        assert!(
            !is_tmpfs(path.parent().unwrap()),
            "neither {} nor /var/tmp is on a disk filesystem: O_DIRECT needs one",
            dir.path().display()
        );
        write_input_file(&path, SIZE).unwrap();
        Self(path)
    }

    fn arg(&self, key: &str) -> String {
        format!("{key}={}", self.0.display())
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn dd(args: &[String]) -> Vec<String> {
    let mut cmd = vec!["dd".to_string()];
    cmd.extend(args.iter().cloned());
    cmd
}

fn traced_dd(dir: &TempDir, tag: &str, args: &[String]) -> Report {
    let t = run_traced(dir, tag, &[], &dd(args));
    assert!(t.status.success(), "dd failed: {}\n{}", t.status, t.stderr);
    t.report
}

/// Issue 9: writes to /dev/null copy nothing; they were booked as 64 MiB
/// "copied by CPU, user -> kernel".
#[test]
fn issue9_dd_to_dev_null_is_device_not_copied() {
    if !require_root("issue9_dd_to_dev_null_is_device_not_copied") {
        return;
    }
    let dir = TempDir::new("ledger-device");
    let input = Input::new(&dir);
    let r = traced_dd(
        &dir,
        "device",
        &[input.arg("if"), "of=/dev/null".into(), "bs=1M".into()],
    );
    assert_eq!(r.u64_at("/totals/bytes/device"), SIZE, "device");
    let from_user = r.u64_at("/totals/bytes/copied_from_user");
    assert!(from_user < STARTUP, "copied_from_user {from_user}");
    // The reads of the file are real copies and stay where they were.
    let to_user = r.u64_at("/totals/bytes/copied_to_user");
    assert!(
        (SIZE..SIZE + STARTUP).contains(&to_user),
        "copied_to_user {to_user}"
    );
    assert_eq!(
        r.0["syscalls"]["write"]["by_fd_kind"]["device"]["bytes"],
        SIZE
    );
    let p = &r.processes()[0];
    assert_eq!(p["totals"]["bytes"]["device"], SIZE, "per process");
}

/// Issue 9: `iflag=direct` reads DMA into dd's buffer; they were booked as
/// 64 MiB "copied by CPU, kernel -> user".
#[test]
fn issue9_dd_iflag_direct_is_direct_io() {
    if !require_root("issue9_dd_iflag_direct_is_direct_io") {
        return;
    }
    let dir = TempDir::new("ledger-direct");
    let input = Input::new(&dir);
    let r = traced_dd(
        &dir,
        "direct",
        &[
            input.arg("if"),
            "iflag=direct".into(),
            "of=/dev/null".into(),
            "bs=1M".into(),
        ],
    );
    assert_eq!(r.u64_at("/totals/bytes/direct_io"), SIZE, "direct_io");
    assert_eq!(r.u64_at("/totals/bytes/device"), SIZE, "device");
    let to_user = r.u64_at("/totals/bytes/copied_to_user");
    assert!(to_user < STARTUP, "copied_to_user {to_user}");
    assert_eq!(
        r.0["syscalls"]["read"]["by_fd_kind"]["direct"]["bytes"],
        SIZE
    );

    // And the other way: oflag=direct writes, from /dev/zero, on the same
    // (disk) filesystem as the input.
    let out = input.0.with_extension("out");
    let r = traced_dd(
        &dir,
        "direct-write",
        &[
            "if=/dev/zero".into(),
            format!("of={}", out.display()),
            "oflag=direct".into(),
            "bs=1M".into(),
            "count=16".into(),
        ],
    );
    let _ = std::fs::remove_file(&out);
    assert_eq!(
        r.u64_at("/totals/bytes/direct_io"),
        16 * MIB,
        "oflag=direct"
    );
    assert_eq!(r.u64_at("/totals/bytes/device"), 16 * MIB, "from /dev/zero");
}

/// Issue 9: a buffered read of the same file is still a copy: the flag is
/// read per call, not guessed from the path.
#[test]
fn issue9_buffered_read_stays_a_copy() {
    if !require_root("issue9_buffered_read_stays_a_copy") {
        return;
    }
    let dir = TempDir::new("ledger-buffered");
    let input = Input::new(&dir);
    let out = dir.join("copy");
    let r = traced_dd(
        &dir,
        "buffered",
        &[
            input.arg("if"),
            format!("of={}", out.display()),
            "bs=1M".into(),
        ],
    );
    assert_eq!(r.u64_at("/totals/bytes/direct_io"), 0);
    assert_eq!(r.u64_at("/totals/bytes/device"), 0);
    assert_eq!(
        r.0["syscalls"]["write"]["by_fd_kind"]["file"]["bytes"],
        SIZE
    );
    assert!(r.u64_at("/totals/bytes/copied_from_user") >= SIZE);
}

/// Schema 2 readers keep reading schema 1 files: `report` and `compare`
/// on a version 1 report (no device/direct_io keys) work and read them as 0.
#[test]
fn issue9_report_and_compare_read_schema_1() {
    if !require_root("issue9_report_and_compare_read_schema_1") {
        return;
    }
    let dir = TempDir::new("ledger-v1");
    let t = run_traced(&dir, "v2", &[], &["true".to_string()]);
    assert!(t.status.success(), "{}", t.stderr);
    let mut v1 = t.report.0.clone();
    v1["schema_version"] = 1.into();
    let strip = |bytes: &mut serde_json::Value| {
        let b = bytes.as_object_mut().expect("bytes object");
        let before = b.len();
        b.retain(|key, _| {
            ["copied_to_user", "copied_from_user", "zero_copy", "mapped"].contains(&key.as_str())
        });
        assert!(b.len() == 4 && before > 4, "schema 2 bytes keys: {before}");
    };
    strip(&mut v1["totals"]["bytes"]);
    for p in v1["processes"].as_array_mut().unwrap() {
        strip(&mut p["totals"]["bytes"]);
    }
    let v1_path = dir.join("v1.json");
    std::fs::write(&v1_path, serde_json::to_vec(&v1).unwrap()).unwrap();

    let out = dir.join("out");
    let r = Command::new(tracer_bin())
        .arg("report")
        .arg(&v1_path)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(out.join("ledger.png").is_file());

    let r = Command::new(tracer_bin())
        .arg("compare")
        .arg(&v1_path)
        .arg(dir.join("v2.json"))
        .arg("-o")
        .arg(dir.join("cmp"))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

/// Issue 9: faults taken through get_user_pages (here: an O_DIRECT read
/// into a fresh 64 MiB buffer) never hit the exception tracepoints; the
/// report said ~100 faults where rusage said ~16,500. Now the process's
/// faults add up to what the kernel reports to wait4 (via /usr/bin/time,
/// which waits for dd).
#[test]
fn issue9_page_faults_match_rusage_with_get_user_pages() {
    if !require_root("issue9_page_faults_match_rusage_with_get_user_pages") {
        return;
    }
    let dir = TempDir::new("ledger-gup");
    let input = Input::new(&dir);
    let mut cmd = vec![
        "/usr/bin/time".to_string(),
        "-f".into(),
        "zc-rusage %R %F".into(),
    ];
    cmd.extend(dd(&[
        input.arg("if"),
        "iflag=direct".into(),
        "of=/dev/null".into(),
        "bs=64M".into(),
        "count=1".into(),
    ]));
    assert!(
        Path::new("/usr/bin/time").is_file(),
        "/usr/bin/time is the rusage oracle: apt-get install time (cargo xtask setup does)"
    );
    let t = run_traced(&dir, "gup", &[], &cmd);
    assert!(t.status.success(), "{}\n{}", t.status, t.stderr);
    let rusage: u64 = t
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("zc-rusage "))
        .unwrap_or_else(|| panic!("no rusage line from /usr/bin/time:\n{}", t.stderr))
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    let dd = t
        .report
        .processes()
        .iter()
        .find(|p| p["comm"] == "dd")
        .unwrap_or_else(|| panic!("no dd process in {:#}", t.report.0["processes"]));
    let pf = &dd["totals"]["page_faults"];
    let total = fault_total(pf);
    assert!(
        total.abs_diff(rusage) <= 3,
        "dd's faults {pf} = {total}, rusage says {rusage}"
    );
    let pages = SIZE / 4096;
    assert!(
        pf["get_user_pages"].as_u64().unwrap() >= pages,
        "the O_DIRECT read faults in every page of its buffer: {pf}"
    );
}

/// Drops `path` from the page cache: posix_fadvise(DONTNEED), which works
/// for clean pages (the input was written and synced).
fn drop_from_page_cache(path: &Path) {
    let status = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(status.success(), "dd iflag=nocache: {status}");
}

/// Issue 9: the DMA from disk into the page cache (the textbook's first
/// copy) was invisible. A cold read of 64 MiB books it; the same read warm
/// books nothing; a buffered write that creates 64 MiB of new page cache
/// reads nothing from disk.
#[test]
fn issue9_cold_read_books_disk_read_warm_does_not() {
    if !require_root("issue9_cold_read_books_disk_read_warm_does_not") {
        return;
    }
    let dir = TempDir::new("ledger-disk");
    let input = Input::new(&dir);
    let read = [input.arg("if"), "of=/dev/null".into(), "bs=1M".into()];
    drop_from_page_cache(&input.0);
    let cold = traced_dd(&dir, "cold", &read);
    let disk = cold.u64_at("/totals/bytes/disk_read");
    assert!(
        (SIZE / 10 * 9..=SIZE + 4 * MIB).contains(&disk),
        "cold read: disk_read {disk} of {SIZE}"
    );
    let warm = traced_dd(&dir, "warm", &read);
    let disk = warm.u64_at("/totals/bytes/disk_read");
    assert!(disk < MIB, "warm read: disk_read {disk}");

    // cat, through a shell: the process that reads is a child.
    drop_from_page_cache(&input.0);
    let cat = format!("cat '{}' >/dev/null", input.0.display());
    let t = run_traced(&dir, "cat", &[], &["sh".into(), "-c".into(), cat]);
    assert!(t.status.success(), "{}", t.stderr);
    let disk = t.report.u64_at("/totals/bytes/disk_read");
    assert!(disk >= SIZE / 10 * 9, "cold cat: disk_read {disk}");

    let out = input.0.with_extension("written");
    let write = traced_dd(
        &dir,
        "write",
        &[
            "if=/dev/zero".into(),
            format!("of={}", out.display()),
            "bs=1M".into(),
            "count=64".into(),
        ],
    );
    let _ = std::fs::remove_file(&out);
    let disk = write.u64_at("/totals/bytes/disk_read");
    assert!(disk < MIB, "a write into new pages reads nothing: {disk}");

    // cp: copy_file_range, whose destination pages are new, not read; its
    // source is read from disk when cold and not when warm.
    let copy = input.0.with_extension("copy");
    let cp = |tag: &str| {
        let _ = std::fs::remove_file(&copy);
        let cmd = [
            "cp".to_string(),
            input.0.display().to_string(),
            copy.display().to_string(),
        ];
        let t = run_traced(&dir, tag, &[], &cmd);
        assert!(t.status.success(), "{}", t.stderr);
        t.report.u64_at("/totals/bytes/disk_read")
    };
    let warm = cp("cp-warm");
    drop_from_page_cache(&input.0);
    let cold = cp("cp-cold");
    let _ = std::fs::remove_file(&copy);
    assert!(warm < MIB, "warm cp: disk_read {warm}");
    assert!(
        (SIZE / 10 * 9..=SIZE + 4 * MIB).contains(&cold),
        "cold cp: disk_read {cold}"
    );
}

/// Issue 9: `lab --cold` measures the textbook's first DMA copy: disk_read
/// per byte delivered is 1.00 for each method, mmap+write included (its
/// disk reads happen in write()'s kernel-mode faults on the mapping, and
/// must not be mistaken for the pages a write creates).
#[test]
fn issue9_lab_cold_measures_disk_reads() {
    if !require_root("issue9_lab_cold_measures_disk_reads") {
        return;
    }
    let dir = TempDir::new("ledger-lab");
    let files = if is_tmpfs(dir.path()) {
        PathBuf::from("/var/tmp")
    } else {
        dir.path().to_path_buf()
    };
    let json = dir.join("lab.json");
    let size = 16 * MIB;
    let out = Command::new(tracer_bin())
        .args(["lab", "--size", "16M", "--runs", "1", "--cold"])
        .args(["--methods", "read-write,mmap-write,sendfile"])
        .arg("--dir")
        .arg(&files)
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("disk -> page cache per byte delivered"),
        "{stdout}"
    );
    let lab: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    for m in lab["methods"].as_array().unwrap() {
        let disk = m["disk_read"].as_u64().unwrap();
        assert!(
            disk >= size / 10 * 9 && disk <= size / 10 * 11,
            "{}: disk_read {disk} for {size} delivered",
            m["method"]
        );
    }
}

/// Every fault of a report's `page_faults` object, as rusage counts them.
fn fault_total(pf: &serde_json::Value) -> u64 {
    ["user", "kernel", "get_user_pages"]
        .iter()
        .map(|k| pf[k].as_u64().unwrap())
        .sum()
}

/// minflt + majflt of process `pid` (proc_pid_stat(5) fields 10 and 12).
fn proc_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .collect();
    fields[7].parse::<u64>().unwrap() + fields[9].parse::<u64>().unwrap()
}

/// Issue 9, attach mode: a process still running when tracing stops never
/// passes the exit probe, and its counters run from before the attach.
/// Its page faults must be those of the traced span: a shell waits, we
/// attach, it becomes dd, whose O_DIRECT read faults in 64 MiB through
/// get_user_pages, then it blocks writing to a pipe nobody reads; Ctrl-C.
#[test]
fn issue9_attach_counts_the_faults_of_the_traced_span() {
    if !require_root("issue9_attach_counts_the_faults_of_the_traced_span") {
        return;
    }
    let dir = TempDir::new("ledger-gup-attach");
    let input = Input::new(&dir);
    let script = format!(
        "read go; exec dd if='{}' iflag=direct bs=64M count=1 status=none",
        input.0.display()
    );
    let mut target = Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = target.id();
    let json = dir.join("attach.json");
    let mut tracer = attach_tracer(pid, &[], &json);
    let before = proc_faults(pid);
    target.stdin.take().unwrap().write_all(b"go\n").unwrap();
    wait_until(
        "dd to block writing its 64 MiB to the pipe",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(format!("/proc/{pid}/syscall"))
                .is_ok_and(|s| s.starts_with("1 "))
        },
    );
    let traced_span = proc_faults(pid) - before;
    signal(tracer.pid(), libc::SIGINT);
    let status = tracer.wait_or_kill(Duration::from_secs(30));
    let _ = target.kill();
    let _ = target.wait();
    // Stopped by Ctrl-C, the attach run completed: exit 0, report written.
    assert_eq!(status.code(), Some(0), "{}", tracer.stderr());
    let r = Report::load(&json);
    let p = r
        .process(pid as u64)
        .unwrap_or_else(|| panic!("pid {pid} not in {:#}", r.0["processes"]));
    let pf = &p["totals"]["page_faults"];
    let total = fault_total(pf);
    assert!(
        total.abs_diff(traced_span) <= 3,
        "faults {pf} = {total}, the kernel's counters moved by {traced_span} while traced"
    );
    assert!(
        pf["get_user_pages"].as_u64().unwrap() >= SIZE / 4096,
        "the O_DIRECT read faults in every page of its buffer: {pf}"
    );
}
