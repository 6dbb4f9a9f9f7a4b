//! Network namespaces the lab creates, and everything run inside them. A namespace is
//! removed when its [`Netns`] is dropped, with whatever the lab put in it (links, qdiscs,
//! nftables tables, the processes it started there), so a failing test leaves nothing
//! behind. Namespaces left by a process that was killed are swept by the next lab.
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{bail, Context, Result};

/// Every namespace the lab makes is named `netlab-<pid>-<n>-<label>`.
const PREFIX: &str = "netlab-";

pub struct Netns {
    name: String,
}

impl Netns {
    /// A fresh namespace with its loopback up. Fails with the reason when namespaces cannot
    /// be made here (they need root).
    pub fn create(label: &str) -> Result<Netns> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{label}", std::process::id());
        run("ip", &["netns", "add", &name]).with_context(|| {
            format!(
                "cannot create the network namespace {name}: the network lab needs root \
                 (CAP_SYS_ADMIN and CAP_NET_ADMIN) and iproute2"
            )
        })?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n <ns> args…`
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `tc -n <ns> args…`
    pub fn tc(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", &self.name];
        all.extend_from_slice(args);
        run("tc", &all)
    }

    /// Runs `program args…` inside the namespace and returns its stdout.
    pub fn exec(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut all = vec!["netns", "exec", &self.name, program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Runs `program` inside the namespace with `stdin` as its input.
    pub fn exec_with_input(&self, program: &str, args: &[&str], stdin: &str) -> Result<String> {
        use std::io::Write;
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot run {program}"))?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(stdin.as_bytes())?;
        let output = child.wait_with_output()?;
        if !output.status.success() {
            bail!(
                "{program} {args:?} in {} failed: {}\n{stdin}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`, which execs it:
    /// the child's pid is the program's).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }

    /// Moves the calling thread into the namespace: sockets it creates from now on, and
    /// threads it starts, live there.
    pub fn enter(&self) -> Result<()> {
        enter(&self.name)
    }

    /// Sets a sysctl inside the namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        self.exec("sysctl", &["-qw", &format!("{key}={value}")])
            .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        remove(&self.name);
    }
}

/// Moves the calling thread into the namespace called `name` (see [`Netns::enter`]).
pub fn enter(name: &str) -> Result<()> {
    let path = PathBuf::from("/run/netns").join(name);
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open {}", path.display()))?;
    use std::os::fd::AsRawFd;
    // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
    if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        bail!("setns into {name}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Kills what still runs in namespace `name` (only the lab's own processes can be there)
/// and deletes it.
fn remove(name: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            // SAFETY: sending a signal has no memory effects.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = run("ip", &["netns", "delete", name]);
}

/// Deletes namespaces left behind by lab processes that no longer run.
pub fn sweep_stale() {
    let Ok(list) = run("ip", &["netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(pid, 0) } == 0;
        if !alive {
            remove(name);
        }
    }
}

/// Runs a command to completion; its stdout, or an error with its stderr.
pub fn run(program: &str, args: &[&str]) -> Result<String> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {program} (is it installed?)"))?;
    if !output.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
