//! Where a server URL points: a host that is an IP literal (what
//! `[influxdb] ip_address` usually holds) is its own address; a host name is
//! looked up by ureq's default resolver.
//!
//! Why not the default resolver for everything: with a timeout configured it
//! runs each lookup on a thread of its own, for every request, pooled
//! connections included, so every write to InfluxDB started and ended a
//! thread only to parse "127.0.0.1".

use std::net::{IpAddr, SocketAddr};

use ureq::config::Config;
use ureq::http::Uri;
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// Resolves IP-literal hosts in place and hands host names to ureq's
/// [`DefaultResolver`].
#[derive(Debug, Default)]
pub(crate) struct LiteralAddressResolver {
    names: DefaultResolver,
}

impl Resolver for LiteralAddressResolver {
    fn resolve(
        &self,
        uri: &Uri,
        config: &Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        match literal_address(uri) {
            Some(address) => {
                let mut addresses = self.empty();
                addresses.push(address);
                Ok(addresses)
            }
            None => self.names.resolve(uri, config, timeout),
        }
    }
}

/// The socket address of `uri` when its host is an IPv4 or (bracketed) IPv6
/// literal, with the scheme's default port when the URI names none.
fn literal_address(uri: &Uri) -> Option<SocketAddr> {
    let authority = uri.authority()?;
    let host = authority.host();
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let ip: IpAddr = host.parse().ok()?;
    let port = match (authority.port_u16(), uri.scheme_str()) {
        (Some(port), _) => port,
        (None, Some("http")) => 80,
        (None, Some("https")) => 443,
        (None, _) => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(uri: &str) -> Option<SocketAddr> {
        literal_address(&uri.parse().ok()?)
    }

    #[test]
    fn ip_literals_are_their_own_address() {
        assert_eq!(
            address("http://127.0.0.1:8086/write?db=mon"),
            Some("127.0.0.1:8086".parse().unwrap())
        );
        assert_eq!(
            address("https://[::1]:8086/query"),
            Some("[::1]:8086".parse().unwrap())
        );
        assert_eq!(
            address("https://10.0.0.7/ping"),
            Some("10.0.0.7:443".parse().unwrap())
        );
        assert_eq!(
            address("http://[fe80::1]/ping"),
            Some("[fe80::1]:80".parse().unwrap())
        );
    }

    #[test]
    fn host_names_are_left_to_the_lookup() {
        assert_eq!(address("http://localhost:8086/write"), None);
        assert_eq!(address("http://influxdb.example.org:8086/write"), None);
        // Not an address, whatever it looks like.
        assert_eq!(address("http://127.0.0.1.nip.io:8086/write"), None);
        assert_eq!(address("http://999.0.0.1:8086/write"), None);
    }
}
