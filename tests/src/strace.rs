//! Reads strace's output, the oracle: the `-c` summary table (calls and
//! errors per syscall, compared with the tracer's counts) and `-yy` call
//! logs (every call with its fds' kinds and return value, compared with
//! the workload's declared expectations).

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::{Stats, skip};

/// Whether strace is installed; otherwise skips `test`.
pub fn have_strace(test: &str) -> bool {
    let found = std::process::Command::new("strace")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        skip(test, "needs strace (apt-get install strace)");
    }
    found
}

/// One row of the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Row {
    pub calls: u64,
    pub errors: u64,
}

/// Parses strace's `-c` output:
///
/// ```text
/// % time     seconds  usecs/call     calls    errors syscall
/// ------ ----------- ----------- --------- --------- ----------------
///  41.70    0.000103           6        16           write
///   0.00    0.000000           0         1         1 access
/// ------ ----------- ----------- --------- --------- ----------------
/// 100.00    0.000247           4        56         2 total
/// ```
///
/// The errors column is blank when a syscall never failed. Lines that are
/// not table rows (strace's own notices, e.g. "+++ exited with 0 +++" when
/// `-o` is not used) are an error, so a format change cannot pass unnoticed.
pub fn parse_summary(text: &str) -> Result<BTreeMap<String, Row>, String> {
    let mut rows = BTreeMap::new();
    let mut seen_header = false;
    let mut seen_total = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with("------") {
            continue;
        }
        if trimmed.starts_with("% time") {
            seen_header = true;
            continue;
        }
        if !seen_header {
            return Err(format!("line before the table header: {line:?}"));
        }
        let cols: Vec<&str> = trimmed.split_whitespace().collect();
        let (calls, errors) = match cols.len() {
            5 => (cols[3], "0"),
            6 => (cols[3], cols[4]),
            _ => return Err(format!("unexpected row: {line:?}")),
        };
        let name = cols[cols.len() - 1];
        let row = Row {
            calls: calls
                .parse()
                .map_err(|e| format!("calls in {line:?}: {e}"))?,
            errors: errors
                .parse()
                .map_err(|e| format!("errors in {line:?}: {e}"))?,
        };
        if name == "total" {
            seen_total = true;
            continue;
        }
        if rows.insert(name.to_string(), row).is_some() {
            return Err(format!("syscall listed twice: {name}"));
        }
    }
    if !seen_total {
        return Err("no total row: is this `strace -c` output?".into());
    }
    Ok(rows)
}

/// The syscalls whose calls a scenario declares: the data-moving families
/// and mmap. [`tally`] counts only these.
pub const MEASURED: &[&str] = &[
    "read",
    "write",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "preadv",
    "pwritev",
    "preadv2",
    "pwritev2",
    "recvfrom",
    "sendto",
    "recvmsg",
    "sendmsg",
    "recvmmsg",
    "sendmmsg",
    "sendfile",
    "splice",
    "tee",
    "vmsplice",
    "copy_file_range",
    "mmap",
];

/// One completed call of a `strace -yy` log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// Arguments as strace printed them, split at top-level commas.
    pub args: Vec<String>,
    /// The return value; `Err` holds the errno name; `None` for `= ?`.
    pub ret: Option<Result<u64, String>>,
}

/// Parses one line of a per-process strace log (`strace -ff -o`). Returns
/// `Ok(None)` for lines that are not a complete call (signals, exits,
/// `<unfinished ...>` at exit).
pub fn parse_call(line: &str) -> Result<Option<Call>, String> {
    let line = line.trim_end();
    let Some(open) = line.find('(') else {
        return Ok(None);
    };
    let name = &line[..open];
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Ok(None);
    }
    if line.ends_with("<unfinished ...>") {
        return Ok(None);
    }
    let bad = |why: &str| format!("{why} in strace line {line:?}");
    // Split the arguments at commas outside (), [], {}, <> and quotes.
    let bytes = line.as_bytes();
    let mut depth = 0usize;
    let mut in_str = false;
    let mut args = Vec::new();
    let mut start = open + 1;
    let mut close = None;
    let mut i = open + 1;
    while i < bytes.len() {
        let c = bytes[i];
        if in_str {
            match c {
                b'\\' => i += 1,
                b'"' => in_str = false,
                _ => {}
            }
        } else {
            match c {
                b'"' => in_str = true,
                b'(' | b'[' | b'{' => depth += 1,
                // fd annotations: 3</path>, 4<pipe:[1]>, 5</dev/null<char 1:3>>
                b'<' if bytes[i - 1].is_ascii_alphanumeric() => depth += 1,
                b')' | b']' | b'}' | b'>' if depth > 0 => depth -= 1,
                b')' => {
                    close = Some(i);
                    break;
                }
                b',' if depth == 0 => {
                    args.push(line[start..i].trim().to_string());
                    start = i + 1;
                }
                _ => {}
            }
        }
        i += 1;
    }
    let close = close.ok_or_else(|| bad("no closing parenthesis"))?;
    let last = line[start..close].trim();
    if !last.is_empty() || !args.is_empty() {
        args.push(last.to_string());
    }
    let rest = line[close + 1..].trim_start();
    let ret = rest
        .strip_prefix('=')
        .ok_or_else(|| bad("no return value"))?
        .trim_start();
    let ret = if ret.starts_with('?') {
        None
    } else if let Some(err) = ret.strip_prefix("-1 ") {
        Some(Err(err.split_whitespace().next().unwrap_or("").to_string()))
    } else {
        Some(Ok(
            parse_number(ret).ok_or_else(|| bad("unreadable return value"))?
        ))
    };
    Ok(Some(Call {
        name: name.to_string(),
        args,
        ret,
    }))
}

/// A decimal or 0x-hex number at the start of `s` (what follows, like an
/// fd annotation, is ignored).
fn parse_number(s: &str) -> Option<u64> {
    if let Some(hex) = s.strip_prefix("0x") {
        let end = hex
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(hex.len());
        return u64::from_str_radix(&hex[..end], 16).ok();
    }
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// The fd kind key of an fd argument printed with `-yy`, in the tracer's
/// terms: "file", "socket", "pipe", "device" (character devices), "other"
/// (block devices, anonymous inodes), "unknown" (not open: strace prints no
/// annotation), "none" (-1). strace cannot tell an O_DIRECT file ("direct").
pub fn fd_kind(arg: &str) -> &'static str {
    let Some(lt) = arg.find('<') else {
        return if arg == "-1" { "none" } else { "unknown" };
    };
    let ann = &arg[lt + 1..];
    if ann.starts_with("pipe:") {
        "pipe"
    } else if ann.starts_with("socket:")
        || ann.split_once(":[").is_some_and(|(proto, _)| {
            !proto.is_empty() && proto.bytes().all(|b| b.is_ascii_alphanumeric())
        })
    {
        // socket:[inode], or with -yy TCP:[...], UDP:[...], UNIX-STREAM:[...]
        "socket"
    } else if ann.starts_with("UNIX") {
        "socket"
    } else if ann.contains("<char ") {
        "device"
    } else if ann.contains("<block ") || ann.starts_with("anon_inode:") {
        "other"
    } else {
        "file"
    }
}

/// Totals per (syscall, fd kind key) of the [`MEASURED`] calls, bytes as
/// the tracer counts them: successful byte returns, the sum of `msg_len`
/// for sendmmsg/recvmmsg (needs `-v`), the length of fd-backed mmaps.
pub fn tally<'a>(
    calls: impl IntoIterator<Item = &'a Call>,
) -> Result<BTreeMap<(String, String), Stats>, String> {
    let mut out: BTreeMap<(String, String), Stats> = BTreeMap::new();
    for c in calls {
        if !MEASURED.contains(&c.name.as_str()) {
            continue;
        }
        let arg = |i: usize| {
            c.args
                .get(i)
                .map(String::as_str)
                .ok_or_else(|| format!("{c:?} lacks argument {i}"))
        };
        let two = |src: usize, dst: usize| -> Result<String, String> {
            Ok(format!("{}->{}", fd_kind(arg(src)?), fd_kind(arg(dst)?)))
        };
        let kind = match c.name.as_str() {
            "sendfile" => two(1, 0)?,
            "splice" | "copy_file_range" => two(0, 2)?,
            "tee" => two(0, 1)?,
            "mmap" => fd_kind(arg(4)?).to_string(),
            _ => fd_kind(arg(0)?).to_string(),
        };
        let bytes = match (&c.ret, c.name.as_str()) {
            (Some(Ok(_)), "sendmmsg" | "recvmmsg") => {
                let msgs = arg(1)?;
                if msgs == "[...]" {
                    return Err(format!("{c:?}: run strace with -v to see msg_len"));
                }
                msgs.split("msg_len=")
                    .skip(1)
                    .filter_map(parse_number)
                    .sum()
            }
            (Some(Ok(_)), "mmap") if kind != "none" => {
                parse_number(arg(1)?).ok_or_else(|| format!("{c:?}: mmap length"))?
            }
            (Some(Ok(_)), "mmap") => 0,
            (Some(Ok(n)), _) => *n,
            _ => 0,
        };
        let s = out.entry((c.name.clone(), kind)).or_default();
        s.count += 1;
        s.errors += u64::from(matches!(c.ret, Some(Err(_))));
        s.bytes += bytes;
    }
    Ok(out)
}

/// Every call in the per-process logs `strace -ff -o DIR/PREFIX` wrote.
pub fn read_logs(dir: &Path) -> Result<Vec<Call>, String> {
    let mut calls = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in text.lines() {
            if let Some(call) = parse_call(line)? {
                calls.push(call);
            }
        }
    }
    Ok(calls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(line: &str) -> Call {
        parse_call(line).unwrap().unwrap()
    }

    #[test]
    fn parses_calls_with_annotations() {
        let c = call(r#"read(3</tmp/a, b>, ""..., 4096) = 4096"#);
        assert_eq!(c.args, vec!["3</tmp/a, b>", r#"""..."#, "4096"]);
        assert_eq!(c.ret, Some(Ok(4096)));
        let c = call("splice(3</tmp/in>, NULL, 7<pipe:[12]>, NULL, 4096, 0) = 4096");
        assert_eq!(
            tally([&c]).unwrap()[&("splice".into(), "file->pipe".into())].bytes,
            4096
        );
        let c = call("read(999, 0x5580a9ddf350, 4096)         = -1 EBADF (Bad file descriptor)");
        assert_eq!(c.ret, Some(Err("EBADF".into())));
        let c = call("exit_group(0)                           = ?");
        assert_eq!(c.ret, None);
        assert_eq!(call("getpid()  = 12").args, Vec::<String>::new());
        assert_eq!(parse_call("+++ exited with 0 +++").unwrap(), None);
        assert_eq!(
            parse_call("--- SIGPIPE {si_signo=SIGPIPE} ---").unwrap(),
            None
        );
        assert_eq!(
            parse_call("futex(0x7f, FUTEX_WAIT, 2, NULL <unfinished ...>").unwrap(),
            None
        );
        assert!(parse_call("read(3</x>, \"\"..., 1").is_err());
    }

    #[test]
    fn classifies_fds() {
        assert_eq!(fd_kind("3</tmp/wl/in>"), "file");
        assert_eq!(fd_kind("4<pipe:[18414]>"), "pipe");
        assert_eq!(fd_kind("5<TCP:[127.0.0.1:1->127.0.0.1:2]>"), "socket");
        assert_eq!(fd_kind("3<UDP:[127.0.0.1:42587]>"), "socket");
        assert_eq!(fd_kind("6<socket:[123]>"), "socket");
        assert_eq!(fd_kind("7<UNIX-STREAM:[1->2]>"), "socket");
        assert_eq!(fd_kind("3</dev/null<char 1:3>>"), "device");
        assert_eq!(fd_kind("8<anon_inode:[eventfd]>"), "other");
        assert_eq!(fd_kind("999"), "unknown");
        assert_eq!(fd_kind("-1"), "none");
    }

    #[test]
    fn tallies_like_the_tracer() {
        let lines = [
            "sendfile(5<TCP:[1->2]>, 3</tmp/in>, NULL, 4096) = 4096",
            "mmap(NULL, 65536, PROT_READ, MAP_SHARED, 3</tmp/in>, 0) = 0x7f0000000000",
            "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000001000",
            "recvmmsg(3<UDP:[1]>, [{msg_hdr={msg_iov=[{iov_base=\"\"..., iov_len=100}], \
             msg_iovlen=1}, msg_len=100}, {msg_hdr={}, msg_len=60}], 2, 0, NULL) = 2",
            "write(4<pipe:[1]>, \"\"..., 4096) = -1 EPIPE (Broken pipe)",
            "close(3</tmp/in>) = 0",
        ];
        let calls: Vec<Call> = lines.iter().map(|l| call(l)).collect();
        let t = tally(&calls).unwrap();
        let get = |n: &str, k: &str| t[&(n.to_string(), k.to_string())];
        assert_eq!(
            get("sendfile", "file->socket"),
            Stats {
                count: 1,
                errors: 0,
                bytes: 4096
            }
        );
        assert_eq!(
            get("mmap", "file"),
            Stats {
                count: 1,
                errors: 0,
                bytes: 65536
            }
        );
        assert_eq!(
            get("mmap", "none"),
            Stats {
                count: 1,
                errors: 0,
                bytes: 0
            }
        );
        assert_eq!(
            get("recvmmsg", "socket"),
            Stats {
                count: 1,
                errors: 0,
                bytes: 160
            }
        );
        assert_eq!(
            get("write", "pipe"),
            Stats {
                count: 1,
                errors: 1,
                bytes: 0
            }
        );
        assert_eq!(t.len(), 5);
    }

    const SAMPLE: &str = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 41.70    0.000103           6        16           write
 20.00    0.000050           3        16        16 read
  0.00    0.000000           0         1         1 access
------ ----------- ----------- --------- --------- ----------------
100.00    0.000247           4        33        17 total
";

    #[test]
    fn parses_rows_with_and_without_errors() {
        let rows = parse_summary(SAMPLE).unwrap();
        assert_eq!(
            rows["write"],
            Row {
                calls: 16,
                errors: 0
            }
        );
        assert_eq!(
            rows["read"],
            Row {
                calls: 16,
                errors: 16
            }
        );
        assert_eq!(
            rows["access"],
            Row {
                calls: 1,
                errors: 1
            }
        );
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn rejects_non_tables() {
        assert!(parse_summary("hello\n").is_err());
        assert!(parse_summary(&SAMPLE.replace("total", "x")).is_err());
    }
}
