//! The only code that touches the maps: registers targets and reads the
//! per-CPU counters, summed over CPUs, into the model's `Snapshot`.

use std::collections::BTreeMap;

use anyhow::{Context as _, Result, anyhow};
use aya::maps::{Array, HashMap, MapData, PerCpuArray, PerCpuHashMap};
use zc_trace_common::{
    PIDS_PER_SLOT, ProcCounters, ProcInfo, SyscallKey, SyscallStats, TargetSlot, drop, latency,
};

use crate::{
    loader::Probes,
    model::{ProcIdentity, Snapshot},
    target,
};

pub struct Collector {
    target_slots: Array<MapData, TargetSlot>,
    targets: HashMap<MapData, u32, u32>,
    procs: HashMap<MapData, u32, ProcInfo>,
    stats: PerCpuHashMap<MapData, SyscallKey, SyscallStats>,
    counters: PerCpuHashMap<MapData, u32, ProcCounters>,
    drops: PerCpuArray<MapData, u64>,
    latency: PerCpuArray<MapData, u64>,
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

impl Collector {
    pub fn new(probes: &mut Probes) -> Result<Self> {
        Ok(Self {
            target_slots: take(probes, "TARGET_SLOTS")?,
            targets: take(probes, "TARGETS")?,
            procs: take(probes, "PROCS")?,
            stats: take(probes, "STATS")?,
            counters: take(probes, "COUNTERS")?,
            drops: take(probes, "DROPS")?,
            latency: take(probes, "LATENCY")?,
        })
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

    /// The processes traced so far (followed children included).
    pub fn target_pids(&self) -> Vec<u32> {
        self.targets.keys().filter_map(Result::ok).collect()
    }

    /// The traced processes that have not exited: still marked in the
    /// filter (the probes unmark a process when its last thread exits, so a
    /// recycled pid is never taken for one of ours).
    pub fn live_targets(&self) -> Vec<u32> {
        self.target_pids()
            .into_iter()
            .filter(|&pid| {
                self.target_slots
                    .get(&(pid / PIDS_PER_SLOT), 0)
                    .is_ok_and(|slot| slot[(pid % PIDS_PER_SLOT) as usize] != 0)
            })
            .collect()
    }

    /// Name and parent of every traced process the probes saw.
    pub fn identities(&self) -> BTreeMap<u32, ProcIdentity> {
        self.procs
            .iter()
            .filter_map(Result::ok)
            .map(|(pid, info)| {
                let end = info
                    .comm
                    .iter()
                    .position(|&b| b == 0)
                    .unwrap_or(info.comm.len());
                let comm = String::from_utf8_lossy(&info.comm[..end]).into_owned();
                (
                    pid,
                    ProcIdentity {
                        ppid: info.ppid,
                        comm,
                    },
                )
            })
            .collect()
    }

    /// The latency histogram of each syscall in `nrs` (summed over CPUs),
    /// leaving out syscalls with no timed call. One lookup per bucket, so
    /// read once at the end, not every sample.
    pub fn latency(&self, nrs: impl IntoIterator<Item = u32>) -> BTreeMap<u32, Vec<u64>> {
        let mut out = BTreeMap::new();
        for nr in nrs.into_iter().filter(|&nr| nr < latency::MAX_NR) {
            let buckets: Vec<u64> = (0..latency::BUCKETS)
                .map(|b| {
                    self.latency
                        .get(&(nr * latency::BUCKETS + b), 0)
                        .map(|per_cpu| per_cpu.iter().sum())
                        .unwrap_or(0)
                })
                .collect();
            if buckets.iter().any(|&n| n > 0) {
                out.insert(nr, buckets);
            }
        }
        out
    }

    /// Reads every counter, summed over CPUs.
    pub fn read(&self) -> Snapshot {
        let mut out = Snapshot::default();
        for (key, per_cpu) in self.stats.iter().filter_map(Result::ok) {
            let mut sum = SyscallStats::default();
            for v in per_cpu.iter() {
                sum += *v;
            }
            out.syscalls.push((key, sum));
        }
        out.syscalls
            .sort_by_key(|(k, _)| (k.tgid, k.nr, k.kind, k.src_kind));
        for (pid, per_cpu) in self.counters.iter().filter_map(Result::ok) {
            out.procs
                .insert(pid, crate::model::ledger::sum_events(per_cpu.iter()));
        }
        for i in 0..drop::COUNT {
            if let Ok(per_cpu) = self.drops.get(&i, 0) {
                out.dropped[i as usize] = per_cpu.iter().sum();
            }
        }
        out
    }
}
