//! The lab's results: per method, the measured figures beside the
//! textbook's, as JSON and as reports for the comparison chart.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use zc_trace_common::syscalls::{Class, shape};

use crate::model::bytes::ByteClass;
use crate::model::ledger::MODE_SWITCH_RULE;
use crate::model::report::{
    Bytes, ContextSwitches, Counts, PageFaults, Report, SyscallEntry, Target, Tool, Totals,
};

use super::{
    measure::{MIB, Sample, Timing, median_f64, median_i64},
    method::{Method, Model},
};

/// Relative tolerance before a measured figure is marked as disagreeing
/// with the textbook.
pub const TOLERANCE: f64 = 0.05;

/// One traced run of one method.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    /// The sender's counts minus the baseline's.
    pub sample: Sample,
    pub timing: Timing,
    /// Bytes that arrived intact: at the receiver, or in the copy for
    /// copy_file_range.
    pub delivered: u64,
    pub pid: u32,
    /// Records the probes could not keep (should be 0).
    pub dropped: u64,
}

/// One method's runs, summarised.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodResult {
    pub method: Method,
    pub runs: Vec<Run>,
    pub model: Model,
    /// The per-field median of the runs, negative differences shown as 0.
    pub measured: Sample,
    pub delivered: u64,
    pub mib_per_s: f64,
    pub cpu_ns_per_gib: f64,
    pub transfer_ns: u64,
    pub user_ns: u64,
    pub sys_ns: u64,
}

impl MethodResult {
    pub fn new(method: Method, runs: Vec<Run>, model: Model) -> Self {
        let samples: Vec<Sample> = runs.iter().map(|r| r.sample.clone()).collect();
        let measured = clamped(&Sample::median(&samples));
        let u = |f: fn(&Run) -> u64| median_i64(runs.iter().map(|r| f(r) as i64).collect()) as u64;
        Self {
            method,
            measured,
            delivered: u(|r| r.delivered),
            mib_per_s: median_f64(
                runs.iter()
                    .map(|r| r.timing.mib_per_s(r.delivered))
                    .collect(),
            ),
            cpu_ns_per_gib: median_f64(
                runs.iter()
                    .map(|r| r.timing.cpu_ns_per_gib(r.delivered))
                    .collect(),
            ),
            transfer_ns: u(|r| r.timing.transfer_ns),
            user_ns: u(|r| r.timing.user_ns),
            sys_ns: u(|r| r.timing.sys_ns),
            model,
            runs,
        }
    }

    /// The figures compared with the textbook, normalised by the bytes
    /// delivered.
    pub fn figures(&self, size: u64) -> Vec<Figure> {
        let m = &self.measured;
        let d = self.delivered.max(1) as f64;
        let s = size.max(1) as f64;
        let md = &self.model;
        let per_mib = |x: i64, e: f64| (x as f64 * MIB / d, e * MIB / s);
        let per_byte = |x: i64, e: f64| (x as f64 / d, e / s);
        // Near zero, a couple of events (a stray start-up fault) is noise,
        // not a disagreement.
        let count_slack = (2.0 * MIB / d).max(0.1);
        let fig = |key, name, unit, abs, (measured, model): (f64, f64)| Figure {
            key,
            name,
            unit,
            measured,
            model,
            disagrees: disagrees(measured, model, abs),
        };
        vec![
            fig(
                "syscalls",
                "syscalls",
                "/ MiB",
                count_slack,
                per_mib(m.syscalls, md.syscalls),
            ),
            fig(
                "mode_switches",
                "mode sw.",
                "/ MiB",
                count_slack,
                per_mib(m.mode_switches, md.mode_switches),
            ),
            fig(
                "copied",
                "CPU-copied",
                "B / B",
                0.01,
                per_byte(
                    m.bytes[ByteClass::CopiedToUser] + m.bytes[ByteClass::CopiedFromUser],
                    md.copied_to_user + md.copied_from_user,
                ),
            ),
            fig(
                "zero_copy",
                "zero-copy",
                "B / B",
                0.01,
                per_byte(m.bytes[ByteClass::ZeroCopy], md.zero_copy),
            ),
            fig(
                "page_faults",
                "faults",
                "/ MiB",
                count_slack,
                per_mib(m.page_faults(), md.page_faults),
            ),
        ]
    }

    /// JSON names of the figures that disagree with the textbook.
    pub fn disagreements(&self, size: u64) -> Vec<&'static str> {
        self.figures(size)
            .into_iter()
            .filter(|f| f.disagrees)
            .flat_map(|f| match f.key {
                "copied" => vec!["copied_to_user", "copied_from_user"],
                k => vec![k],
            })
            .filter(|k| match *k {
                // Name the direction that is off, not both.
                "copied_to_user" => off(
                    self.measured.bytes[ByteClass::CopiedToUser],
                    self.model.copied_to_user,
                    self.delivered,
                    size,
                ),
                "copied_from_user" => off(
                    self.measured.bytes[ByteClass::CopiedFromUser],
                    self.model.copied_from_user,
                    self.delivered,
                    size,
                ),
                _ => true,
            })
            .collect()
    }
}

fn off(measured: i64, model: f64, delivered: u64, size: u64) -> bool {
    disagrees(
        measured as f64 / delivered.max(1) as f64,
        model / size.max(1) as f64,
        0.01,
    )
}

/// A measured figure and the textbook's.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub measured: f64,
    pub model: f64,
    pub disagrees: bool,
}

/// Beyond the relative tolerance, plus `abs` for figures the model puts at
/// (or near) zero.
pub fn disagrees(measured: f64, model: f64, abs: f64) -> bool {
    (measured - model).abs() > TOLERANCE * model.abs() + abs
}

/// Differences below zero are start-up noise the baseline over-subtracted:
/// reported as zero.
pub fn clamped(s: &Sample) -> Sample {
    s.clamped()
}

/// Everything the lab found.
#[derive(Clone, Debug, PartialEq)]
pub struct LabResults {
    pub size: u64,
    pub chunk: u64,
    pub runs: u32,
    pub cold: bool,
    pub page_size: u64,
    /// The pipe size splice used.
    pub pipe_size: u64,
    /// The sender doing everything but the transfer (median of its runs).
    pub baseline: Sample,
    pub baseline_runs: u32,
    pub methods: Vec<MethodResult>,
    pub elapsed_ns: u64,
    pub notes: Vec<String>,
}

/// How the figures were made; printed under the table and kept in the JSON.
pub const BASELINE_NOTE: &str = "baseline subtracted: `zc-trace lab-sender noop` (the same sender: start-up, \
     buffer, open, pipe, connect, shutdown and wait, result file, exit; no transfer) is traced too, and its \
     median is subtracted from every count, byte total, page fault and context switch, row by row (syscall, fd kind); \
     senders run without address-space randomisation, so their start-up (and its page faults) is the same every run";

pub fn notes() -> Vec<String> {
    vec![
        BASELINE_NOTE.to_owned(),
        "only the sender is traced (same probes as `zc-trace -- CMD`); the receiver is a thread of zc-trace that \
         drains the loopback connection with 1 MiB reads and checks the byte count and a checksum"
            .to_owned(),
        "zero_copy = bytes returned by zero-copy calls per byte delivered: splice moves each byte twice \
         (file -> pipe, pipe -> socket), so 2"
            .to_owned(),
        format!(
            "mode switches are derived ({MODE_SWITCH_RULE}); the textbook also counts 2 per page fault, but \
             faults taken inside write() (kernel mode) are no extra mode switch"
        ),
        "in-kernel copies (page cache -> socket buffer, file -> file) are model values: a syscall tracer cannot \
         see them"
            .to_owned(),
        "mib_per_s and cpu: measured by the sender from its first transfer call until the receiver has drained \
         and closed (monotonic clock, getrusage user + sys)"
            .to_owned(),
        "copy-file-range copies file -> file (not to the socket): the odd one out, verified by reading the copy"
            .to_owned(),
    ]
}

fn model_json(m: &Model, size: u64) -> Value {
    let s = size.max(1) as f64;
    json!({
        "syscalls": m.syscalls,
        "mode_switches": m.mode_switches,
        "copied_to_user": m.copied_to_user,
        "copied_from_user": m.copied_from_user,
        "zero_copy": m.zero_copy,
        "mapped": m.mapped,
        "page_faults": m.page_faults,
        "context_switches": Value::Null,
        "mib_per_s": Value::Null,
        "in_kernel_copies": m.in_kernel_copies,
        "per_mib": {
            "syscalls": m.syscalls * MIB / s,
            "mode_switches": m.mode_switches * MIB / s,
            "page_faults": m.page_faults * MIB / s,
        },
        "per_byte": {
            "copied": (m.copied_to_user + m.copied_from_user) / s,
            "zero_copy": m.zero_copy / s,
            "in_kernel_copies": m.in_kernel_copies / s,
        },
        "note": m.note,
    })
}

fn calls_json(s: &Sample) -> Value {
    let map: serde_json::Map<String, Value> = s
        .calls
        .iter()
        .map(|(k, r)| (k.clone(), json!({"count": r.count, "bytes": r.bytes})))
        .collect();
    Value::Object(map)
}

fn sample_json(s: &Sample) -> Value {
    let mut v = json!({
        "syscalls": s.syscalls,
        "errors": s.errors,
        "mode_switches": s.mode_switches,
        "kernel_time_ns": s.kernel_ns,
        "on_cpu_time_ns": s.on_cpu_ns,
        "page_faults": s.page_faults(),
        "page_faults_detail": {"user": s.faults_user, "kernel": s.faults_kernel, "file": s.faults_file},
        "context_switches": s.context_switches(),
        "context_switches_detail": {"voluntary": s.cs_voluntary, "involuntary": s.cs_involuntary},
        "calls": calls_json(s),
    });
    // The bytes under the report's keys, one per class.
    for class in ByteClass::ALL {
        v[class.key()] = json!(s.bytes[class]);
    }
    v
}

pub fn to_json(r: &LabResults) -> Value {
    let methods: Vec<Value> = r
        .methods
        .iter()
        .map(|m| {
            let mut v = sample_json(&m.measured);
            let figures: serde_json::Map<String, Value> = m
                .figures(r.size)
                .iter()
                .map(|f| {
                    (
                        f.key.to_owned(),
                        json!({"unit": f.unit, "measured": f.measured, "model": f.model, "disagrees": f.disagrees}),
                    )
                })
                .collect();
            let extra = json!({
                "method": m.method.name(),
                "label": m.method.label(),
                "path": m.method.path(),
                "bytes_delivered": m.delivered,
                "mib_per_s": m.mib_per_s,
                "transfer_ns": m.transfer_ns,
                "cpu_user_ns": m.user_ns,
                "cpu_sys_ns": m.sys_ns,
                "cpu_ns_per_gib": m.cpu_ns_per_gib,
                "normalised": figures,
                "model": model_json(&m.model, r.size),
                "disagrees": m.disagreements(r.size),
                "runs": m.runs.iter().map(|run| {
                    let mut v = sample_json(&run.sample);
                    v["bytes_delivered"] = json!(run.delivered);
                    v["bytes_sent"] = json!(run.timing.sent);
                    v["transfer_ns"] = json!(run.timing.transfer_ns);
                    v["cpu_user_ns"] = json!(run.timing.user_ns);
                    v["cpu_sys_ns"] = json!(run.timing.sys_ns);
                    v["mib_per_s"] = json!(run.timing.mib_per_s(run.delivered));
                    v["pid"] = json!(run.pid);
                    v["dropped"] = json!(run.dropped);
                    v
                }).collect::<Vec<_>>(),
            });
            if let (Value::Object(a), Value::Object(b)) = (&mut v, extra) {
                a.extend(b);
            }
            v
        })
        .collect();
    json!({
        "schema_version": 1,
        "tool": {"name": "zc-trace lab", "version": env!("CARGO_PKG_VERSION")},
        "size": r.size,
        "chunk": r.chunk,
        "runs": r.runs,
        "cold": r.cold,
        "page_size": r.page_size,
        "pipe_size": r.pipe_size,
        "tolerance": TOLERANCE,
        "elapsed_ns": r.elapsed_ns,
        "baseline": {
            "method": "noop",
            "runs": r.baseline_runs,
            "subtracted": true,
            "measured": sample_json(&r.baseline),
        },
        "methods": methods,
        "notes": r.notes,
    })
}

/// Each method's median as a report, labelled with the method, for the
/// comparison chart.
pub fn chart_runs(r: &LabResults) -> Vec<(String, Report)> {
    r.methods
        .iter()
        .map(|m| (m.method.label().to_owned(), as_report(m)))
        .collect()
}

fn as_report(m: &MethodResult) -> Report {
    let s = &m.measured;
    let mut syscalls: BTreeMap<String, SyscallEntry> = BTreeMap::new();
    for (key, row) in &s.calls {
        let (name, kind) = key.split_once('/').unwrap_or((key.as_str(), "none"));
        let c = Counts {
            count: row.count.max(0) as u64,
            bytes: row.bytes.max(0) as u64,
            ..Default::default()
        };
        let e = syscalls
            .entry(name.to_owned())
            .or_insert_with(|| SyscallEntry {
                nr: crate::lab::syscall_nr(name),
                class: class_of(name),
                ..Default::default()
            });
        e.counts += c;
        e.by_fd_kind.insert(kind.to_owned(), c);
    }
    let u = |v: i64| v.max(0) as u64;
    Report {
        schema_version: crate::model::report::SCHEMA_VERSION,
        tool: Tool {
            name: "zc-trace".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        target: Target {
            mode: "wrap".into(),
            command: Some(vec!["lab-sender".into(), m.method.name().into()]),
            pid: m.runs.last().map_or(0, |r| r.pid),
            exit_code: Some(0),
            follow_forks: true,
            label: None,
            comm: None,
            ..Default::default()
        },
        duration_ns: m.transfer_ns,
        syscalls,
        totals: Totals {
            syscalls: u(s.syscalls),
            errors: u(s.errors),
            time_ns: u(s.kernel_ns),
            on_cpu_ns: u(s.on_cpu_ns),
            mode_switches: u(s.mode_switches),
            context_switches: ContextSwitches {
                voluntary: u(s.cs_voluntary),
                involuntary: u(s.cs_involuntary),
            },
            page_faults: PageFaults {
                user: u(s.faults_user),
                kernel: u(s.faults_kernel),
                file: u(s.faults_file),
                ..Default::default()
            },
            bytes: bytes_of(s),
            ..Default::default()
        },
        notes: vec![
            BASELINE_NOTE.to_owned(),
            format!("median of {} runs", m.runs.len()),
        ],
        ..Default::default()
    }
}

/// A sample's bytes as the report's (a class below zero as none).
fn bytes_of(s: &Sample) -> Bytes {
    let mut b = Bytes::default();
    for class in ByteClass::ALL {
        *b.get_mut(class) = s.bytes[class].max(0) as u64;
    }
    b
}

/// The tracer's class of syscall `name` (other for a name it does not know).
fn class_of(name: &str) -> Class {
    name.parse::<syscalls::Sysno>()
        .map_or(Class::Other, |s| shape(s.id() as u32).class)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lab::measure::Row;

    const SIZE: u64 = 4 << 20;
    const CHUNK: u64 = 64 << 10;

    /// A read+write run exactly as the textbook has it, plus a few faults.
    pub(crate) fn read_write_run() -> Run {
        let mut s = Sample::default();
        s.calls.insert(
            "read/file".into(),
            Row {
                count: 64,
                bytes: SIZE as i64,
            },
        );
        s.calls.insert(
            "write/socket".into(),
            Row {
                count: 64,
                bytes: SIZE as i64,
            },
        );
        s.syscalls = 128;
        s.mode_switches = 256;
        s.bytes[ByteClass::CopiedToUser] = SIZE as i64;
        s.bytes[ByteClass::CopiedFromUser] = SIZE as i64;
        s.faults_kernel = 16;
        s.cs_voluntary = 40;
        Run {
            sample: s,
            timing: Timing {
                sent: SIZE,
                transfer_ns: 4_000_000,
                user_ns: 1_000_000,
                sys_ns: 3_000_000,
            },
            delivered: SIZE,
            pid: 42,
            dropped: 0,
        }
    }

    pub(crate) fn results() -> LabResults {
        let rw = MethodResult::new(
            Method::ReadWrite,
            vec![read_write_run()],
            Method::ReadWrite.model(SIZE, CHUNK, 4096, 1 << 20),
        );
        let mut sf_run = read_write_run();
        sf_run.sample.calls.clear();
        sf_run.sample.calls.insert(
            "sendfile/file->socket".into(),
            Row {
                count: 64,
                bytes: SIZE as i64,
            },
        );
        sf_run.sample.syscalls = 64;
        sf_run.sample.mode_switches = 128;
        sf_run.sample.bytes[ByteClass::CopiedToUser] = 0;
        sf_run.sample.bytes[ByteClass::CopiedFromUser] = 0;
        sf_run.sample.bytes[ByteClass::ZeroCopy] = SIZE as i64;
        sf_run.sample.faults_kernel = 0;
        let sf = MethodResult::new(
            Method::Sendfile,
            vec![sf_run],
            Method::Sendfile.model(SIZE, CHUNK, 4096, 1 << 20),
        );
        LabResults {
            size: SIZE,
            chunk: CHUNK,
            runs: 1,
            cold: false,
            page_size: 4096,
            pipe_size: 1 << 20,
            baseline: Sample::default(),
            baseline_runs: 1,
            methods: vec![rw, sf],
            elapsed_ns: 1_000_000_000,
            notes: notes(),
        }
    }

    #[test]
    fn figures_against_the_textbook() {
        let r = results();
        let rw = &r.methods[0];
        let f = rw.figures(SIZE);
        let get = |k: &str| f.iter().find(|x| x.key == k).unwrap().clone();
        assert_eq!(get("syscalls").measured, 32.0);
        assert_eq!(get("syscalls").model, 32.0);
        assert!(!get("syscalls").disagrees);
        assert_eq!(get("copied").measured, 2.0);
        assert!(!get("copied").disagrees);
        // 16 faults in 4 MiB: 4 per MiB where the textbook says none.
        assert_eq!(get("page_faults").measured, 4.0);
        assert!(get("page_faults").disagrees);
        assert_eq!(rw.disagreements(SIZE), ["page_faults"]);
        assert!(
            r.methods[1].disagreements(SIZE).is_empty(),
            "{:?}",
            r.methods[1].figures(SIZE)
        );
    }

    #[test]
    fn the_lab_classes_syscalls_as_the_tracer_does() {
        assert_eq!(class_of("read"), Class::CopyToUser);
        assert_eq!(class_of("sendmmsg"), Class::CopyFromUser);
        assert_eq!(class_of("splice"), Class::ZeroCopy);
        for name in ["mmap", "munmap", "mremap", "msync", "madvise"] {
            assert_eq!(class_of(name), Class::Mapping, "{name}");
        }
        assert_eq!(class_of("io_uring_enter"), Class::Other);
        assert_eq!(class_of("syscall_999"), Class::Other);
    }

    #[test]
    fn tolerance() {
        assert!(!disagrees(32.0, 32.0, 0.1));
        assert!(!disagrees(33.5, 32.0, 0.1), "within 5%");
        assert!(disagrees(34.0, 32.0, 0.1));
        assert!(!disagrees(0.05, 0.0, 0.1), "near zero: absolute slack");
        assert!(disagrees(0.5, 0.0, 0.1));
    }

    #[test]
    fn negative_differences_report_as_zero() {
        let s = Sample {
            faults_user: -3,
            syscalls: 5,
            ..Default::default()
        };
        let c = clamped(&s);
        assert_eq!((c.faults_user, c.syscalls), (0, 5));
    }

    #[test]
    fn json_has_the_issue_fields() {
        let v = to_json(&results());
        assert_eq!(v["schema_version"], 1);
        assert_eq!(v["size"], SIZE);
        let m = &v["methods"][0];
        for f in [
            "method",
            "bytes_delivered",
            "syscalls",
            "mode_switches",
            "copied_to_user",
            "copied_from_user",
            "zero_copy",
            "page_faults",
            "context_switches",
            "mib_per_s",
        ] {
            assert!(!m[f].is_null(), "{f} missing: {m}");
        }
        assert_eq!(m["method"], "read-write");
        assert_eq!(m["syscalls"], 128);
        assert_eq!(m["model"]["syscalls"], 128.0);
        assert_eq!(m["calls"]["read/file"]["count"], 64);
        assert_eq!(m["mib_per_s"], 1000.0);
        assert_eq!(m["disagrees"], json!(["page_faults"]));
        assert_eq!(v["methods"][1]["zero_copy"], SIZE);
        assert_eq!(v["baseline"]["subtracted"], true);
    }

    /// A method's bytes are under the report's keys, every class of the
    /// ledger (device and direct_io were left out before there was one
    /// list of classes).
    #[test]
    fn json_has_every_byte_class_of_the_report() {
        let v = to_json(&results());
        for class in ByteClass::ALL {
            for m in [
                &v["methods"][0],
                &v["methods"][0]["runs"][0],
                &v["baseline"]["measured"],
            ] {
                assert!(m[class.key()].is_i64(), "{} missing: {m}", class.key());
            }
        }
        assert_eq!(v["methods"][1]["zero_copy"], SIZE);
        assert_eq!(chart_runs(&results())[1].1.totals.bytes.zero_copy, SIZE);
    }

    #[test]
    fn chart_reports_carry_the_medians() {
        let runs = chart_runs(&results());
        assert_eq!(runs[0].0, "read+write");
        let r = &runs[0].1;
        assert_eq!(r.totals.syscalls, 128);
        assert_eq!(r.syscalls["read"].by_fd_kind["file"].count, 64);
        assert_eq!(r.syscalls["read"].class, "copy_to_user");
        assert_eq!(r.syscalls["read"].counts.bytes, SIZE);
        assert_eq!(runs[1].1.syscalls["sendfile"].class, "zero_copy");
    }
}
