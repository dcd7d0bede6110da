//! `zc-trace top` in an 80x24 terminal, driven through tmux (issue 11,
//! item 5): the busiest copier ranks first, sort keys, pause, quit, and a
//! process name that carries a terminal escape is shown escaped.

use std::os::unix::process::CommandExt as _;
use std::process::Command;
use std::time::Duration;

use zc_trace_tests::harness::{Proc, TempDir, require_root, skip, tracer_bin, wait_until};

const TEST: &str = "issue11_top_ranks_sorts_pauses_and_quits_in_80x24";

/// tmux, exactly once per call.
fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("run tmux");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills the test's tmux session however the test ends.
struct Session(String);

impl Session {
    fn screen(&self) -> String {
        tmux(&["capture-pane", "-p", "-t", &self.0])
    }

    fn keys(&self, keys: &str) {
        tmux(&["send-keys", "-t", &self.0, keys]);
    }

    fn wait_for(&self, what: &str, cond: impl Fn(&str) -> bool) {
        let mut last = String::new();
        wait_until(what, Duration::from_secs(60), || {
            last = self.screen();
            cond(&last)
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        tmux(&["kill-session", "-t", &self.0]);
    }
}

/// A pipeline in a process group of its own, killed whole at the end.
struct Group(Proc);

impl Drop for Group {
    fn drop(&mut self) {
        // SAFETY: kill has no memory preconditions.
        unsafe { libc::kill(-self.0.pid(), libc::SIGKILL) };
    }
}

#[test]
fn issue11_top_ranks_sorts_pauses_and_quits_in_80x24() {
    if !require_root(TEST) {
        return;
    }
    if Command::new("tmux").arg("-V").output().is_err() {
        skip(TEST, "needs tmux (cargo xtask setup installs it)");
        return;
    }
    let dir = TempDir::new("top");
    // A copier with a name that carries an escape: it reads a pipe and
    // writes one, so it copies twice what its neighbours do.
    let burn = dir.join("zc-top-\x1bburn");
    std::fs::copy("/bin/cat", &burn).expect("copy cat");
    let script = format!(
        "while :; do head -c 16M /dev/zero; done | '{}' | cat >/dev/null",
        burn.display()
    );
    let _load = Group(Proc::spawn(
        Command::new("sh").args(["-c", &script]).process_group(0),
    ));

    let name = format!("zc-top-{}", std::process::id());
    let command = format!(
        "{} top -a -i 300ms; echo \"top exited $?\"; sleep 60",
        tracer_bin().display()
    );
    tmux(&[
        "new-session",
        "-d",
        "-s",
        &name,
        "-x",
        "80",
        "-y",
        "24",
        &command,
    ]);
    let s = Session(name);
    s.wait_for("the copier to rank first", |screen| {
        screen
            .lines()
            .nth(3)
            .is_some_and(|row| row.contains("zc-top-\\x1bburn"))
    });
    let screen = s.screen();
    assert!(screen.lines().count() <= 24, "fits 24 lines:\n{screen}");
    assert!(
        screen.lines().all(|l| l.chars().count() <= 80),
        "fits 80 columns:\n{screen}"
    );
    assert!(screen.contains("by CPU-copied B/s"), "{screen}");

    s.keys("s");
    s.wait_for("the sort by syscalls", |screen| {
        screen.contains("by syscalls/s")
    });
    s.keys("p");
    s.wait_for("the pause", |screen| screen.contains("PAUSED"));
    s.keys("p");
    s.wait_for("the end of the pause", |screen| !screen.contains("PAUSED"));
    s.keys("g");
    s.wait_for("the cgroups", |screen| screen.contains("cgroup "));
    s.keys("q");
    s.wait_for("top to quit", |screen| screen.contains("top exited 0"));
}
