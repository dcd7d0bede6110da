//! `zc-trace lab`: the textbook table of zero-copy methods, measured on
//! this machine.
//!
//! The lab writes a test file, then for each method (read+write,
//! mmap+write, sendfile, splice, readv/writev, copy_file_range) runs a
//! sender process (`zc-trace lab-sender`, see `sender.rs`) under the core
//! tracer (`session::trace`, the same probes as `zc-trace -- CMD`) while a
//! thread of this process receives, counts and checksums the stream. The
//! sender doing everything but the transfer (`noop`) is traced too and
//! subtracted, so the figures are the method's own. Each method runs
//! `--runs` times; the table shows the median beside the textbook's value.
//!
//! checksum.rs: test data and checksum; method.rs: the methods and the
//! model; sender.rs: the traced process; receiver.rs: the receiving thread;
//! measure.rs: baseline subtraction and medians; results.rs: figures, JSON
//! and chart input; table.rs: the terminal table.

mod checksum;
mod measure;
mod method;
mod receiver;
mod results;
mod ring;
mod sender;
mod table;

use std::{
    fs::File,
    io::{Read as _, Write as _},
    net::TcpListener,
    os::fd::AsRawFd as _,
    path::{Path, PathBuf},
    sync::atomic::{AtomicBool, AtomicI32, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::{
    cli::{LabArgs, TargetSpec},
    error::{EXIT_USAGE, failure},
    preflight::{self, Output},
    render::format::{bytes, duration_ns, grouped},
    session::{self, TraceOptions, Traced},
};

use checksum::{Filler, Hasher};
use measure::Sample;
use method::Method;
use receiver::Received;
use results::{LabResults, MethodResult, Run};
use sender::SenderArgs;

/// The largest chunk the lab accepts (the sender allocates one).
const MAX_CHUNK: u64 = 1 << 30;
/// Blocks in which the test file is written and copies are read back.
const IO_BLOCK: usize = 1 << 20;

/// The hidden `zc-trace lab-sender ...`: the traced process.
pub fn sender_main(args: &[String]) -> Result<u8> {
    sender::main(args)
}

/// The syscall number of `name` on this architecture (0 if unknown).
pub(crate) fn syscall_nr(name: &str) -> u32 {
    name.parse::<syscalls::Sysno>().map_or(0, |s| s.id() as u32)
}

pub fn run(args: &LabArgs) -> Result<u8> {
    let methods = method::parse_list(&args.methods)?;
    check_args(args)?;
    // Everything that can fail early does, before a byte is written.
    preflight::check_privileges()?;
    preflight::check_btf()?;
    let json_out = args
        .json
        .as_deref()
        .map(|p| Output::create(p, "lab JSON"))
        .transpose()?;
    if let Some(dir) = &args.output_dir {
        preflight::check_output_dir(dir)?;
    }
    preflight::check_planned_outputs(&output_paths(args))?;
    let exe = std::env::current_exe()
        .context("cannot find zc-trace's own executable to run the lab's sender")?;
    catch_interrupts();
    same_layout_every_run();

    let started = Instant::now();
    let work = WorkDir::new(args.dir.as_deref())?;
    let lab = Lab::new(args, &exe, &work)?;
    let (baseline, baseline_dropped) = baseline(&lab, args.runs)?;
    let page_size = page_size();
    let (out, dropped) = measure(&lab, args, &methods, &baseline, page_size)?;
    let results = LabResults {
        size: args.size,
        chunk: args.chunk,
        runs: args.runs,
        cold: args.cold,
        page_size,
        pipe_size: lab.pipe,
        baseline: results::clamped(&baseline),
        baseline_runs: args.runs,
        methods: out,
        elapsed_ns: started.elapsed().as_nanos() as u64,
        notes: notes(args, &methods, lab.pipe, dropped + baseline_dropped),
    };
    drop(work);

    print!("{}", table::render(&results));
    std::io::stdout().flush().ok();
    write_outputs(&results, json_out, args.output_dir.as_deref())?;
    Ok(0)
}

/// Usage errors the parser cannot catch.
fn check_args(args: &LabArgs) -> Result<()> {
    if args.runs == 0 {
        return Err(failure(
            EXIT_USAGE,
            "--runs 0: give at least 1 run per method",
        ));
    }
    if args.chunk > MAX_CHUNK {
        return Err(failure(
            EXIT_USAGE,
            format!(
                "--chunk {} is larger than the lab allows ({}): choose a smaller chunk",
                bytes(args.chunk),
                bytes(MAX_CHUNK)
            ),
        ));
    }
    if usize::try_from(args.size).is_err() {
        return Err(failure(EXIT_USAGE, "--size is too large for this machine"));
    }
    Ok(())
}

impl Lab {
    /// The test file written, the receiver listening.
    fn new(args: &LabArgs, exe: &Path, work: &WorkDir) -> Result<Self> {
        let file = work.path("data.bin");
        eprintln!(
            "zc-trace lab: writing a {} test file in {}",
            bytes(args.size),
            work.dir().display()
        );
        let sum = create_file(&file, args.size, args.cold)?;
        let listener =
            TcpListener::bind("127.0.0.1:0").context("the receiver cannot listen on 127.0.0.1")?;
        let token = receiver::Token::new()?;
        // The environment is private to the lab and its senders (unlike argv,
        // which every user can read in /proc).
        // SAFETY: no other thread runs yet (the receiver and the tracing
        // runtime start later), so nothing reads the environment meanwhile.
        unsafe { std::env::set_var(receiver::TOKEN_ENV, token.to_hex()) };
        Ok(Lab {
            exe: exe.display().to_string(),
            file,
            dest: work.path("copy.bin"),
            result: work.path("result.bin"),
            listener,
            token,
            size: args.size,
            chunk: args.chunk,
            pipe: sender::pipe_capacity(args.chunk),
            cold: args.cold,
            checksum: sum,
        })
    }
}

/// The median of `runs` baseline (noop) runs, and the records they lost.
fn baseline(lab: &Lab, runs: u32) -> Result<(Sample, u64)> {
    let mut samples = Vec::new();
    let mut dropped = 0;
    for k in 1..=runs {
        eprintln!("zc-trace lab: baseline (noop) run {k}/{runs}");
        let run = lab.run_once(Method::Noop)?;
        dropped += run.dropped;
        samples.push(run.sample);
    }
    Ok((Sample::median(&samples), dropped))
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
        .unwrap_or(4096)
        .max(1)
}

/// Every method's runs, the baseline subtracted, and the records they lost.
fn measure(
    lab: &Lab,
    args: &LabArgs,
    methods: &[Method],
    baseline: &Sample,
    page_size: u64,
) -> Result<(Vec<MethodResult>, u64)> {
    let mut out = Vec::new();
    let mut dropped = 0;
    for &m in methods {
        let mut runs = Vec::new();
        for k in 1..=args.runs {
            let mut run = lab.run_once(m)?;
            run.sample = run.sample.minus(baseline);
            eprintln!(
                "zc-trace lab: {} run {k}/{}: {} in {}, {:.0} MiB/s, {} syscalls",
                m.label(),
                args.runs,
                bytes(run.delivered),
                duration_ns(run.timing.transfer_ns),
                run.timing.mib_per_s(run.delivered),
                grouped(run.sample.syscalls.max(0) as u64)
            );
            dropped += run.dropped;
            runs.push(run);
        }
        out.push(MethodResult::new(
            m,
            runs,
            m.model(args.size, args.chunk, page_size, lab.pipe),
        ));
    }
    Ok((out, dropped))
}

/// The standing notes, and the warnings this run earned.
fn notes(args: &LabArgs, methods: &[Method], pipe: u64, dropped: u64) -> Vec<String> {
    let mut notes = results::notes();
    if methods.iter().any(|m| m.uses_pipe()) && pipe < args.chunk {
        notes.push(format!(
            "NOTE: a pipe holds at most {} here (fs.pipe-max-size, no CAP_SYS_RESOURCE): splice moves at most \
             that per call, and the model counts its calls so",
            bytes(pipe)
        ));
    }
    if args.size < 16 << 20 {
        notes.push(format!(
            "NOTE: the file is small ({}): the few page faults and context switches of any run weigh heavily per MiB",
            bytes(args.size)
        ));
    }
    if dropped > 0 {
        notes.push(format!(
            "WARNING: the probes lost {} records (full maps): some counts are lower bounds",
            grouped(dropped)
        ));
    }
    notes
}

/// The JSON (to --json and into -o DIR) and the chart.
fn write_outputs(
    results: &LabResults,
    json_out: Option<Output>,
    output_dir: Option<&Path>,
) -> Result<()> {
    let json = results::to_json(results);
    let json_bytes = json_bytes(&json)?;
    if let Some(mut out) = json_out {
        out.write_all(&json_bytes)?;
        out.commit()?;
    }
    if let Some(dir) = output_dir {
        let path = dir.join(LAB_JSON);
        preflight::write_output(&path, "lab JSON", &json_bytes)?;
        let mut written = vec![path];
        written.extend(write_charts(results, dir)?);
        eprintln!(
            "zc-trace lab: wrote {} files to {}",
            written.len(),
            dir.display()
        );
    }
    Ok(())
}

/// The comparison chart, one group per method.
fn write_charts(r: &LabResults, dir: &Path) -> Result<Vec<PathBuf>> {
    let runs = results::chart_runs(r);
    // Per byte delivered, like the table: read+write moves each byte twice.
    let delivered: Vec<u64> = r.methods.iter().map(|m| m.delivered).collect();
    crate::render::charts::render_compare(
        &runs,
        crate::render::charts::Basis::Delivered(&delivered),
        dir,
        crate::render::charts::Format::Png,
    )
    .context("drawing the lab's comparison chart")
}

/// The lab's JSON in `-o DIR`.
const LAB_JSON: &str = "lab.json";

/// Every file the lab writes, for `preflight::check_planned_outputs`.
fn output_paths(args: &LabArgs) -> Vec<PathBuf> {
    let in_dir = args.output_dir.iter().flat_map(|dir| {
        [
            dir.join(LAB_JSON),
            dir.join(format!(
                "compare.{}",
                crate::render::charts::Format::Png.extension()
            )),
        ]
    });
    args.json.iter().cloned().chain(in_dir).collect()
}

fn json_bytes(v: &serde_json::Value) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(v).context("encoding the lab JSON")?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// What every run shares.
struct Lab {
    exe: String,
    file: PathBuf,
    dest: PathBuf,
    result: PathBuf,
    listener: TcpListener,
    /// What the sender writes first, so the receiver knows its connection.
    token: receiver::Token,
    size: u64,
    chunk: u64,
    /// The pipe size splice gets (a chunk, if the kernel allows).
    pipe: u64,
    cold: bool,
    checksum: u64,
}

impl Lab {
    /// Traces the sender once with `method` while the receiver drains the
    /// connection; checks that every byte arrived intact.
    fn run_once(&self, method: Method) -> Result<Run> {
        check_interrupted()?;
        let _ = std::fs::remove_file(&self.result);
        if self.cold && method != Method::Noop {
            drop_from_cache(&self.file)?;
        }
        let (traced, received) = self.trace_sender(method)?;
        let traced = traced?;
        check_interrupted()?;
        sender_succeeded(&traced, method)?;
        let received =
            received.with_context(|| format!("receiving the {} transfer", method.label()))?;
        let record = std::fs::read(&self.result)
            .with_context(|| format!("reading the {} sender's result", method.label()))?;
        let timing = sender::decode(&record)?;
        let delivered = self.delivered(method, &received)?;
        let _ = std::fs::remove_file(&self.dest);
        let report = &traced.report;
        Ok(Run {
            sample: Sample::from_report(report),
            timing,
            delivered,
            pid: report.target.pid,
            dropped: report.dropped.values().sum(),
        })
    }

    /// The command line of the sender of `method`.
    fn sender_argv(&self, method: Method) -> Result<Vec<String>> {
        let port = self.listener.local_addr()?.port();
        let mut argv = vec![self.exe.clone(), "lab-sender".to_owned()];
        argv.extend(
            SenderArgs {
                method,
                file: self.file.clone(),
                dest: self.dest.clone(),
                port,
                size: self.size,
                chunk: self.chunk,
                pipe: self.pipe,
                result: self.result.clone(),
            }
            .to_args(),
        );
        Ok(argv)
    }

    /// Runs the sender of `method` traced, with the receiver on a thread of
    /// its own: what the trace and the receiver each gave.
    fn trace_sender(&self, method: Method) -> Result<(Result<Traced>, Result<Received>)> {
        let argv = self.sender_argv(method)?;
        let stop = AtomicBool::new(false);
        Ok(std::thread::scope(|s| {
            let rx = s.spawn(|| receiver::receive(&self.listener, &self.token, &stop));
            let traced = session::trace(&TraceOptions {
                spec: TargetSpec::Wrap(argv.into_iter().map(Into::into).collect()),
                follow_forks: false,
                // The lab uses the totals only: sample the timeline rarely.
                interval: Duration::from_secs(1),
                duration: None,
                announce: false,
                // As `zc-trace --latency -- CMD`: the lab compares the
                // methods' time in the kernel, so it times every call.
                timed: true,
                cost: crate::bpf_stats::StatsMode::Sampled,
                live: None,
            });
            stop.store(true, Ordering::Release);
            let received = rx
                .join()
                .unwrap_or_else(|_| Err(anyhow!("the receiver thread panicked")));
            (traced, received)
        }))
    }

    /// The bytes `method` delivered, checked against the test file: over
    /// the socket, or into the copy for copy_file_range; none for the
    /// baseline.
    fn delivered(&self, method: Method, received: &Received) -> Result<u64> {
        match method {
            Method::Noop => {
                if received.bytes != 0 {
                    bail!("the baseline sender sent {} bytes", received.bytes);
                }
                Ok(0)
            }
            Method::CopyFileRange => {
                if received.bytes != 0 {
                    bail!(
                        "copy_file_range sent {} bytes over the socket",
                        received.bytes
                    );
                }
                let (n, sum) = checksum_file(&self.dest)?;
                self.verify(method, n, sum)?;
                Ok(n)
            }
            _ => {
                self.verify(method, received.bytes, received.checksum)?;
                Ok(received.bytes)
            }
        }
    }

    fn verify(&self, method: Method, n: u64, sum: u64) -> Result<()> {
        if n != self.size || sum != self.checksum {
            bail!(
                "{} delivered {} bytes with checksum {sum:016x}; the file has {} bytes with checksum {:016x}: \
                 the transfer is broken",
                method.label(),
                grouped(n),
                grouped(self.size),
                self.checksum
            );
        }
        Ok(())
    }
}

/// Writes `size` pseudo-random bytes to `path`; returns their checksum.
/// With `durable`, the file is synced so that it can be dropped from the
/// page cache later.
fn create_file(path: &Path, size: u64, durable: bool) -> Result<u64> {
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf = vec![0u8; IO_BLOCK];
    let mut fill = Filler::new(0x5eed_0f2c_7ace);
    let mut h = Hasher::new();
    let mut left = size;
    while left > 0 {
        check_interrupted()?;
        let n = left.min(IO_BLOCK as u64) as usize;
        fill.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        f.write_all(&buf[..n]).with_context(|| {
            format!(
                "writing {} (is there {} free?)",
                path.display(),
                bytes(size)
            )
        })?;
        left -= n as u64;
    }
    if durable {
        f.sync_all()
            .with_context(|| format!("syncing {}", path.display()))?;
    }
    Ok(h.finish())
}

/// Byte count and checksum of a file.
fn checksum_file(path: &Path) -> Result<(u64, u64)> {
    let mut f = File::open(path).with_context(|| format!("opening the copy {}", path.display()))?;
    let mut buf = vec![0u8; IO_BLOCK];
    let mut h = Hasher::new();
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok((h.len(), h.finish()))
}

/// Fails unless the traced sender ran to its end and exited 0.
fn sender_succeeded(traced: &Traced, method: Method) -> Result<()> {
    if let Some(sig) = traced.stopped_by {
        return Err(failure(
            (128 + sig) as u8,
            format!("interrupted by signal {sig}: the lab stopped and removed its test files"),
        ));
    }
    match traced.exit_code {
        Some(0) => Ok(()),
        Some(code) => bail!(
            "the {} sender failed (exit code {code}; its error is above): the lab cannot measure this method here",
            method.label()
        ),
        None => bail!("the {} sender did not exit", method.label()),
    }
}

/// `--cold`: asks the kernel to drop the file's pages from the page cache,
/// so the next run reads the disk.
fn drop_from_cache(path: &Path) -> Result<()> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    // SAFETY: advice on our own open fd.
    let r = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if r != 0 {
        bail!(
            "posix_fadvise(DONTNEED) on {}: {}",
            path.display(),
            std::io::Error::from_raw_os_error(r)
        );
    }
    Ok(())
}

/// The lab's directory: a new one under `--dir` or the temp dir (random
/// name, mode 0700, so nobody can plant anything in it), removed with
/// everything in it when the lab ends, however it ends. A run killed too
/// hard to clean up leaves it behind; the next run removes it.
struct WorkDir {
    dir: tempfile::TempDir,
}

/// The start of every work directory's name.
const WORK_PREFIX: &str = "zc-trace-lab-";
/// The file in a work directory that names the run that made it.
const OWNER_FILE: &str = "owner";

impl WorkDir {
    fn new(parent: Option<&Path>) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt as _;
        let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
        // The sender creates files by path in the work dir: nobody else
        // may be able to move it away and put a link in its place.
        preflight::check_dir(&parent, "the lab's --dir")?;
        remove_stale_work_dirs(&parent);
        let fail = |e: std::io::Error| {
            failure(
                1,
                format!(
                    "cannot create the lab's directory in {}: {}: give a writable directory with --dir",
                    parent.display(),
                    preflight::io_reason(&e)
                ),
            )
        };
        let dir = tempfile::Builder::new()
            .prefix(WORK_PREFIX)
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(&parent)
            .map_err(fail)?;
        let owner = RunId::of(std::process::id()).map_or_else(String::new, |id| id.to_line());
        std::fs::write(dir.path().join(OWNER_FILE), owner).map_err(fail)?;
        Ok(Self { dir })
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }
}

/// A run of the lab, told apart from any later process that reuses its
/// pid (by start time) and from processes of other PID namespaces.
#[derive(Debug, PartialEq, Eq)]
struct RunId {
    pid: u32,
    started: u64,
    pid_ns: String,
}

impl RunId {
    fn of(pid: u32) -> Option<Self> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 22, counted after the parenthesised name (which may hold anything).
        let started = stat[stat.rfind(')')? + 1..]
            .split_whitespace()
            .nth(19)?
            .parse()
            .ok()?;
        Some(Self {
            pid,
            started,
            pid_ns: own_pid_namespace()?,
        })
    }

    fn to_line(&self) -> String {
        format!("{} {} {}\n", self.pid, self.started, self.pid_ns)
    }

    fn parse(line: &str) -> Option<Self> {
        let mut words = line.split_whitespace();
        Some(Self {
            pid: words.next()?.parse().ok()?,
            started: words.next()?.parse().ok()?,
            pid_ns: words.next()?.to_owned(),
        })
    }

    /// Whether this run is over: its pid is gone or belongs to a newer
    /// process. Unknown (another namespace) counts as running.
    fn is_over(&self) -> bool {
        own_pid_namespace().is_some_and(|ns| ns == self.pid_ns)
            && RunId::of(self.pid).is_none_or(|now| now.started != self.started)
    }
}

fn own_pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// Removes the work directories of lab runs that were killed (SIGKILL, a
/// crash) before they could clean up: only real directories owned by us
/// with mode 0700 whose owner file names a run that is over.
fn remove_stale_work_dirs(parent: &Path) {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(WORK_PREFIX) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o777 != 0o700 {
            continue;
        }
        let dir = entry.path();
        let owner = std::fs::read_to_string(dir.join(OWNER_FILE)).unwrap_or_default();
        if RunId::parse(&owner).is_some_and(|run| run.is_over()) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// Turns address-space randomisation off for the senders this process
/// starts (the personality is inherited through fork and exec): with the
/// same layout every run, the start-up page faults the baseline subtracts
/// are the same every run.
fn same_layout_every_run() {
    // SAFETY: personality only changes how later execs lay out memory.
    unsafe {
        let current = libc::personality(0xffff_ffff);
        if current >= 0 {
            libc::personality(
                (current as libc::c_ulong) | libc::ADDR_NO_RANDOMIZE as libc::c_ulong,
            );
        }
    }
}

/// The signal that asked the lab to stop (0: none).
static INTERRUPTED: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    INTERRUPTED.store(sig, Ordering::SeqCst);
}

/// Ctrl-C and SIGTERM set a flag the lab checks between steps, so it stops
/// cleanly and removes its files. (A tracing session installs its own
/// handlers later; they chain to this one.)
fn catch_interrupts() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: installing an async-signal-safe handler (one atomic store).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn check_interrupted() -> Result<()> {
    match INTERRUPTED.load(Ordering::SeqCst) {
        0 => Ok(()),
        sig => Err(failure(
            (128 + sig) as u8,
            format!("interrupted by signal {sig}: the lab stopped and removed its test files"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_numbers() {
        assert_eq!(syscall_nr("read"), 0);
        assert_eq!(syscall_nr("sendfile"), 40);
        assert_eq!(syscall_nr("no_such_call"), 0);
    }

    #[test]
    fn test_file_checksum_matches_a_reread() {
        let work = WorkDir::new(None).unwrap();
        let p = work.path("f");
        let sum = create_file(&p, 3 * IO_BLOCK as u64 + 12345, false).unwrap();
        assert_eq!(
            checksum_file(&p).unwrap(),
            (3 * IO_BLOCK as u64 + 12345, sum)
        );
        drop_from_cache(&p).unwrap();
        let dir = work.dir().to_owned();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "nobody else may plant files in it");
        drop(work);
        assert!(!dir.exists(), "the work dir is removed on drop");
    }
}
