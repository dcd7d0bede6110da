//! Loading the embedded eBPF object and attaching its programs, from a
//! table: a hook the kernel lacks is an error when the run cannot do
//! without it, and a warning naming what the report will miss otherwise.

use anyhow::Result;
use aya::{Btf, Ebpf, EbpfLoader, maps::ProgramArray, programs::BtfTracePoint};
use zc_trace_common::{PIDS_PER_SLOT, ProcCounters, SyscallStats, latency, limits, totals};

use crate::{btf::KernelOffsets, error::failure};

mod kfunc;

struct Hook {
    /// The BTF tracepoint, and the program attached to it: every probe is
    /// named after its tracepoint.
    program: &'static str,
    /// What the report lacks without it; None if the run is pointless.
    optional: Option<&'static str>,
}

const HOOKS: &[Hook] = &[
    Hook {
        program: "sys_enter",
        optional: None,
    },
    Hook {
        program: "sys_exit",
        optional: None,
    },
    Hook {
        program: "sched_process_fork",
        optional: Some("children will not be followed"),
    },
    Hook {
        program: "sched_process_exit",
        optional: Some("exit/exit_group calls will not be counted"),
    },
    Hook {
        program: "sched_process_exec",
        optional: Some("process names will not follow exec"),
    },
    Hook {
        program: "sched_switch",
        optional: Some("context switches will read 0"),
    },
    Hook {
        program: "page_fault_user",
        optional: Some("user-mode page faults will read 0"),
    },
    Hook {
        program: "page_fault_kernel",
        optional: Some("kernel-mode page faults will read 0"),
    },
    Hook {
        program: "mm_filemap_fault",
        optional: Some("file-backed page faults will read 0"),
    },
    Hook {
        program: "mm_filemap_add_to_page_cache",
        optional: Some("disk_read will read 0"),
    },
    Hook {
        program: "mm_page_alloc",
        optional: Some("cow_copied will read 0"),
    },
    Hook {
        program: "io_uring_complete",
        optional: Some(URING_MISSING),
    },
    Hook {
        program: "io_uring_cqe_overflow",
        optional: Some("io_uring completions lost to a full ring will not be reported"),
    },
];

/// What a run without the io_uring hooks lacks.
const URING_MISSING: &str = "io_uring requests will not be counted (io_uring_enter still is)";

/// The loaded probes; dropping this detaches everything.
pub struct Probes {
    pub ebpf: Ebpf,
    /// What this run lacks, one line per missing optional hook.
    pub missing: Vec<String>,
    pub rows: Rows,
}

/// Rows the per-process maps were given (`per_cpu_rows`).
#[derive(Clone, Copy, Debug)]
pub struct Rows {
    /// STATS: syscall rows.
    pub stats: u32,
    /// PROC_EVENTS: one row per process.
    pub processes: u32,
}

impl Rows {
    fn on(cpus: u32) -> Self {
        Self {
            stats: per_cpu_rows::<SyscallStats>(limits::MAX_STATS, cpus),
            processes: per_cpu_rows::<ProcCounters>(limits::MAX_TARGETS, cpus),
        }
    }
}

/// The rows a preallocated per-CPU map of at most `max` rows of `V` gets
/// on `cpus` CPUs: as many as fit in PER_CPU_MAP_BYTES (the kernel
/// allocates every row on every CPU when the map is created), at least
/// 1,024.
fn per_cpu_rows<V>(max: u32, cpus: u32) -> u32 {
    // The kernel rounds each CPU's value up to 8 bytes.
    let row = size_of::<V>().next_multiple_of(8) as u64 * u64::from(cpus.max(1));
    (limits::PER_CPU_MAP_BYTES / row)
        .min(u64::from(max))
        .max(1024.min(u64::from(max))) as u32
}

impl Probes {
    /// Run count and run time of every attached program so far (they grow
    /// only while BPF run-time statistics are on: see bpf_stats.rs).
    pub fn cost(&self) -> crate::model::report::Cost {
        let mut cost = crate::model::report::Cost::default();
        for (name, program) in self.ebpf.programs() {
            let Ok(info) = program.info() else { continue };
            let (events, run_time_ns) = (info.run_count(), info.run_time().as_nanos() as u64);
            cost.bpf_events += events;
            cost.bpf_run_time_ns += run_time_ns;
            cost.programs.push(crate::model::report::ProgramCost {
                program: name.to_owned(),
                events,
                run_time_ns,
            });
        }
        cost.programs
            .sort_by_key(|p| std::cmp::Reverse(p.run_time_ns));
        cost
    }
}

/// What the probes are set up to do.
pub struct LoadOptions {
    /// Who is counted: `zc_trace_common::scope`.
    pub scope: u32,
    /// With scope CGROUP: the cgroup.
    pub cgroup: Option<crate::cgroup::Traced>,
    pub follow_forks: bool,
    /// Time each syscall (attaches sys_enter: a second program run per call).
    pub timed: bool,
    pub offsets: KernelOffsets,
}

/// Array sizes from the running kernel's pid_max: every pid gets a filter
/// byte and (up to MAX_INFLIGHT) its own in-flight slot.
fn pid_max() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4 << 20)
}

pub fn load(opts: &LoadOptions) -> Result<Probes> {
    let follow = opts.follow_forks as u32;
    let timed = opts.timed as u32;
    let pid_max = pid_max().clamp(PIDS_PER_SLOT, 4 << 20);
    let target_slots = pid_max.div_ceil(PIDS_PER_SLOT);
    let inflight_slots = pid_max.next_power_of_two().min(limits::MAX_INFLIGHT);
    let inflight_mask = inflight_slots - 1;
    // ZC_TRACE_TEST_COW_SLOTS=N lets the tests make threads share slots,
    // which on this machine's pid_max they never do.
    let cow_slots = std::env::var("ZC_TRACE_TEST_COW_SLOTS")
        .ok()
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(pid_max)
        .next_power_of_two()
        .min(limits::MAX_COW_SLOTS);
    let cow_mask = cow_slots - 1;
    let o = &opts.offsets;
    let u = o.uring.unwrap_or_default();
    let (cgroup_id, cgroup_level) = opts.cgroup.as_ref().map_or((0, 0), |c| (c.id, c.level));
    let self_tgid = std::process::id();
    // TOTALS, TOTALS_SEEN and EVENT_TOTALS are laid out per CPU by hand (to be mapped
    // into memory): one part per possible CPU.
    let cpus = aya::util::nr_cpus()
        .map_err(|(what, e)| failure(1, format!("cannot count the possible CPUs ({what}: {e})")))?
        as u32;
    // ZC_TRACE_TEST_MISSING_HOOK=NAME makes the tests see a kernel without
    // tracepoint (or kfunc) NAME, the one failure they cannot cause for real.
    let pretend_missing = std::env::var("ZC_TRACE_TEST_MISSING_HOOK").unwrap_or_default();
    let kfuncs = if pretend_missing == "bpf_rdonly_cast" {
        Default::default()
    } else {
        o.kfuncs
    };
    let object = kfunc::linked(kfuncs.rdonly_cast).map_err(|e| {
        failure(
            1,
            format!("zc-trace's embedded eBPF object is damaged ({e}): rebuild zc-trace"),
        )
    })?;
    let rows = Rows::on(cpus);
    // EbpfLoader::new() parses the kernel's BTF itself (~17 MiB in memory);
    // it is dropped with the loader, before the attach step parses its own
    // copy, so the two are never alive together (peak RSS).
    let mut ebpf = EbpfLoader::new()
        .override_global("FOLLOW_FORKS", &follow, true)
        .override_global("SCOPE", &opts.scope, true)
        .override_global("CGROUP_ID", &cgroup_id, true)
        .override_global("CGROUP_LEVEL", &cgroup_level, true)
        .override_global("SELF_TGID", &self_tgid, true)
        .override_global("NR_CPUS", &cpus, true)
        .override_global("TIMED", &timed, true)
        .override_global("INFLIGHT_MASK", &inflight_mask, true)
        .override_global("COW_MASK", &cow_mask, true)
        .override_global("BTF_FILE", &kfuncs.file, true)
        .override_global("BTF_KIOCB", &kfuncs.kiocb, true)
        .override_global("OFF_TASK_FILES", &o.task_files, true)
        .override_global("OFF_TASK_TGID", &o.task_tgid, true)
        .override_global("OFF_TASK_PID", &o.task_pid, true)
        .override_global("OFF_TASK_UTIME", &o.task_utime, true)
        .override_global("OFF_TASK_STIME", &o.task_stime, true)
        .override_global("OFF_TASK_RUNTIME", &o.task_runtime, true)
        .override_global("OFF_FILES_FDT", &o.files_fdt, true)
        .override_global("OFF_FDT_MAX_FDS", &o.fdt_max_fds, true)
        .override_global("OFF_FDT_FD", &o.fdt_fd, true)
        .override_global("OFF_FILE_INODE", &o.file_inode, true)
        .override_global("OFF_INODE_MODE", &o.inode_mode, true)
        .override_global("OFF_FILE_FLAGS", &o.file_flags, true)
        .override_global("OFF_TASK_MIN_FLT", &o.task_min_flt, true)
        .override_global("OFF_TASK_MAJ_FLT", &o.task_maj_flt, true)
        .override_global("OFF_TASK_FLAGS", &o.task_flags, true)
        .override_global("OFF_FOLIO_FLAGS", &o.folio_flags, true)
        .override_global("OFF_FOLIO_NR_PAGES", &o.folio_nr_pages, true)
        .override_global("PG_HEAD", &o.pg_head, true)
        .override_global("OFF_FILE_MAPPING", &o.file_mapping, true)
        .override_global("OFF_FOLIO_MAPPING", &o.folio_mapping, true)
        .override_global("OFF_FILE_PRIVATE", &o.file_private, true)
        .override_global("OFF_SOCKET_SK", &o.socket_sk, true)
        .override_global("OFF_SOCK_FLAGS", &o.sock_flags, true)
        .override_global("OFF_SOCK_ZCKEY", &o.sock_zckey, true)
        .override_global("SOCK_ZEROCOPY", &o.sock_zerocopy, true)
        .override_global("GFP_COW", &o.gfp_cow, true)
        .override_global("GFP_COW_MASK", &o.gfp_cow_mask, true)
        .override_global("OFF_REQ_FILE", &u.req_file, true)
        .override_global("OFF_REQ_OPCODE", &u.req_opcode, true)
        .override_global("OFF_REQ_TCTX", &u.req_tctx, true)
        .override_global("OFF_TCTX_TASK", &u.tctx_task, true)
        .override_global("OFF_SPLICE_FD_IN", &u.splice_fd_in, true)
        .override_global("OFF_SPLICE_FLAGS", &u.splice_flags, true)
        .override_global("OFF_NOTIF_ZC_REPORT", &u.notif_zc_report, true)
        .map_max_entries("TARGET_SLOTS", target_slots)
        .map_max_entries("TOTALS", totals::SLOTS * cpus)
        .map_max_entries("TOTALS_SEEN", totals::SEEN_WORDS * cpus)
        .map_max_entries("EVENT_TOTALS", cpus)
        .map_max_entries("STATS", rows.stats)
        .map_max_entries("PROC_EVENTS", rows.processes)
        .map_max_entries("ROW_KEYS", rows.processes)
        .map_max_entries("INFLIGHT", if opts.timed { inflight_slots } else { 1 })
        .map_max_entries("COW_CANDIDATES", cow_slots)
        // Only timed calls have a bucket; per-CPU memory is slow to get.
        .map_max_entries("LATENCY", if opts.timed { latency::SLOTS } else { 1 })
        .load(object.bytes())
        .map_err(|e| {
            failure(
                1,
                format!("the kernel refused zc-trace's eBPF maps: {e}: check `ulimit -l` and that BPF is enabled (CONFIG_BPF_SYSCALL)"),
            )
        })?;
    // aya keeps copies of what it needs: another load may link it now.
    drop(object);

    let btf = Btf::from_sys_fs().map_err(|e| {
        failure(
            1,
            format!("cannot read the kernel's BTF: {e}: zc-trace needs /sys/kernel/btf/vmlinux"),
        )
    })?;

    install_detail(&mut ebpf, &btf).map_err(|e| {
        failure(
            1,
            format!("the kernel refused zc-trace's sys_exit_detail probe ({e}): a kernel with BTF tracepoints, tail calls, bpf_loop and bpf_map_lookup_percpu_elem (5.19+) is required"),
        )
    })?;

    let mut missing = Vec::new();
    for hook in HOOKS {
        if hook.program == "sys_enter" && !opts.timed {
            continue;
        }
        let attached = if hook.program == pretend_missing {
            Err("no such BTF tracepoint (simulated)".to_owned())
        } else if hook.program == "io_uring_complete" && o.uring.is_none() {
            Err("io_kiocb is not in the kernel's BTF".to_owned())
        } else {
            attach(&mut ebpf, &btf, hook)
        };
        if let Err(e) = attached {
            match hook.optional {
                None => {
                    return Err(failure(
                        1,
                        format!(
                            "this kernel lacks the {} tracepoint zc-trace needs ({e}): a kernel with BTF tracepoints (5.5+) is required",
                            hook.program
                        ),
                    ));
                }
                Some(consequence) => missing.push(format!(
                    "kernel lacks the {} tracepoint ({e}): {consequence}",
                    hook.program
                )),
            }
        }
    }
    if o.file_inode != 0 && kfuncs.rdonly_cast == 0 {
        missing.push(
            "kernel lacks the kfunc bpf_rdonly_cast (Linux 6.2+) or struct kiocb in its BTF: fd kinds will show as unknown".to_owned(),
        );
    }
    drop(btf);
    give_back_heap();
    Ok(Probes {
        ebpf,
        missing,
        rows,
    })
}

/// Returns the heap the BTF parses left free to the kernel: glibc keeps
/// freed memory below the top of its heap, ~17 MiB here, which would stay
/// in the tracer's RSS all run and add to its peak as the maps' pages are
/// touched.
fn give_back_heap() {
    // SAFETY: malloc_trim only releases free memory.
    #[cfg(target_env = "gnu")]
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Loads sys_exit_detail (the sys_exit of the calls with a detail to
/// read) into the slot sys_exit tail-calls; loaded, not attached.
fn install_detail(ebpf: &mut Ebpf, btf: &Btf) -> Result<(), String> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut("sys_exit_detail")
        .ok_or("program missing from the object")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    program
        .load("sys_exit", btf)
        .map_err(|e| verifier_error(&e))?;
    let fd = program
        .fd()
        .map_err(|e| format!("{e}"))?
        .try_clone()
        .map_err(|e| format!("{e}"))?;
    let mut slots: ProgramArray<_> = ebpf
        .map_mut("DETAIL")
        .ok_or("map DETAIL missing from the object")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    slots.set(0, &fd, 0).map_err(|e| format!("{e}"))
}

fn attach(ebpf: &mut Ebpf, btf: &Btf, hook: &Hook) -> Result<(), String> {
    let program: &mut BtfTracePoint = ebpf
        .program_mut(hook.program)
        .ok_or("program missing from the object")?
        .try_into()
        .map_err(|e| format!("{e}"))?;
    program
        .load(hook.program, btf)
        .map_err(|e| verifier_error(&e))?;
    program.attach().map_err(|e| format!("{e}"))?;
    Ok(())
}

/// aya's load error carries the whole verifier log; a one-line error keeps
/// the syscall's error and the verifier's last complaint.
fn verifier_error(e: &aya::programs::ProgramError) -> String {
    match e {
        aya::programs::ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let log = verifier_log.to_string();
            // For whoever changes a probe: the whole log, which names the
            // instruction the verifier stopped at.
            if std::env::var_os("ZC_TRACE_VERIFIER_LOG").is_some() {
                eprintln!("{log}");
            }
            let complaint = log
                .lines()
                .rev()
                .map(str::trim)
                .find(|l| {
                    !l.is_empty()
                        && !l.starts_with("processed")
                        && !l.starts_with("verification time")
                        && !l.starts_with("stack depth")
                })
                .unwrap_or("no verifier output");
            format!("the verifier rejected it: {io_error}: {complaint}")
        }
        other => other.to_string(),
    }
}
