//! The delay shim: netem is not in this kernel, so a link's delay and jitter come from a
//! userspace loop. The router namespace routes the link's packets (both ways) into a TUN
//! device; this thread reads each one, holds it in the [`DelayLine`] of its direction, and
//! writes it back into the same device, from where the kernel forwards it on.
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::delay_line::DelayLine;
use crate::netns::Netns;

/// How long the loop sleeps at most, so it notices `stop`.
const POLL: Duration = Duration::from_millis(20);

/// Delay and jitter of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Delay {
    pub delay: Duration,
    pub jitter: Duration,
}

pub struct DelayShim {
    settings: Arc<Mutex<[Delay; 2]>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DelayShim {
    /// Creates TUN device `device` in `ns` and starts the loop. Packets addressed to `down_to`
    /// go the down way, all others the up way.
    pub fn start(ns: &Netns, device: &str, down_to: Ipv4Addr) -> Result<DelayShim> {
        let settings = Arc::new(Mutex::new([Delay::default(); 2]));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (settings, stop) = (Arc::clone(&settings), Arc::clone(&stop));
            let ns_name = ns.name().to_owned();
            let device = device.to_owned();
            std::thread::Builder::new()
                .name("delay-shim".into())
                .spawn(move || {
                    let tun = crate::netns::enter(&ns_name).and_then(|()| open_tun(&device));
                    match tun {
                        Ok(tun) => {
                            let _ = ready_tx.send(Ok(()));
                            shim_loop(&tun, down_to, &settings, &stop);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?
        };
        ready_rx.recv().context("the delay shim thread died")??;
        Ok(DelayShim {
            settings,
            stop,
            thread: Some(thread),
        })
    }

    /// Sets the delay of the down way (towards the participant) and the up way.
    pub fn set(&self, down: Delay, up: Delay) {
        if let Ok(mut s) = self.settings.lock() {
            *s = [down, up];
        }
    }
}

impl Drop for DelayShim {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn shim_loop(tun: &OwnedFd, down_to: Ipv4Addr, settings: &Mutex<[Delay; 2]>, stop: &AtomicBool) {
    let mut lines = [DelayLine::new(1), DelayLine::new(2)];
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let next = lines.iter().filter_map(DelayLine::next_due).min();
        let wait = next.map_or(POLL, |due| due.saturating_duration_since(now).min(POLL));
        let mut pfd = libc::pollfd {
            fd: tun.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let timeout = wait.as_micros().div_ceil(1000) as i32;
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, timeout) };
        if ready > 0 && pfd.revents & libc::POLLIN != 0 {
            let current = settings.lock().map(|s| *s).unwrap_or_default();
            // Read everything waiting, without blocking.
            loop {
                // SAFETY: reading into a buffer we own, of its length.
                let n = unsafe { libc::read(tun.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n <= 0 {
                    break;
                }
                let packet = buf[..n as usize].to_vec();
                let way = usize::from(destination(&packet) != Some(down_to));
                let line = &mut lines[way];
                line.set(current[way].delay, current[way].jitter);
                line.push(Instant::now(), packet);
            }
        }
        let now = Instant::now();
        for line in &mut lines {
            while let Some(packet) = line.pop_due(now) {
                // SAFETY: writing a buffer we own, of its length. A failed write is a lost
                // packet, as on a real link.
                unsafe { libc::write(tun.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
            }
        }
    }
}

/// The IPv4 destination of a packet.
fn destination(packet: &[u8]) -> Option<Ipv4Addr> {
    (packet.len() >= 20 && packet[0] >> 4 == 4)
        .then(|| Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]))
}

/// Opens TUN device `name` (created in the calling thread's namespace), non-blocking, without
/// the packet-info header.
fn open_tun(name: &str) -> Result<OwnedFd> {
    // SAFETY: opening a path with a NUL-terminated string.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        bail!("open /dev/net/tun: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: 16 bytes of name, then the flags (a short), padded to 40 bytes.
    let mut ifreq = [0u8; 40];
    if name.len() >= 16 {
        bail!("TUN name too long: {name}");
    }
    ifreq[..name.len()].copy_from_slice(name.as_bytes());
    let flags = (libc::IFF_TUN | libc::IFF_NO_PI) as u16;
    ifreq[16..18].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq-sized buffer.
    if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, ifreq.as_mut_ptr()) } < 0 {
        bail!("TUNSETIFF {name}: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_ipv4_destination() {
        let mut packet = vec![0u8; 28];
        packet[0] = 0x45;
        packet[16..20].copy_from_slice(&[10, 77, 1, 2]);
        assert_eq!(destination(&packet), Some(Ipv4Addr::new(10, 77, 1, 2)));
        packet[0] = 0x60;
        assert_eq!(destination(&packet), None);
        assert_eq!(destination(&[0x45; 10]), None);
    }
}
