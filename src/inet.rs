//! Internet sockets as lab 8 teaches them: the calls std hides (recvfrom with MSG_TRUNC, the
//! source address of a datagram) and error messages that say what the student can do.

use crate::error::{Error, Result};
use nix::errno::Errno;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd};

/// `host:port` resolved (getaddrinfo), the first IPv4 address; a bad name is bad input.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::usage(format!("cannot resolve {host}: {e}")))?
        .find(SocketAddr::is_ipv4)
        .ok_or_else(|| Error::usage(format!("{host} has no IPv4 address")))
}

/// A bind failure, said as the student meets it: EACCES is a privileged port, EADDRINUSE a
/// port somebody holds. Exit status 1 (a run-time failure, not bad usage).
pub fn bind_error(e: &std::io::Error, addr: SocketAddr) -> Error {
    let errno = Errno::from_raw(e.raw_os_error().unwrap_or(0));
    let hint = match errno {
        Errno::EACCES => format!(
            ": ports below {} need privilege (CAP_NET_BIND_SERVICE); use one above",
            unprivileged_port_start()
        ),
        Errno::EADDRINUSE => ": another socket holds this port; stop it or choose another".into(),
        _ => String::new(),
    };
    Error::io(e, "bind", addr).with_hint(&hint)
}

/// The first port a normal user may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default).
pub fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// One datagram: its bytes (at most the buffer), its real length and where it came from.
pub struct Datagram {
    pub data: Vec<u8>,
    pub len: usize,
    pub from: SocketAddr,
}

/// recvfrom(fd, buf, MSG_TRUNC): with MSG_TRUNC the kernel returns the datagram's whole length
/// even when the buffer held less, so a cut datagram is seen as cut (the rest is lost).
pub fn recv_datagram(sock: &std::net::UdpSocket, buffer: usize) -> Result<Datagram> {
    let mut buf = vec![0u8; buffer];
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut alen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // Safety: buf and addr outlive the call; the kernel writes at most their lengths.
    let n = unsafe {
        libc::recvfrom(
            sock.as_fd().as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_TRUNC,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut alen,
        )
    };
    if n < 0 {
        return Err(Error::sys(Errno::last(), "recvfrom", "the UDP socket"));
    }
    let len = n as usize;
    buf.truncate(len.min(buffer));
    let from = if addr.ss_family as i32 == libc::AF_INET {
        // Safety: the family says the storage holds a sockaddr_in.
        let a: libc::sockaddr_in =
            unsafe { std::ptr::read((&addr as *const libc::sockaddr_storage).cast()) };
        SocketAddr::from((
            u32::from_be(a.sin_addr.s_addr).to_be_bytes(),
            u16::from_be(a.sin_port),
        ))
    } else {
        SocketAddr::from(([0, 0, 0, 0], 0))
    };
    Ok(Datagram {
        data: buf,
        len,
        from,
    })
}

/// Bytes as a student reads them in a log line: text, with what is not printable escaped.
pub fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).escape_debug().to_string()
}

/// One line of the kernel's socket table (/proc/net/tcp or udp): what `ss` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SockEntry {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// ss's name for the state: LISTEN, ESTAB, TIME-WAIT, UNCONN (a bound UDP socket), ...
    pub state: &'static str,
    pub inode: u64,
}

/// The IPv4 sockets of `proto` ("tcp" or "udp") of this network namespace.
pub fn sockets(proto: &str) -> Vec<SockEntry> {
    let text = std::fs::read_to_string(format!("/proc/net/{proto}")).unwrap_or_default();
    parse_table(&text, proto == "udp")
}

/// A whole /proc/net/tcp or udp text (another namespace's: /proc/PID/net/tcp).
pub fn parse_table(text: &str, udp: bool) -> Vec<SockEntry> {
    text.lines()
        .skip(1)
        .filter_map(|l| parse_entry(l, udp))
        .collect()
}

fn parse_entry(line: &str, udp: bool) -> Option<SockEntry> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let addr = |s: &str| -> Option<SocketAddr> {
        let (ip, port) = s.split_once(':')?;
        // The kernel prints the address as a host-order word of network-order bytes.
        let ip = u32::from_str_radix(ip, 16).ok()?.to_le_bytes();
        Some(SocketAddr::from((ip, u16::from_str_radix(port, 16).ok()?)))
    };
    let st = u8::from_str_radix(w.get(3)?, 16).ok()?;
    let state = match (st, udp) {
        (7, true) => "UNCONN",
        (1, true) => "ESTAB",
        (1, false) => "ESTAB",
        (2, _) => "SYN-SENT",
        (3, _) => "SYN-RECV",
        (4, _) => "FIN-WAIT-1",
        (5, _) => "FIN-WAIT-2",
        (6, _) => "TIME-WAIT",
        (7, _) => "CLOSE",
        (8, _) => "CLOSE-WAIT",
        (9, _) => "LAST-ACK",
        (10, _) => "LISTEN",
        (11, _) => "CLOSING",
        _ => "UNKNOWN",
    };
    Some(SockEntry {
        local: addr(w.get(1)?)?,
        remote: addr(w.get(2)?)?,
        state,
        inode: w.get(9)?.parse().ok()?,
    })
}

/// A TCP socket listens on `port` in this network namespace.
pub fn tcp_listening(port: u16) -> bool {
    sockets("tcp")
        .iter()
        .any(|s| s.state == "LISTEN" && s.local.port() == port)
}

/// A UDP socket is bound to `port` in this network namespace.
pub fn udp_bound(port: u16) -> bool {
    sockets("udp").iter().any(|s| s.local.port() == port)
}

/// A port nothing of ours uses now (the kernel's choice for port 0, given back at once).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io(&e, "bind", "127.0.0.1:0"))?;
    let port = l
        .local_addr()
        .map_err(|e| Error::io(&e, "getsockname", "127.0.0.1:0"))?
        .port();
    if udp_bound(port) {
        return free_port();
    }
    Ok(port)
}

/// A TCP connection to `to` from the local address `from` (any port): a grader's client that
/// the server's log must name by that address (any 127.0.0.0/8 address is this host's).
pub fn connect_from(from: std::net::Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use nix::sys::socket::{self as s, AddressFamily, SockFlag, SockType, SockaddrIn};
    let fd = s::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    s::bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(std::net::SocketAddrV4::new(from, 0)),
    )?;
    let SocketAddr::V4(to) = to else {
        return Err(std::io::Error::from(std::io::ErrorKind::Unsupported));
    };
    s::connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    Ok(TcpStream::from(fd))
}

/// Which of `pids` holds a TCP socket listening on `port`, in the network namespace of the
/// first of them (read from /proc/PID/net/tcp, the socket matched by inode in /proc/PID/fd).
pub fn tcp_listener_of(pids: &[i32], port: u16) -> Option<i32> {
    let first = pids.first()?;
    let inodes = tcp_inodes(*first, |e| e.state == "LISTEN" && e.local.port() == port);
    pids.iter().copied().find(|pid| holds(*pid, &inodes))
}

/// The process that holds the TCP socket `which` picks in the network namespace of `ns_pid`
/// (the table of /proc/NS_PID/net/tcp), among the processes of that namespace: the evidence
/// of who is at either end of a connection, whatever the program said of itself.
pub fn tcp_holder(ns_pid: i32, which: impl Fn(&SockEntry) -> bool) -> Option<i32> {
    let inodes = tcp_inodes(ns_pid, which);
    let ns = std::fs::read_link(format!("/proc/{ns_pid}/ns/net")).ok()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/net")).is_ok_and(|n| n == ns))
        .find(|p| holds(*p, &inodes))
}

fn tcp_inodes(ns_pid: i32, which: impl Fn(&SockEntry) -> bool) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{ns_pid}/net/tcp")).unwrap_or_default();
    parse_table(&text, false)
        .into_iter()
        .filter(which)
        .map(|e| format!("socket:[{}]", e.inode))
        .collect()
}

fn holds(pid: i32, inodes: &[String]) -> bool {
    !inodes.is_empty()
        && std::fs::read_dir(format!("/proc/{pid}/fd")).is_ok_and(|rd| {
            rd.flatten().any(|e| {
                std::fs::read_link(e.path())
                    .is_ok_and(|t| inodes.iter().any(|i| t.as_os_str() == i.as_str()))
            })
        })
}

/// The established TCP connections between `pids`, each process's sockets read from its own
/// descriptors and its own network namespace's table (so processes on different namespace
/// hosts are matched by their addresses there): one pair of indices into `pids` (lower first)
/// per connection. The kernel's view of who talks to whom, whatever the programs log. A
/// connection through a relay is between each end and the relay, not between the two.
pub fn tcp_links(pids: &[i32]) -> Vec<(usize, usize)> {
    let ends: Vec<Vec<(SocketAddr, SocketAddr)>> = pids
        .iter()
        .map(|pid| {
            let mine = socket_inodes(*pid);
            let text = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap_or_default();
            parse_table(&text, false)
                .into_iter()
                .filter(|e| e.state == "ESTAB" && mine.contains(&e.inode))
                .map(|e| (e.local, e.remote))
                .collect()
        })
        .collect();
    let mut links = Vec::new();
    for i in 0..pids.len() {
        for (local, remote) in &ends[i] {
            for (j, theirs) in ends.iter().enumerate().skip(i + 1) {
                if theirs.iter().any(|(l, r)| l == remote && r == local) {
                    links.push((i, j));
                }
            }
        }
    }
    links
}

/// The inodes of the sockets `pid` holds (its /proc/PID/fd links `socket:[N]`).
fn socket_inodes(pid: i32) -> Vec<u64> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| {
                    let t = std::fs::read_link(e.path()).ok()?;
                    t.to_str()?
                        .strip_prefix("socket:[")?
                        .strip_suffix(']')?
                        .parse()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three processes joined in a ring over loopback (each connects to the next one's
    /// listener) are three links, one per connection, each named by its two processes; a
    /// fourth process with no connection has none.
    #[test]
    fn tcp_links_are_the_connections_between_processes() {
        use std::io::{BufRead, Write};
        let python = "/usr/bin/python3";
        if !std::path::Path::new(python).exists() {
            eprintln!("skipped: {python} is not installed");
            return;
        }
        // Each: listen, say its port, read the next one's port, connect, say "up", then
        // accept its predecessor and wait for the end of its input.
        let script = "import socket,sys\n\
l=socket.socket();l.bind(('127.0.0.1',0));l.listen()\n\
print(l.getsockname()[1],flush=True)\n\
n=int(sys.stdin.readline());c=socket.create_connection(('127.0.0.1',n))\n\
a,_=l.accept();print('up',flush=True);sys.stdin.read()\n";
        let mut kids: Vec<std::process::Child> = (0..4)
            .map(|_| {
                std::process::Command::new(python)
                    .args(["-c", script])
                    .stdin(std::process::Stdio::piped())
                    .stdout(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let mut outs: Vec<_> = kids
            .iter_mut()
            .map(|k| std::io::BufReader::new(k.stdout.take().unwrap()))
            .collect();
        let ports: Vec<String> = outs
            .iter_mut()
            .map(|o| {
                let mut l = String::new();
                o.read_line(&mut l).unwrap();
                l
            })
            .collect();
        // 0 -> 1 -> 2 -> 0; the fourth connects to itself (one connection within it).
        for (i, next) in [1, 2, 0, 3].into_iter().enumerate() {
            let stdin = kids[i].stdin.as_mut().unwrap();
            stdin.write_all(ports[next].as_bytes()).unwrap();
            stdin.flush().unwrap();
        }
        for o in &mut outs {
            let mut l = String::new();
            o.read_line(&mut l).unwrap();
            assert_eq!(l.trim(), "up");
        }
        let pids: Vec<i32> = kids.iter().map(|k| k.id() as i32).collect();
        let mut links = tcp_links(&pids);
        for k in &mut kids {
            drop(k.stdin.take());
            k.wait().unwrap();
        }
        links.sort();
        assert_eq!(links, vec![(0, 1), (0, 2), (1, 2)]);
    }

    /// /proc/net lines as the kernel writes them: a listener and a bound UDP socket.
    #[test]
    fn socket_table_lines_parse() {
        let l = "   0: 0100007F:2694 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let e = parse_entry(l, false).unwrap();
        assert_eq!(e.local, "127.0.0.1:9876".parse().unwrap());
        assert_eq!(e.state, "LISTEN");
        assert_eq!(e.inode, 12345);
        let u = "  12: 00000000:2693 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 999 2 0000000000000000 0";
        let e = parse_entry(u, true).unwrap();
        assert_eq!(e.local, "0.0.0.0:9875".parse().unwrap());
        assert_eq!(e.state, "UNCONN");
    }

    /// A real listener is seen in the table, then gone once closed (judged by its socket's
    /// inode: another program may take the same port number at once).
    #[test]
    fn a_listener_is_in_the_table() {
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(tcp_listening(port));
        let link = std::fs::read_link(format!("/proc/self/fd/{}", l.as_raw_fd())).unwrap();
        let inode: u64 = link.to_string_lossy()[8..]
            .trim_end_matches(']')
            .parse()
            .unwrap();
        assert!(sockets("tcp")
            .iter()
            .any(|s| s.inode == inode && s.state == "LISTEN"));
        drop(l);
        assert!(!sockets("tcp").iter().any(|s| s.inode == inode));
    }
}
