//! `zc-trace lab` end to end: the real binary, real eBPF, a small file, and
//! the issue's must-holds checked on the JSON it writes.
//!
//! Needs root (eBPF) and a built tracer (`cargo build -p zc-trace`, or
//! `ZC_TRACE_BIN`); without root each test says SKIPPED on stderr, and
//! fails under `CI=true`.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zc_trace_tests::harness::{TempDir, require_root, tracer_bin};

const SIZE: u64 = 4 << 20;
const CHUNK: u64 = 64 << 10;
const CHUNKS: u64 = SIZE / CHUNK;

struct LabRun {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    json: Option<Value>,
}

/// Runs `zc-trace lab ARGS --json DIR/lab.json`, at most three minutes.
fn lab(dir: &TempDir, args: &[&str]) -> LabRun {
    let json = dir.join("lab.json");
    let (out, err) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let mut child = Command::new(tracer_bin())
        .arg("lab")
        .args(args)
        .arg("--json")
        .arg(&json)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .expect("spawn zc-trace lab");
    let deadline = Instant::now() + Duration::from_secs(180);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "zc-trace lab {args:?} did not finish in 3 minutes\nstderr:\n{}",
                std::fs::read_to_string(&err).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let json = std::fs::read_to_string(&json)
        .ok()
        .filter(|t| !t.is_empty())
        .map(|t| {
            serde_json::from_str(&t).unwrap_or_else(|e| panic!("lab.json is not JSON ({e}):\n{t}"))
        });
    LabRun {
        status,
        stdout: read(&out),
        stderr: read(&err),
        json,
    }
}

fn ok_lab(dir: &TempDir, args: &[&str]) -> (Value, String) {
    let r = lab(dir, args);
    assert!(
        r.status.success(),
        "zc-trace lab {args:?} failed: {}\nstdout:\n{}\nstderr:\n{}",
        r.status,
        r.stdout,
        r.stderr
    );
    let json = r
        .json
        .unwrap_or_else(|| panic!("no lab.json written\nstderr:\n{}", r.stderr));
    assert_eq!(json["schema_version"], 1);
    (json, r.stdout)
}

fn method<'a>(json: &'a Value, name: &str) -> &'a Value {
    json["methods"]
        .as_array()
        .expect("methods is an array")
        .iter()
        .find(|m| m["method"] == name)
        .unwrap_or_else(|| panic!("no method {name} in {json:#}"))
}

fn u(m: &Value, field: &str) -> u64 {
    m[field].as_u64().unwrap_or_else(|| {
        panic!(
            "{field} is not an unsigned integer in {} ({})",
            m["method"], m[field]
        )
    })
}

/// The method's own calls (baseline subtracted): "syscall/kind" -> (count, bytes).
fn calls(m: &Value) -> Vec<(String, i64, i64)> {
    m["calls"]
        .as_object()
        .expect("calls is an object")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v["count"].as_i64().unwrap(),
                v["bytes"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn row(name: &str, count: u64, bytes: u64) -> (String, i64, i64) {
    (name.to_owned(), count as i64, bytes as i64)
}

#[test]
fn every_method_holds_the_textbook_must_holds() {
    if !require_root("lab::every_method_holds_the_textbook_must_holds") {
        return;
    }
    let dir = TempDir::new("lab-all");
    let work = TempDir::new("lab-all-work");
    let (json, stdout) = ok_lab(
        &dir,
        &[
            "--size",
            "4M",
            "--chunk",
            "64K",
            "--runs",
            "1",
            "--dir",
            work.path().to_str().unwrap(),
        ],
    );
    assert_eq!(json["size"], SIZE);
    assert_eq!(json["chunk"], CHUNK);
    assert_eq!(json["runs"], 1);
    assert_eq!(json["cold"], false);
    let names: Vec<&str> = json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "read-write",
            "mmap-write",
            "sendfile",
            "splice",
            "readv-writev",
            "copy-file-range",
            "mmap-zerocopy",
            "io-uring-read-send",
            "io-uring-send-zc",
            "io-uring-splice"
        ]
    );

    // Every method delivers every byte intact (the lab verifies count and
    // checksum and fails otherwise; here the count is in the JSON).
    for m in json["methods"].as_array().unwrap() {
        assert_eq!(u(m, "bytes_delivered"), SIZE, "{}", m["method"]);
        assert!(m["mib_per_s"].as_f64().unwrap() > 0.0, "{}", m["method"]);
        for f in [
            "syscalls",
            "mode_switches",
            "copied_to_user",
            "copied_from_user",
            "zero_copy",
            "page_faults",
        ] {
            assert!(m["model"][f].is_number(), "model {f} of {}", m["method"]);
        }
        assert!(!m["context_switches"].is_null());
    }

    // read+write: 2 syscalls per chunk, 2 x the file copied.
    let rw = method(&json, "read-write");
    assert_eq!(u(rw, "syscalls"), 2 * CHUNKS, "{rw:#}");
    assert_eq!(
        u(rw, "copied_to_user") + u(rw, "copied_from_user"),
        2 * SIZE
    );
    assert_eq!(u(rw, "copied_to_user"), SIZE);
    assert_eq!(u(rw, "zero_copy"), 0);
    assert_eq!(
        calls(rw),
        [
            row("read/file", CHUNKS, SIZE),
            row("write/socket", CHUNKS, SIZE)
        ]
    );
    assert_eq!(rw["model"]["syscalls"].as_f64(), Some((2 * CHUNKS) as f64));

    // readv/writev: the same, one iovec per call.
    let rv = method(&json, "readv-writev");
    assert_eq!(u(rv, "syscalls"), 2 * CHUNKS);
    assert_eq!(
        calls(rv),
        [
            row("readv/file", CHUNKS, SIZE),
            row("writev/socket", CHUNKS, SIZE)
        ]
    );

    // mmap+write: the file is copied once (from the mapping), never read,
    // and the mapping faults.
    let mm = method(&json, "mmap-write");
    assert_eq!(u(mm, "copied_from_user"), SIZE);
    assert_eq!(u(mm, "copied_to_user"), 0, "no read calls: {mm:#}");
    assert!(
        !calls(mm).iter().any(|(k, _, _)| k.starts_with("read")),
        "{mm:#}"
    );
    assert!(u(mm, "page_faults") > 0, "{mm:#}");
    assert_eq!(u(mm, "mapped"), SIZE);
    assert_eq!(
        calls(mm),
        [
            row("mmap/file", 1, SIZE),
            row("munmap/none", 1, 0),
            row("write/socket", CHUNKS, SIZE)
        ]
    );

    // sendfile and splice: nothing crosses the user boundary. zero_copy is
    // the bytes returned by zero-copy calls: splice moves each byte twice.
    let sf = method(&json, "sendfile");
    assert_eq!((u(sf, "copied_to_user"), u(sf, "copied_from_user")), (0, 0));
    assert_eq!(u(sf, "zero_copy"), SIZE);
    assert_eq!(u(sf, "syscalls"), CHUNKS);
    assert_eq!(calls(sf), [row("sendfile/file->socket", CHUNKS, SIZE)]);
    let sp = method(&json, "splice");
    assert_eq!((u(sp, "copied_to_user"), u(sp, "copied_from_user")), (0, 0));
    assert_eq!(u(sp, "zero_copy"), 2 * SIZE);
    assert_eq!(u(sp, "syscalls"), 2 * CHUNKS);
    assert_eq!(
        calls(sp),
        [
            row("splice/file->pipe", CHUNKS, SIZE),
            row("splice/pipe->socket", CHUNKS, SIZE)
        ]
    );

    // mmap+MSG_ZEROCOPY (issue 9): pinned, not copied at the call; over
    // loopback the kernel copies all of it later, and its completions say so.
    let zc = method(&json, "mmap-zerocopy");
    assert_eq!(u(zc, "zerocopy_sent"), SIZE, "{zc:#}");
    assert_eq!(u(zc, "zerocopy_copied"), SIZE, "{zc:#}");
    assert_eq!((u(zc, "copied_to_user"), u(zc, "copied_from_user")), (0, 0));
    assert!(
        calls(zc).contains(&row("sendto/zerocopy", CHUNKS, SIZE)),
        "{zc:#}"
    );
    let flat = stdout.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("mmap+MSG_ZEROCOPY pinned 1.00 per byte delivered, copied later 1.00"),
        "{stdout}"
    );

    // copy_file_range: file -> file, the odd one out.
    let cfr = method(&json, "copy-file-range");
    assert_eq!(
        (u(cfr, "copied_to_user"), u(cfr, "copied_from_user")),
        (0, 0)
    );
    assert_eq!(u(cfr, "zero_copy"), SIZE);
    assert_eq!(
        calls(cfr),
        [row("copy_file_range/file->file", CHUNKS, SIZE)]
    );
    assert!(cfr["path"].as_str().unwrap().contains("file -> file"));

    // The table is on stdout, one row per method, and says how it counted.
    for label in [
        "read+write",
        "mmap+write",
        "sendfile",
        "splice",
        "readv/writev",
        "copy_file_range",
        "io_uring read+send",
        "io_uring SEND_ZC",
        "io_uring splice",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(label)),
            "no {label} row:\n{stdout}"
        );
    }
    assert!(stdout.contains("Baseline subtracted"), "{stdout}");
    assert!(json["baseline"]["subtracted"] == true);

    // The lab cleans up after itself.
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "the lab left files in --dir"
    );
}

/// Issue 9: a program that sends a file with io_uring READ + SEND (or
/// SEND_ZC, or SPLICE) showed ~0 bytes moved: only io_uring_enter was
/// counted. 64 MiB over loopback TCP, the sender traced alone, 1 MiB
/// requests: every request is counted by opcode and its bytes are in the
/// class of the matching syscall.
#[test]
fn issue9_io_uring_methods_book_their_requests_and_classes() {
    if !require_root("lab::issue9_io_uring_methods_book_their_requests_and_classes") {
        return;
    }
    const SIZE: u64 = 64 << 20;
    const CHUNK: u64 = 1 << 20;
    const CHUNKS: u64 = SIZE / CHUNK;
    let dir = TempDir::new("lab-uring");
    let work = TempDir::new("lab-uring-work");
    let (json, _) = ok_lab(
        &dir,
        &[
            "--size",
            "64M",
            "--chunk",
            "1M",
            "--runs",
            "1",
            "--methods",
            "io-uring-read-send,io-uring-send-zc,io-uring-splice",
            "--dir",
            work.path().to_str().unwrap(),
        ],
    );
    for m in json["methods"].as_array().unwrap() {
        assert_eq!(u(m, "bytes_delivered"), SIZE, "{}", m["method"]);
    }

    // READ + SEND: 64 MiB each way, one request per chunk (SEND with
    // MSG_WAITALL), one io_uring_enter per request.
    let rs = method(&json, "io-uring-read-send");
    assert_eq!(u(rs, "copied_to_user"), SIZE, "{rs:#}");
    assert_eq!(u(rs, "copied_from_user"), SIZE, "{rs:#}");
    assert_eq!(
        calls(rs),
        [
            row("io_uring:READ/file", CHUNKS, SIZE),
            row("io_uring:SEND/socket", CHUNKS, SIZE),
            row("io_uring_enter/other", 2 * CHUNKS, 0),
        ]
    );
    assert_eq!(u(rs, "syscalls"), 2 * CHUNKS, "requests are not syscalls");

    // SEND_ZC from a mapping: pinned, not copied at the call; over
    // loopback the notification says the kernel copied all of it.
    let zc = method(&json, "io-uring-send-zc");
    assert_eq!(u(zc, "zerocopy_sent"), SIZE, "{zc:#}");
    assert_eq!(u(zc, "zerocopy_copied"), SIZE, "{zc:#}");
    assert_eq!(u(zc, "copied_from_user"), 0, "{zc:#}");
    assert_eq!(u(zc, "copied_to_user"), 0, "{zc:#}");
    assert!(
        calls(zc).contains(&row("io_uring:SEND_ZC/zerocopy", CHUNKS, SIZE)),
        "{zc:#}"
    );

    // SPLICE file -> pipe -> socket (completed by io-wq workers, threads
    // of the sender): zero-copy, each byte twice.
    let sp = method(&json, "io-uring-splice");
    assert_eq!(u(sp, "zero_copy"), 2 * SIZE, "{sp:#}");
    assert_eq!((u(sp, "copied_to_user"), u(sp, "copied_from_user")), (0, 0));
    let spliced: Vec<_> = calls(sp)
        .into_iter()
        .filter(|(k, _, _)| k.starts_with("io_uring:SPLICE"))
        .collect();
    // The pipe holds at most pipe-max-size: more requests if it is small.
    let per_call = json["pipe_size"].as_u64().unwrap().min(CHUNK);
    let n = SIZE.div_ceil(per_call);
    assert_eq!(
        spliced,
        [
            row("io_uring:SPLICE/file->pipe", n, SIZE),
            row("io_uring:SPLICE/pipe->socket", n, SIZE),
        ],
        "{sp:#}"
    );
}

#[test]
fn a_subset_of_methods_another_chunk_and_the_median_of_runs() {
    if !require_root("lab::a_subset_of_methods_another_chunk_and_the_median_of_runs") {
        return;
    }
    let dir = TempDir::new("lab-subset");
    let work = TempDir::new("lab-subset-work");
    let out = dir.join("out");
    let (json, _) = ok_lab(
        &dir,
        &[
            "--size",
            "1M",
            "--chunk",
            "16K",
            "--runs",
            "2",
            "--methods",
            "splice,sendfile",
            "--dir",
            work.path().to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    );
    let size = 1u64 << 20;
    let chunks = size / (16 << 10);
    let names: Vec<&str> = json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["sendfile", "splice"],
        "table order, only those asked for"
    );
    let sf = method(&json, "sendfile");
    assert_eq!(u(sf, "syscalls"), chunks);
    assert_eq!(u(sf, "bytes_delivered"), size);
    assert_eq!(sf["runs"].as_array().unwrap().len(), 2);
    let sp = method(&json, "splice");
    assert_eq!(u(sp, "syscalls"), 2 * chunks);
    assert_eq!(u(sp, "zero_copy"), 2 * size);
    assert_eq!(sp["model"]["syscalls"].as_f64(), Some((2 * chunks) as f64));
    // -o DIR: lab.json there too (and the comparison chart).
    assert!(out.join("lab.json").is_file());
    // --dir: the lab's working directory inside it is gone afterwards.
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        0,
        "the lab left files in --dir"
    );
}

#[test]
fn an_unknown_method_is_a_usage_error() {
    // Checked before anything needs root.
    let dir = TempDir::new("lab-bad");
    let r = lab(&dir, &["--methods", "read-write,carrier-pigeon"]);
    assert_eq!(r.status.code(), Some(2), "stderr: {}", r.stderr);
    let errors: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("zc-trace: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{}", r.stderr);
    assert!(
        errors[0].contains("carrier-pigeon") && errors[0].contains("sendfile"),
        "{}",
        errors[0]
    );
    assert!(!r.stderr.contains("panicked"));
}

/// Issue 13: the README's first command ran `lab --json results/lab.json -o
/// results/lab` on a fresh clone, where `results/` does not exist, and
/// failed before measuring anything. Both outputs go into a missing
/// directory here, exactly as `cargo xtask run` asks.
#[test]
fn lab_outputs_into_a_missing_directory() {
    if !require_root("lab_outputs_into_a_missing_directory") {
        return;
    }
    let dir = TempDir::new("lab-fresh");
    let results = dir.join("results");
    let out = Command::new(tracer_bin())
        .args([
            "lab",
            "--size",
            "1M",
            "--chunk",
            "64K",
            "--methods",
            "read-write",
        ])
        .arg("--json")
        .arg(results.join("lab.json"))
        .arg("-o")
        .arg(results.join("lab"))
        .stdin(Stdio::null())
        .output()
        .expect("spawn zc-trace lab");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\nstderr:\n{stderr}", out.status);
    let json: Value =
        serde_json::from_slice(&std::fs::read(results.join("lab.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    assert!(
        results.join("lab/compare.png").exists(),
        "stderr:\n{stderr}"
    );
}
