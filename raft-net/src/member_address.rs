//! What a `SetAddress` may bind a member to. The check is a pure function of the command's
//! bytes, so every replica that applies the same entry reaches the same verdict.

use core::fmt;
use core::net::{IpAddr, Ipv6Addr, SocketAddr};
use core::str::FromStr;

/// Longest `host:port` accepted for a client (HTTP) address: a full DNS name (253 bytes) or a
/// bracketed IPv6 literal, a colon and five digits.
pub const HTTP_ADDR_BYTES_MAX: usize = 253 + 1 + 5;
/// Longest DNS label.
const LABEL_BYTES_MAX: usize = 63;

/// Why an address cannot be recorded for a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressError {
    /// Node id 0 is reserved.
    ReservedId,
    /// The Raft address is not an `IP:port` literal (peers never resolve names).
    RaftNotIpLiteral,
    /// The Raft address is an unspecified (`0.0.0.0`, `::`), multicast or broadcast IP, or
    /// port 0: nothing a peer can send to.
    RaftNotUnicast,
    /// The HTTP address is not `host:port` with a DNS name or IP literal and a port 1-65535.
    HttpMalformed,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::ReservedId => "node id 0 is reserved",
            AddressError::RaftNotIpLiteral => {
                "the Raft address must be an IP literal with a port, such as 127.0.0.1:9000"
            }
            AddressError::RaftNotUnicast => {
                "the Raft address must be a unicast IP and a port other than 0 (not 0.0.0.0, ::, multicast or broadcast)"
            }
            AddressError::HttpMalformed => {
                "the HTTP address must be host:port, the host a DNS name or an IP literal ([v6] in brackets), the port 1-65535"
            }
        })
    }
}

/// Checks a member address as `KvStore` does before applying a `SetAddress`; the Raft address,
/// parsed, when both are acceptable.
pub fn check_member_address(
    id: u64,
    raft_addr: &str,
    http_addr: &str,
) -> Result<SocketAddr, AddressError> {
    if id == 0 {
        return Err(AddressError::ReservedId);
    }
    let raft = SocketAddr::from_str(raft_addr).map_err(|_| AddressError::RaftNotIpLiteral)?;
    let unicast = match raft.ip() {
        IpAddr::V4(ip) => !ip.is_unspecified() && !ip.is_multicast() && !ip.is_broadcast(),
        IpAddr::V6(ip) => !ip.is_unspecified() && !ip.is_multicast(),
    };
    if !unicast || raft.port() == 0 {
        return Err(AddressError::RaftNotUnicast);
    }
    if !is_host_port(http_addr) {
        return Err(AddressError::HttpMalformed);
    }
    Ok(raft)
}

/// `host:port`, the host a bracketed IPv6 literal, an IPv4 literal or a DNS name.
fn is_host_port(text: &str) -> bool {
    if text.len() > HTTP_ADDR_BYTES_MAX {
        return false;
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && u16::from_str(port).is_ok_and(|port| port != 0);
    if !port_ok {
        return false;
    }
    if let Some(inner) = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
    {
        return Ipv6Addr::from_str(inner).is_ok();
    }
    is_dns_name(host)
}

/// Letters, digits and hyphens in dot-separated labels of 1-63 bytes, no label starting or
/// ending with a hyphen (RFC 1123). IPv4 literals are such names too.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= LABEL_BYTES_MAX
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_addresses_pass() {
        for (raft, http) in [
            ("127.0.0.1:9000", "127.0.0.1:8000"),
            ("10.1.2.3:1", "node-1.example.com:443"),
            ("[::1]:9000", "[::1]:8000"),
            ("[fe80::1]:9000", "localhost:8000"),
        ] {
            assert!(check_member_address(4, raft, http).is_ok(), "{raft} {http}");
        }
    }

    #[test]
    fn malformed_addresses_are_refused() {
        let http = "127.0.0.1:8000";
        let cases = [
            (0, "127.0.0.1:9000", http, AddressError::ReservedId),
            (4, "localhost:9000", http, AddressError::RaftNotIpLiteral),
            (4, "127.0.0.1", http, AddressError::RaftNotIpLiteral),
            (4, "", http, AddressError::RaftNotIpLiteral),
            (4, "0.0.0.0:9000", http, AddressError::RaftNotUnicast),
            (4, "[::]:9000", http, AddressError::RaftNotUnicast),
            (4, "224.0.0.1:9000", http, AddressError::RaftNotUnicast),
            (
                4,
                "255.255.255.255:9000",
                http,
                AddressError::RaftNotUnicast,
            ),
            (4, "127.0.0.1:0", http, AddressError::RaftNotUnicast),
        ];
        for (id, raft, http, want) in cases {
            assert_eq!(check_member_address(id, raft, http), Err(want), "{raft}");
        }
        let long = "a".repeat(64);
        let too_long = format!("{}:80", "a.".repeat(130));
        let long = format!("{long}:80");
        for http in [
            "",
            "host",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            ":80",
            "ho st:80",
            "host/path:80",
            "user@host:80",
            "-host:80",
            "a..b:80",
            "::1:80",
            "[::1:80",
            "[nonsense]:80",
            &long,
            &too_long,
        ] {
            assert_eq!(
                check_member_address(4, "127.0.0.1:9000", http),
                Err(AddressError::HttpMalformed),
                "{http:?}"
            );
        }
    }
}
