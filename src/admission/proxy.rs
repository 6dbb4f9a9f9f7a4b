//! The client's address behind reverse proxies. Only proxies named with `--trusted-proxy`
//! are believed: a request from one of them comes from the address its `X-Forwarded-For`
//! names, read from the right (the proxy nearest to us appends last) past every trusted
//! hop. A request from anywhere else comes from its TCP peer, whatever it claims.
use std::net::IpAddr;
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The proxies (addresses or CIDR ranges) whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(nets)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client a request from `peer` with `headers` comes from.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.contains(client) {
            return client;
        }
        // Several headers count as one list, in order.
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .collect();
        for hop in hops.iter().rev() {
            let Some(ip) = parse_hop(hop) else {
                // Garbage: believe nothing further left of it.
                break;
            };
            client = ip;
            if !self.contains(ip) {
                break;
            }
        }
        client
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = IpAddr::from_str(hop) {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (ip, _) = rest.split_once(']')?;
        return IpAddr::from_str(ip).ok().map(|ip| ip.to_canonical());
    }
    let (ip, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    IpAddr::from_str(ip).ok().map(|ip| ip.to_canonical())
}

/// `--trusted-proxy` values: an address (`10.0.0.5`, `::1`) or a range (`10.0.0.0/8`).
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = IpNet::from_str(text) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(text)
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not an IP address or CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| parse_net(n).unwrap()).collect())
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let none = TrustedProxies::default();
        let forged = xff(&["203.0.113.9"]);
        assert_eq!(
            none.client_ip(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
        let other = proxies(&["10.0.0.1"]);
        assert_eq!(
            other.client_ip(ip("198.51.100.1"), &forged),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn a_trusted_proxy_forwards_the_client_address() {
        let p = proxies(&["10.0.0.0/8", "::1"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(p.client_ip(ip("10.1.2.3"), &h), ip("203.0.113.9"));
        assert_eq!(p.client_ip(ip("::1"), &h), ip("203.0.113.9"));
        // Whatever the client wrote itself is left of what the proxies appended.
        let h = xff(&["1.1.1.1, 203.0.113.9", "10.0.0.7"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("203.0.113.9"));
        // Ports and brackets, as some proxies write them.
        let h = xff(&["[2001:db8::5]:4711"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("2001:db8::5"));
        let h = xff(&["203.0.113.9:4711"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn missing_or_garbage_headers_fall_back_to_the_nearest_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client_ip(ip("10.0.0.2"), &HeaderMap::new()),
            ip("10.0.0.2")
        );
        let h = xff(&["203.0.113.9, not-an-ip"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.2"));
        let h = xff(&["not-an-ip, 10.0.0.9"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.9"));
        // Only trusted hops: the leftmost is as far as we can see.
        let h = xff(&["10.0.0.8, 10.0.0.9"]);
        assert_eq!(p.client_ip(ip("10.0.0.2"), &h), ip("10.0.0.8"));
    }

    #[test]
    fn mapped_ipv4_peers_are_matched_as_ipv4() {
        let p = proxies(&["127.0.0.1"]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(p.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn trusted_proxy_values_parse() {
        assert_eq!(parse_net("10.0.0.5").unwrap().to_string(), "10.0.0.5/32");
        assert_eq!(parse_net("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(parse_net("::1").unwrap().to_string(), "::1/128");
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("proxy.local").is_err());
    }
}
