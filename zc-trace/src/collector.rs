//! The only code that touches the maps: registers targets, reads the exact
//! all-process totals for the timeline, files the processes that exited
//! (their exit probe sends their rows, folded out of the per-process maps,
//! in its exit record; a process it could not fold is folded here with a
//! scan of the maps), and at the end reads everything into `Counters`.
//!
//! Every map read is a batch (one bpf() call per few thousand rows), so
//! the collector's CPU does not grow with the number of processes.

mod batch;
mod fold_schedule;
mod mapped;
mod processes;
mod wakeups;

use std::{
    collections::{BTreeMap, HashMap as Table},
    ops::AddAssign,
    time::Instant,
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Pod,
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray, PerCpuHashMap, RingBuf},
};
use zc_trace_common::{
    ExitRecord, Exited, FoldedRow, PIDS_PER_SLOT, ProcCounters, ProcInfo, RowKeys, SyscallKey,
    SyscallStats, TargetSlot, fold, latency, totals,
};

use crate::{
    loader::Probes,
    model::{Counters, ProcIdentity, ProcessCounters},
    target,
    task_accounting::{self, TaskFigures},
};

use fold_schedule::FoldSchedule;
use mapped::Mapped;
use processes::{Processes, add_rows};
use wakeups::WakeMaps;
pub use wakeups::Wakeups;

pub struct Collector {
    target_slots: Array<MapData, TargetSlot>,
    targets: HashMap<MapData, u32, u32>,
    procs: HashMap<MapData, u32, ProcInfo>,
    totals: Mapped<SyscallStats>,
    /// Which slots of `totals` each CPU has written.
    totals_seen: Mapped<u64>,
    stats: PerCpuHashMap<MapData, SyscallKey, SyscallStats>,
    event_totals: Mapped<ProcCounters>,
    proc_events: PerCpuHashMap<MapData, u32, ProcCounters>,
    /// The probes' lists of each process's rows (only deleted here).
    row_keys: HashMap<MapData, u32, RowKeys>,
    /// Slot 0 set before the last read (see `finish`).
    finishing: Array<MapData, u32>,
    exits: RingBuf<MapData>,
    /// The probes' wakeup of a collector that backed off, until the trace
    /// loop takes it (see `wakeups`).
    wake_maps: Option<WakeMaps>,
    drops: PerCpuArray<MapData, u64>,
    latency: PerCpuArray<MapData, u64>,
    /// Values per key of a per-CPU map: the possible CPUs.
    cpus: usize,
    /// Processes that exited and whose rows are still in the maps.
    exited: Names,
    fold_schedule: FoldSchedule,
    /// A traced process found alive at the last look (see `any_target_alive`).
    alive_hint: Option<target::PidFd>,
    /// The per-process detail folded out of the maps so far.
    folded: Processes,
    /// Calls whose numbers have no slot in the totals array, summed from
    /// the folded rows (the only record of them).
    beyond_totals: Vec<(SyscallKey, SyscallStats)>,
    /// The cgroup v2 mount, when processes are reported by cgroup.
    cgroup_root: Option<std::path::PathBuf>,
    /// With `keep_live`: each process's identity as first seen, until it
    /// is folded.
    first_seen: Option<BTreeMap<u32, ProcIdentity>>,
    /// With `keep_live`: processes folded since `drain_folded`.
    just_folded: Option<Vec<ProcessCounters>>,
    /// Task accounting (faults, CPU time) of processes alive when tracing
    /// began, taken off as each is folded (see `settle_accounting`).
    accounting_at_start: BTreeMap<u32, TaskFigures>,
    /// The folded processes' task accounting as the probes counted it, and
    /// as settled: the all-process totals are corrected by the difference.
    accounting_counted: TaskFigures,
    accounting_settled: TaskFigures,
    /// How exited processes were folded so far.
    folds: crate::model::report::Folds,
}

/// Processes by pid, with their names: a hash table, looked up once per
/// row a fold reads (a B-tree's search was most of the collector's own
/// time with short-lived processes).
type Names = Table<u32, ProcIdentity>;

/// What one scan of the per-process maps found.
struct Scan {
    /// The chosen processes' rows, summed over CPUs, by pid ...
    found: Vec<(u32, ProcessCounters)>,
    /// ... and the keys they were read under.
    stats_keys: Vec<SyscallKey>,
    event_keys: Vec<u32>,
    /// Rows read, chosen or not.
    stats_rows: usize,
    event_rows: usize,
}

fn take<T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>>(
    probes: &mut Probes,
    name: &str,
) -> Result<T> {
    let map = probes
        .ebpf
        .take_map(name)
        .ok_or_else(|| anyhow!("map {name} missing from the eBPF object"))?;
    T::try_from(map).with_context(|| format!("map {name}"))
}

/// The values of mmapable array `name`, mapped into memory.
fn map_values<V: Pod>(probes: &mut Probes, name: &str, len: usize) -> Result<Mapped<V>> {
    let map: Array<MapData, V> = take(probes, name)?;
    Mapped::new(map.map(), len).with_context(|| {
        format!("cannot map {name} into memory: zc-trace needs Linux 5.5+ (BPF_F_MMAPABLE)")
    })
}

/// Each index's value of a per-CPU array, summed over CPUs.
fn sum_per_cpu<V: Pod + Default + AddAssign>(map: &MapData, cpus: usize) -> Vec<V> {
    let mut out = Vec::new();
    let read = batch::for_each::<u32, V>(map, cpus, |_, values| {
        out.extend(values.chunks(cpus).map(|per_cpu| {
            let mut sum = V::default();
            for v in per_cpu {
                sum += *v;
            }
            sum
        }));
    });
    // A failed read leaves zeros, as a failed lookup did: the map exists,
    // so this does not happen short of memory exhaustion.
    if read.is_err() {
        out.clear();
    }
    out
}

/// Waits until every BPF program run that started before now is over:
/// MEMBARRIER_CMD_GLOBAL waits for an RCU grace period (synchronize_rcu).
fn wait_for_probe_runs() {
    const MEMBARRIER_CMD_GLOBAL: libc::c_long = 1;
    // SAFETY: membarrier takes no pointers. If it fails (no CONFIG_MEMBARRIER)
    // the short sleep covers a probe run, which lasts microseconds.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) };
    if r != 0 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// An exit record as the probe sent it (see `ExitRecord`).
struct ExitAnnounced {
    exited: Exited,
    /// The process's rows and counters, when the probe folded it.
    process: Option<ProcessCounters>,
}

/// Reads one record of the EXITS ring; None if it is too short to be one.
fn exit_record(bytes: &[u8]) -> Option<ExitAnnounced> {
    let header = std::mem::offset_of!(ExitRecord, events);
    let (exited, folded, rows): (Exited, u32, u32) = (
        read_at(bytes, 0)?,
        read_at(bytes, std::mem::offset_of!(ExitRecord, folded))?,
        read_at(bytes, std::mem::offset_of!(ExitRecord, rows))?,
    );
    if folded == 0 {
        return Some(ExitAnnounced {
            exited,
            process: None,
        });
    }
    if rows > fold::MAX_ROWS {
        return None;
    }
    let events = read_at(bytes, header)?;
    let first = fold::HEADER_BYTES as usize;
    // Sized once: collecting into an Option<Vec> grows it by reallocation.
    let mut syscalls = Vec::with_capacity(rows as usize);
    for i in 0..rows as usize {
        let row: FoldedRow = read_at(bytes, first + i * fold::ROW_BYTES as usize)?;
        let key = SyscallKey {
            tgid: exited.tgid,
            nr: row.nr,
            dst_kind: row.dst_kind,
            src_kind: row.src_kind,
            _pad: [0; 6],
        };
        syscalls.push((key, row.stats));
    }
    Some(ExitAnnounced {
        exited,
        process: Some(ProcessCounters {
            pid: exited.tgid,
            syscalls,
            events,
            ..Default::default()
        }),
    })
}

/// The `T` at byte `at` of a ring record, if the record holds it.
fn read_at<T: Pod>(bytes: &[u8], at: usize) -> Option<T> {
    let field = bytes.get(at..at.checked_add(std::mem::size_of::<T>())?)?;
    // SAFETY: `field` holds size_of::<T>() bytes and T is Pod (valid for
    // any bytes); read_unaligned because the ring aligns records to 8
    // bytes only by convention.
    Some(unsafe { std::ptr::read_unaligned(field.as_ptr().cast()) })
}

/// The name and parent the probes recorded.
fn identity(info: &ProcInfo) -> ProcIdentity {
    let end = info
        .comm
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(info.comm.len());
    ProcIdentity {
        ppid: info.ppid,
        comm: String::from_utf8_lossy(&info.comm[..end]).into_owned(),
        cgroup: 0,
    }
}

impl Collector {
    /// Reports processes by cgroup too (--cgroup, -a): each live one's is
    /// read from /proc when it is folded, an exited one's came with its exit.
    pub fn sum_by_cgroup(&mut self) {
        self.cgroup_root = crate::cgroup::v2_root();
        if self.cgroup_root.is_some() {
            self.folded = Processes::by_cgroup();
        }
    }

    pub fn new(probes: &mut Probes) -> Result<Self> {
        let cpus = aya::util::nr_cpus()
            .map_err(|(what, e)| anyhow!("cannot count the possible CPUs ({what}: {e})"))?;
        Ok(Self {
            target_slots: take(probes, "TARGET_SLOTS")?,
            targets: take(probes, "TARGETS")?,
            procs: take(probes, "PROCS")?,
            totals: map_values(probes, "TOTALS", totals::SLOTS as usize * cpus)?,
            totals_seen: map_values(probes, "TOTALS_SEEN", totals::SEEN_WORDS as usize * cpus)?,
            stats: take(probes, "STATS")?,
            event_totals: map_values(probes, "EVENT_TOTALS", cpus)?,
            proc_events: take(probes, "PROC_EVENTS")?,
            row_keys: take(probes, "ROW_KEYS")?,
            finishing: take(probes, "FINISHING")?,
            exits: take(probes, "EXITS")?,
            wake_maps: Some(WakeMaps {
                flag: take(probes, "WAKE")?,
                ring: take(probes, "WAKEUPS")?,
            }),
            drops: take(probes, "DROPS")?,
            latency: take(probes, "LATENCY")?,
            cpus,
            exited: Names::new(),
            fold_schedule: FoldSchedule::new(Instant::now(), probes.rows),
            alive_hint: None,
            folded: Processes::default(),
            beyond_totals: Vec::new(),
            cgroup_root: None,
            first_seen: None,
            just_folded: None,
            accounting_at_start: BTreeMap::new(),
            accounting_counted: TaskFigures::default(),
            accounting_settled: TaskFigures::default(),
            folds: Default::default(),
        })
    }

    /// The probes' wakeup, for the trace loop (once; the tokio runtime
    /// entered).
    pub fn wakeups(&mut self) -> Result<Wakeups> {
        let maps = self
            .wake_maps
            .take()
            .context("the probes' wakeup was already taken")?;
        Wakeups::new(maps)
    }

    /// Starts tracing process `pid` (all its threads).
    pub fn add_target(&mut self, pid: u32) -> Result<()> {
        if let Some(id) = target::identity(pid) {
            let mut comm = [0u8; 16];
            let n = id.comm.len().min(15);
            comm[..n].copy_from_slice(&id.comm.as_bytes()[..n]);
            self.procs.insert(
                pid,
                ProcInfo {
                    ppid: id.ppid,
                    execs: 0,
                    comm,
                },
                0,
            )?;
        }
        self.targets
            .insert(pid, 1, 0)
            .context("registering the target process")?;
        // The filter byte last: from here on the probes count the process.
        // (Only forks of a target write its slot in kernel, and there are
        // none yet, so this read-modify-write races with nothing.)
        let index = pid / PIDS_PER_SLOT;
        let mut slot = self
            .target_slots
            .get(&index, 0)
            .with_context(|| format!("pid {pid} is above the kernel's pid_max"))?;
        slot[(pid % PIDS_PER_SLOT) as usize] = 1;
        self.target_slots
            .set(index, slot, 0)
            .context("registering the target process")?;
        Ok(())
    }

    /// The traced processes that have not exited (the probes remove a
    /// process when its last thread exits, so a recycled pid is never
    /// taken for one of ours).
    fn live_targets(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let _ = batch::for_each::<u32, u32>(self.targets.map(), 1, |keys, _| {
            pids.extend_from_slice(keys)
        });
        pids
    }

    /// Whether a traced process is still alive. The one found alive last
    /// time is held by a pidfd and checked first: a sample then costs one
    /// poll, not a read of every traced process (thousands with -f) and
    /// of its /proc entry.
    pub fn any_target_alive(&mut self) -> bool {
        if self.alive_hint.as_ref().is_some_and(|p| !p.has_exited()) {
            return true;
        }
        self.alive_hint = self
            .live_targets()
            .into_iter()
            .filter(|&pid| target::is_alive(pid))
            .find_map(|pid| target::PidFd::open(pid as i32).ok());
        self.alive_hint.is_some()
    }

    /// A pidfd of the traced process `any_target_alive` last found
    /// alive, to wait on (readable when it has exited).
    pub fn alive_target_pidfd(&self) -> Result<Option<std::os::fd::OwnedFd>> {
        self.alive_hint
            .as_ref()
            .map(|p| p.try_clone())
            .transpose()
            .context("cannot duplicate a pidfd: check the open-files limit (ulimit -n)")
    }

    /// The latency histogram of each syscall in `nrs` (summed over CPUs),
    /// leaving out syscalls with no timed call.
    pub fn latency(&self, nrs: impl IntoIterator<Item = u32>) -> BTreeMap<u32, Vec<u64>> {
        let all: Vec<u64> = sum_per_cpu(self.latency.map(), self.cpus);
        let buckets = latency::BUCKETS as usize;
        nrs.into_iter()
            .filter_map(|nr| {
                let at = nr as usize * buckets;
                let hist = all.get(at..at + buckets)?;
                hist.iter().any(|&n| n > 0).then(|| (nr, hist.to_vec()))
            })
            .collect()
    }

    /// The all-process totals and the drop counts, summed over CPUs. A few
    /// bpf() calls whatever the number of processes.
    pub fn read(&self) -> Counters {
        let mut counters = self.totals();
        for (i, n) in sum_per_cpu::<u64>(self.drops.map(), self.cpus)
            .into_iter()
            .enumerate()
            .take(counters.dropped.len())
        {
            counters.dropped[i] = n;
        }
        counters
    }

    /// The all-process totals, summed over CPUs: what the timeline samples,
    /// every sample. Read from memory-mapped arrays, without a syscall
    /// (the drop counts, which need one, are read at the end), and only
    /// the slots in use: summing all of them took ~0.1 ms a sample.
    pub fn totals(&self) -> Counters {
        let syscalls = self
            .seen_slots()
            .map(|slot| (slot, self.slot_total(slot)))
            .filter(|(_, s)| s.count > 0)
            .map(|(slot, s)| {
                let (nr, dst_kind, src_kind) = totals::call(slot as u32);
                let key = SyscallKey {
                    tgid: 0,
                    nr,
                    dst_kind,
                    src_kind,
                    _pad: [0; 6],
                };
                (key, s)
            })
            .collect();
        let mut events = ProcCounters::default();
        for cpu in 0..self.cpus {
            events += self.event_totals.get(cpu).unwrap_or_default();
        }
        Counters {
            syscalls,
            events,
            ..Default::default()
        }
    }

    /// The slots of the totals array some CPU has written, in order. A
    /// slot whose first call is being counted right now may be missed:
    /// it is in the next sample, as if the call had come a moment later.
    fn seen_slots(&self) -> impl Iterator<Item = usize> + '_ {
        let words = totals::SEEN_WORDS as usize;
        (0..words).flat_map(move |word| {
            let mut bits = (0..self.cpus)
                .map(|cpu| self.totals_seen.get(cpu * words + word).unwrap_or(0))
                .fold(0, |all, cpu_bits| all | cpu_bits);
            std::iter::from_fn(move || {
                let bit = bits.trailing_zeros() as usize;
                bits &= bits.wrapping_sub(1);
                (bit < 64).then_some(word * 64 + bit)
            })
        })
    }

    /// One slot of the totals array, summed over CPUs.
    fn slot_total(&self, slot: usize) -> SyscallStats {
        let slots = totals::SLOTS as usize;
        let mut sum = SyscallStats::default();
        for cpu in 0..self.cpus {
            sum += self.totals.get(cpu * slots + slot).unwrap_or_default();
        }
        sum
    }

    /// Folds the rows of the processes that exited out of the maps, when
    /// enough of them are waiting or they have waited long enough: the
    /// per-process maps then hold live processes only.
    /// Returns how many exits the probes announced since the last call.
    pub fn fold_exited(&mut self) -> Result<usize> {
        let exits = self.take_exits();
        if self.fold_schedule.due(self.exited.len(), Instant::now()) {
            let exited = std::mem::take(&mut self.exited);
            self.folds.scans += 1;
            self.folds.by_scan += exited.len() as u64;
            self.fold(false, exited)?;
        }
        Ok(exits)
    }

    /// The exits the probes announced since the last call: a process the
    /// probe folded is filed from its record; the others wait for a fold.
    fn take_exits(&mut self) -> usize {
        let mut folded = Vec::new();
        let mut exits = 0;
        while let Some(item) = self.exits.next() {
            let Some(record) = exit_record(&item) else {
                continue;
            };
            exits += 1;
            let mut id = if record.exited.named != 0 {
                identity(&record.exited.info)
            } else {
                ProcIdentity::default()
            };
            id.cgroup = record.exited.cgroup;
            match record.process {
                Some(p) => folded.push((p, id)),
                None => {
                    self.exited.insert(record.exited.tgid, id);
                }
            }
        }
        self.folds.by_probe += folded.len() as u64;
        for (p, id) in folded {
            self.file(p, Some(id));
        }
        exits
    }

    /// Moves the rows of the processes in `names` (of every process with
    /// `all`) out of the maps into the folded detail, named from `names`
    /// (or from PROCS, or /proc, for processes still alive).
    fn fold(&mut self, all: bool, mut names: Names) -> Result<()> {
        let Scan {
            found,
            stats_keys,
            event_keys,
            stats_rows,
            event_rows,
        } = self.read_rows(|tgid| all || names.contains_key(&tgid))?;
        if all {
            // Processes that ended while the rows were read: named by the
            // records their exits sent (see `finish`: without rows).
            self.take_exits();
            names.extend(std::mem::take(&mut self.exited));
        }
        batch::delete(self.stats.map(), &stats_keys).context("folding exited processes")?;
        batch::delete(self.proc_events.map(), &event_keys).context("folding exited processes")?;
        // The rows are gone: so is their list (a recycled pid starts anew).
        let pids: Vec<u32> = found.iter().map(|(tgid, _)| *tgid).collect();
        batch::delete(self.row_keys.map(), &pids).context("folding exited processes")?;
        self.fold_schedule.folded(
            Instant::now(),
            found.len(),
            stats_keys.len(),
            stats_rows - stats_keys.len(),
            event_rows - event_keys.len(),
        );
        for (tgid, mut p) in found {
            p.pid = tgid;
            let name = names.remove(&tgid);
            self.file(p, name);
        }
        Ok(())
    }

    /// Files one process's counters, folded out of the maps, in the
    /// report's detail (or for `drain_folded`). `exit_record`: its name as
    /// its exit announced it; None for a process still alive.
    fn file(&mut self, mut p: ProcessCounters, exit_record: Option<ProcIdentity>) {
        let tgid = p.pid;
        self.settle_accounting(&mut p, exit_record.is_none());
        p.identity = match self.first_seen.as_mut().and_then(|seen| seen.remove(&tgid)) {
            Some(id) => id,
            None => self.identity_of(tgid, exit_record),
        };
        let beyond: Vec<_> = p
            .syscalls
            .iter()
            .filter(|(k, _)| totals::slot(k.nr, k.dst_kind, k.src_kind).is_none())
            .copied()
            .collect();
        // The rows stay in the order they came: everything that reads
        // them sums them or files them in maps by name.
        add_rows(&mut self.beyond_totals, &beyond);
        match &mut self.just_folded {
            Some(out) => out.push(p),
            None => self.folded.add(p),
        }
    }

    /// What each process's threads had in the kernel's task accounting
    /// when tracing began, by pid: not the run's.
    pub fn take_off_at_start(&mut self, at_start: BTreeMap<u32, TaskFigures>) {
        self.accounting_at_start = at_start;
    }

    /// Makes a process's task accounting cover the traced span, before it
    /// is filed one by one, by name or by cgroup: the probe added each
    /// thread's figures as it exited; a process still `alive` adds its
    /// live threads', and what its threads had at the start comes off.
    fn settle_accounting(&mut self, p: &mut ProcessCounters, alive: bool) {
        let counted = TaskFigures::of(&p.events);
        let live = if alive {
            task_accounting::live_threads(p.pid)
        } else {
            TaskFigures::default()
        };
        let at_start = self.accounting_at_start.remove(&p.pid).unwrap_or_default();
        let settled = task_accounting::over_the_run(counted, live, at_start);
        settled.store(&mut p.events);
        self.accounting_counted += counted;
        self.accounting_settled += settled;
    }

    /// Name, parent and (when reported) cgroup of `tgid`: from its exit
    /// record, else from PROCS or /proc.
    fn identity_of(&self, tgid: u32, exit_record: Option<ProcIdentity>) -> ProcIdentity {
        let mut id = exit_record.unwrap_or_else(|| self.live_identity(tgid));
        if let Some(root) = &self.cgroup_root {
            if id.cgroup == 0 {
                id.cgroup = crate::cgroup::of_process(tgid, root);
            }
        } else {
            id.cgroup = 0;
        }
        id
    }

    /// For an exporter (`serve`): the counters of every process with rows
    /// in the maps now, each named as it was first seen (so a process
    /// never moves between labels and counters only grow); folded
    /// processes go to `drain_folded` instead of the report's detail.
    pub fn keep_live(&mut self) {
        self.first_seen = Some(BTreeMap::new());
        self.just_folded = Some(Vec::new());
    }

    /// The processes folded out of the maps since the last call (after
    /// `keep_live`).
    fn drain_folded(&mut self) -> Vec<ProcessCounters> {
        self.just_folded
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// For an exporter or a live view (after `keep_live`): the processes
    /// folded since the last call and those alive now, each once. A
    /// process that exits while the live rows are read sends its rows with
    /// its exit: it is among the folded, not the live.
    pub fn snapshot(&mut self) -> Result<(Vec<ProcessCounters>, Vec<ProcessCounters>)> {
        self.fold_exited()?;
        let mut folded = self.drain_folded();
        let mut live = self.read_live()?;
        self.fold_exited()?;
        let late = self.drain_folded();
        let late_pids: std::collections::HashSet<u32> = late.iter().map(|p| p.pid).collect();
        live.retain(|p| !late_pids.contains(&p.pid));
        folded.extend(late);
        Ok((folded, live))
    }

    /// Every process's rows in the maps now, not removed (after `keep_live`).
    fn read_live(&mut self) -> Result<Vec<ProcessCounters>> {
        let found = self.read_rows(|_| true)?.found;
        let mut out = Vec::with_capacity(found.len());
        for (tgid, mut p) in found {
            p.pid = tgid;
            let known = self.first_seen.as_ref().and_then(|s| s.get(&tgid)).cloned();
            p.identity = match known {
                Some(id) => id,
                None => {
                    let id = self.identity_of(tgid, self.exited.get(&tgid).cloned());
                    if let Some(seen) = &mut self.first_seen {
                        seen.insert(tgid, id.clone());
                    }
                    id
                }
            };
            out.push(p);
        }
        Ok(out)
    }

    /// The rows of the processes `chosen` picks, summed over CPUs, with
    /// the keys they were read under.
    fn read_rows(&self, chosen: impl Fn(u32) -> bool) -> Result<Scan> {
        let mut found: Table<u32, ProcessCounters> = Table::new();
        let cpus = self.cpus;
        let mut stats_keys = Vec::new();
        let (mut stats_rows, mut event_rows) = (0, 0);
        batch::for_each::<SyscallKey, SyscallStats>(self.stats.map(), cpus, |keys, values| {
            stats_rows += keys.len();
            for (key, per_cpu) in keys.iter().zip(values.chunks(cpus)) {
                if !chosen(key.tgid) {
                    continue;
                }
                let mut sum = SyscallStats::default();
                for v in per_cpu {
                    sum += *v;
                }
                let p = found.entry(key.tgid).or_default();
                p.syscalls.push((*key, sum));
                stats_keys.push(*key);
            }
        })
        .context("reading the per-process syscall rows")?;
        let mut event_keys = Vec::new();
        batch::for_each::<u32, ProcCounters>(self.proc_events.map(), cpus, |keys, values| {
            event_rows += keys.len();
            for (&tgid, per_cpu) in keys.iter().zip(values.chunks(cpus)) {
                if !chosen(tgid) {
                    continue;
                }
                let p = found.entry(tgid).or_default();
                for v in per_cpu {
                    p.events += *v;
                }
                event_keys.push(tgid);
            }
        })
        .context("reading the per-process event counters")?;
        let mut found: Vec<_> = found.into_iter().collect();
        found.sort_unstable_by_key(|(tgid, _)| *tgid);
        Ok(Scan {
            found,
            stats_keys,
            event_keys,
            stats_rows,
            event_rows,
        })
    }

    /// The name and parent of a process that has not exited.
    fn live_identity(&self, tgid: u32) -> ProcIdentity {
        match self.procs.get(&tgid, 0) {
            Ok(info) => identity(&info),
            // PROCS was full: /proc still knows a live process.
            Err(_) => target::identity(tgid).unwrap_or_default(),
        }
    }

    /// How exited processes were folded so far (for the report's cost).
    pub fn folds(&self) -> crate::model::report::Folds {
        self.folds.clone()
    }

    /// Everything, per process too: folds every row left in the maps (the
    /// live processes' and those of exits not yet folded).
    pub fn finish(&mut self) -> Result<Counters> {
        // From here on exits leave their rows in the maps for the read
        // below; once every probe run that may not have seen the flag is
        // over (an RCU grace period: BPF programs run inside RCU read-side
        // sections), the ring holds every row the maps no longer do.
        self.finishing
            .set(0, 1, 0)
            .context("telling the probes the run ends")?;
        wait_for_probe_runs();
        self.take_exits();
        let exited = std::mem::take(&mut self.exited);
        self.fold(true, exited)?;
        let mut counters = self.read();
        // The totals as the folded processes' settled figures add up.
        let mut total = TaskFigures::of(&counters.events);
        total += self.accounting_settled;
        total
            .minus(self.accounting_counted)
            .store(&mut counters.events);
        counters.syscalls.sort_unstable_by_key(|(k, _)| *k);
        add_rows(&mut counters.syscalls, &self.beyond_totals);
        counters.cgroups = self.folded.cgroup_rows();
        counters.processes = std::mem::take(&mut self.folded).into_rows();
        Ok(counters)
    }
}
