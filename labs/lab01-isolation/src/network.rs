//! A new network namespace starts with one device, `lo`, and even that is down.

// ANCHOR: loopback_up
/// Brings the loopback device of the current network namespace up, the way
/// `ip link set lo up` does: read its flags, add IFF_UP, write them back.
pub fn loopback_up() -> nix::Result<()> {
    // EXERCISE: lab01-loopback
    use nix::errno::Errno;
    // Any socket will do: the ioctls address the device by name.
    let kind = libc::SOCK_DGRAM | libc::SOCK_CLOEXEC;
    // SAFETY: socket(2) takes integers only; we own the descriptor it returns.
    let sock = unsafe { libc::socket(libc::AF_INET, kind, 0) };
    if sock < 0 {
        return Err(Errno::last());
    }
    // SAFETY: ifreq is plain C data, for which all zero bytes are valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    let result = (|| {
        let get = libc::SIOCGIFFLAGS as _;
        // SAFETY: SIOCGIFFLAGS fills in the ifreq we pass, which lives on.
        Errno::result(unsafe { libc::ioctl(sock, get, &mut req) })?;
        // SAFETY: SIOCGIFFLAGS just wrote the union's flags member.
        unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
        let set = libc::SIOCSIFFLAGS as _;
        // SAFETY: SIOCSIFFLAGS reads the ifreq we pass.
        Errno::result(unsafe { libc::ioctl(sock, set, &req) })?;
        Ok(())
    })();
    // SAFETY: closes the socket we opened and nothing else uses.
    unsafe { libc::close(sock) };
    result
    // EXERCISE_END: lab01-loopback
}
// ANCHOR_END: loopback_up
