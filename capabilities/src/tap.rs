//! Tap devices. rtnetlink refuses to create tun/tap links (the kernel's tun
//! `validate` hook answers EOPNOTSUPP), so a tap is made as `ip tuntap`
//! and the Go reference's netlink library make it: open /dev/net/tun,
//! TUNSETIFF, owner and group, TUNSETPERSIST so it outlives the file, close.
//!
//! The device is created in the namespace of whoever *opened* /dev/net/tun,
//! so only the open happens on the namespace thread; the ioctls act on the
//! already bound file from here.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;

use crate::error::{Error, Result};
use crate::links::TapOptions;
use crate::netns::Netns;

/// Creates the persistent tap `name` in `ns`. Fails with `already-exists`
/// when a link of that name is there (IFF_TUN_EXCL: TUNSETIFF would
/// otherwise attach to an existing tap).
pub fn create(ns: &Netns, name: &str, options: &TapOptions) -> Result<()> {
    let doing = format!("creating tap {name:?} in {}", ns.label());
    let tun: File = ns.run(&format!("{doing} (opening /dev/net/tun)"), || {
        OpenOptions::new().read(true).write(true).open("/dev/net/tun")
    })?;
    let mut flags = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_TUN_EXCL;
    if options.vnet_hdr {
        flags |= libc::IFF_VNET_HDR;
    }
    if options.multi_queue {
        flags |= libc::IFF_MULTI_QUEUE;
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = flags as libc::c_short;
    let fd = tun.as_raw_fd();
    // SAFETY: TUNSETIFF reads (and writes back) one ifreq, which outlives
    // the call; the fd is ours and open.
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &mut request as *mut libc::ifreq) } < 0 {
        let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        // EBUSY is IFF_TUN_EXCL's answer for a name already taken.
        let errno = if errno == libc::EBUSY { libc::EEXIST } else { errno };
        return Err(Error::from_errno(errno, format!("{doing} (TUNSETIFF)")));
    }
    let set = |request: libc::Ioctl, value: libc::c_ulong, what: &str| -> Result<()> {
        // SAFETY: these ioctls take their argument by value; the fd is ours.
        if unsafe { libc::ioctl(fd, request, value) } < 0 {
            return Err(Error::from_io(&std::io::Error::last_os_error(), format!("{doing} ({what})")));
        }
        Ok(())
    };
    let configure = || -> Result<()> {
        if let Some(owner) = options.owner {
            set(libc::TUNSETOWNER, owner.into(), "TUNSETOWNER")?;
        }
        if let Some(group) = options.group {
            set(libc::TUNSETGROUP, group.into(), "TUNSETGROUP")?;
        }
        set(libc::TUNSETPERSIST, 1, "TUNSETPERSIST")
    };
    // Until TUNSETPERSIST the tap goes with the file: an error here leaves
    // nothing behind once `tun` is closed.
    configure()
}
