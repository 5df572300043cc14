//! TCP segments as they cross a network namespace's interfaces, read from an AF_PACKET socket
//! (what tcpdump reads): the wire evidence of the distributed labs — who sent which flags and
//! how many bytes, in which order — without tcpdump, on any machine with CAP_NET_RAW.

use crate::error::{Error, Result};
use std::fmt;
use std::net::SocketAddrV4;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

/// One TCP segment, timed from the capture's start.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Seconds since the capture opened.
    pub t: f64,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
    pub seq: u32,
    pub ack: u32,
    /// Payload bytes.
    pub len: usize,
}

impl Segment {
    /// tcpdump's flag letters: S, S., ., P., F., R.
    pub fn flags(&self) -> String {
        let mut f = String::new();
        for (on, c) in [
            (self.syn, 'S'),
            (self.fin, 'F'),
            (self.rst, 'R'),
            (self.psh, 'P'),
        ] {
            if on {
                f.push(c);
            }
        }
        if self.ack_flag {
            f.push('.');
        }
        f
    }

    /// The segment's name as the course says it: SYN, SYN-ACK, ACK, FIN-ACK, PSH-ACK, RST.
    pub fn name(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        for (on, n) in [
            (self.syn, "SYN"),
            (self.fin, "FIN"),
            (self.rst, "RST"),
            (self.psh, "PSH"),
            (self.ack_flag, "ACK"),
        ] {
            if on {
                parts.push(n);
            }
        }
        parts.join("-")
    }
}

/// `0.001234 10.255.0.2:40312 > 10.255.0.1:9875 [S.] seq 1 ack 2 len 0`: a line a student
/// reads, and that FromStr reads back.
impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "{:.6} {} > {} [{}] seq {} ack {} len {}",
            self.t,
            self.src,
            self.dst,
            self.flags(),
            self.seq,
            self.ack,
            self.len
        )
    }
}

impl FromStr for Segment {
    type Err = String;
    fn from_str(line: &str) -> std::result::Result<Segment, String> {
        let bad = || format!("not a segment line: {line:?}");
        let w: Vec<&str> = line.split_whitespace().collect();
        let [t, src, ">", dst, flags, "seq", seq, "ack", ack, "len", len] = w[..] else {
            return Err(bad());
        };
        let flags = flags
            .strip_prefix('[')
            .and_then(|f| f.strip_suffix(']'))
            .ok_or_else(bad)?;
        let num = |s: &str| s.parse::<u32>().map_err(|_| bad());
        Ok(Segment {
            t: t.parse().map_err(|_| bad())?,
            src: src.parse().map_err(|_| bad())?,
            dst: dst.parse().map_err(|_| bad())?,
            syn: flags.contains('S'),
            ack_flag: flags.contains('.'),
            fin: flags.contains('F'),
            rst: flags.contains('R'),
            psh: flags.contains('P'),
            seq: num(seq)?,
            ack: num(ack)?,
            len: num(len)? as usize,
        })
    }
}

/// An IPv4 packet (from its IP header on) as a TCP segment; None for anything else.
pub fn parse(packet: &[u8], t: f64) -> Option<Segment> {
    let ip = etherparse::Ipv4Slice::from_slice(packet).ok()?;
    if ip.header().protocol() != etherparse::IpNumber::TCP {
        return None;
    }
    let tcp = etherparse::TcpSlice::from_slice(ip.payload().payload).ok()?;
    Some(Segment {
        t,
        src: SocketAddrV4::new(ip.header().source_addr(), tcp.source_port()),
        dst: SocketAddrV4::new(ip.header().destination_addr(), tcp.destination_port()),
        syn: tcp.syn(),
        ack_flag: tcp.ack(),
        fin: tcp.fin(),
        rst: tcp.rst(),
        psh: tcp.psh(),
        seq: tcp.sequence_number(),
        ack: tcp.acknowledgment_number(),
        len: tcp.payload().len(),
    })
}

/// A packet socket on every interface of the caller's network namespace, IPv4 only.
pub struct Capture {
    fd: OwnedFd,
    t0: Instant,
}

impl Capture {
    pub fn open() -> Result<Capture> {
        // ETH_P_ALL: only such a socket is shown what this namespace sends, not just what it
        // receives. SOCK_DGRAM: the kernel strips the link header, so every interface (veth,
        // loopback) hands us the IP packet alike.
        let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                proto,
            )
        };
        if fd < 0 {
            let e = std::io::Error::last_os_error();
            return Err(Error::io(&e, "socket", "AF_PACKET (needs CAP_NET_RAW)"));
        }
        Ok(Capture {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            t0: Instant::now(),
        })
    }

    /// The next TCP segment to or from `port`, or None when none came within `wait`.
    pub fn next(&mut self, port: u16, wait: Duration) -> Result<Option<Segment>> {
        let end = Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let ready = crate::signals::poll_fds(&[self.fd.as_fd()], Some(left))?;
            if ready.first() != Some(&true) {
                return Ok(None);
            }
            let mut buf = [0u8; 65536];
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                    (&mut from as *mut libc::sockaddr_ll).cast(),
                    &mut len,
                )
            };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(&e, "recvfrom", "packet socket"));
            }
            if from.sll_protocol != (libc::ETH_P_IP as u16).to_be() {
                continue;
            }
            // The loopback shows each packet twice, leaving and arriving: keep the arrival.
            if from.sll_pkttype == libc::PACKET_OUTGOING && is_loopback(from.sll_ifindex) {
                continue;
            }
            let t = self.t0.elapsed().as_secs_f64();
            if let Some(s) = parse(&buf[..n as usize], t) {
                if s.src.port() == port || s.dst.port() == port {
                    return Ok(Some(s));
                }
            }
        }
    }
}

/// Whether a connection has ended on the wire: a FIN each way and the ACK of the second, or
/// a reset.
#[derive(Default)]
pub struct Ended {
    fins: Vec<SocketAddrV4>,
    done: bool,
}

impl Ended {
    /// Takes the next segment; true once the connection is over.
    pub fn see(&mut self, s: &Segment) -> bool {
        if s.rst {
            self.done = true;
        } else if s.fin && !self.fins.contains(&s.src) {
            self.fins.push(s.src);
        } else if self.fins.len() == 2 && s.ack_flag && s.len == 0 && !s.fin {
            self.done = true;
        }
        self.done
    }
}

/// `ipclab capture --port P`: one line per segment of P, until a connection ends (with
/// `until_closed`) or a signal. Exit 0; 2 if the socket cannot be opened.
pub fn capture(port: u16, until_closed: bool) -> Result<i32> {
    use std::io::Write as _;
    let mut cap = Capture::open().map_err(|e| Error::usage(e.to_string()))?;
    let mut out = std::io::stdout().lock();
    // "listening" is what tcpdump says once its socket is open: a reader starts the client then.
    let said = writeln!(
        out,
        "listening on every interface of this network namespace, TCP port {port}"
    );
    if said.is_err() {
        return Ok(1);
    }
    let mut ended = Ended::default();
    loop {
        let Some(s) = cap.next(port, Duration::from_secs(3600))? else {
            continue;
        };
        if writeln!(out, "{s}").is_err() {
            // The reader went away (EPIPE): nobody is left to tell.
            return Ok(1);
        }
        if until_closed && ended.see(&s) {
            return Ok(0);
        }
    }
}

fn is_loopback(ifindex: i32) -> bool {
    nix::net::if_::if_nametoindex("lo").is_ok_and(|i| i as i32 == ifindex)
}

/// Sequence and acknowledgment numbers made relative to each side's first (its SYN's), as
/// tcpdump prints them by default: the SYN is 0, the first data byte 1.
pub fn relative(segments: &[Segment]) -> Vec<Segment> {
    let mut isn: Vec<(SocketAddrV4, u32)> = Vec::new();
    for s in segments {
        if !isn.iter().any(|(a, _)| *a == s.src) {
            isn.push((s.src, s.seq));
        }
    }
    let of = |a: SocketAddrV4| isn.iter().find(|(x, _)| *x == a).map(|(_, n)| *n);
    segments
        .iter()
        .map(|s| {
            let mut r = s.clone();
            r.seq = s.seq.wrapping_sub(of(s.src).unwrap_or(s.seq));
            if s.ack_flag {
                r.ack = of(s.dst).map_or(s.ack, |n| s.ack.wrapping_sub(n));
            }
            r
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A SYN from 10.255.0.2:40000 to 10.255.0.1:9875, seq 1000, with 4 bytes of TCP options.
    fn syn() -> Vec<u8> {
        let b = etherparse::PacketBuilder::ipv4([10, 255, 0, 2], [10, 255, 0, 1], 64)
            .tcp(40000, 9875, 1000, 64240)
            .syn()
            .options(&[etherparse::TcpOptionElement::MaximumSegmentSize(1460)])
            .unwrap();
        let mut out = Vec::new();
        b.write(&mut out, &[]).unwrap();
        out
    }

    #[test]
    fn a_syn_is_parsed_and_its_line_reads_back() {
        let s = parse(&syn(), 0.5).unwrap();
        assert_eq!(s.src, "10.255.0.2:40000".parse().unwrap());
        assert_eq!(s.dst.port(), 9875);
        assert!(s.syn && !s.ack_flag && !s.fin);
        assert_eq!(
            (s.seq, s.len, s.flags(), s.name()),
            (1000, 0, "S".into(), "SYN".into())
        );
        let line = s.to_string();
        assert_eq!(
            line,
            "0.500000 10.255.0.2:40000 > 10.255.0.1:9875 [S] seq 1000 ack 0 len 0"
        );
        assert_eq!(line.parse::<Segment>().unwrap(), s);
        assert!("0.5 a > b [S]".parse::<Segment>().is_err());
    }

    #[test]
    fn data_length_and_non_tcp() {
        let b = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(9875, 40000, 7, 100)
            .psh()
            .ack(1001);
        let mut out = Vec::new();
        b.write(&mut out, b"hello\n").unwrap();
        let s = parse(&out, 0.0).unwrap();
        assert_eq!(
            (s.len, s.flags(), s.name()),
            (6, "P.".into(), "PSH-ACK".into())
        );
        let udp = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64).udp(1, 2);
        let mut u = Vec::new();
        udp.write(&mut u, b"x").unwrap();
        assert!(parse(&u, 0.0).is_none());
        assert!(parse(&out[..10], 0.0).is_none());
    }

    #[test]
    fn a_connection_ends_after_both_fins_and_the_last_ack() {
        let l = |x: &str| x.parse::<Segment>().unwrap();
        let (c, s) = ("10.0.0.2:4", "10.0.0.1:9");
        let mut e = Ended::default();
        for line in [
            format!("0 {c} > {s} [S] seq 0 ack 0 len 0"),
            format!("0 {s} > {c} [S.] seq 0 ack 1 len 0"),
            format!("0 {c} > {s} [.] seq 1 ack 1 len 0"),
            format!("0 {c} > {s} [F.] seq 1 ack 1 len 0"),
            format!("0 {s} > {c} [.] seq 1 ack 2 len 0"),
            format!("0 {s} > {c} [F.] seq 1 ack 2 len 0"),
        ] {
            assert!(!e.see(&l(&line)), "{line}");
        }
        assert!(e.see(&l(&format!("0 {c} > {s} [.] seq 2 ack 2 len 0"))));
        let mut r = Ended::default();
        assert!(r.see(&l(&format!("0 {s} > {c} [R.] seq 0 ack 1 len 0"))));
    }

    #[test]
    fn numbers_are_made_relative_per_side() {
        let a: SocketAddrV4 = "10.0.0.2:40000".parse().unwrap();
        let b: SocketAddrV4 = "10.0.0.1:9875".parse().unwrap();
        let seg = |src, dst, syn, ack_flag, seq, ack| Segment {
            t: 0.0,
            src,
            dst,
            syn,
            ack_flag,
            fin: false,
            rst: false,
            psh: false,
            seq,
            ack,
            len: 0,
        };
        let r = relative(&[
            seg(a, b, true, false, 1000, 0),
            seg(b, a, true, true, u32::MAX, 1001),
            seg(a, b, false, true, 1001, 0),
        ]);
        assert_eq!((r[0].seq, r[0].ack), (0, 0));
        assert_eq!((r[1].seq, r[1].ack), (0, 1));
        assert_eq!((r[2].seq, r[2].ack), (1, 1));
    }
}
