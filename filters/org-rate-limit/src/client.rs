//! Which client an anonymous request comes from, so that anonymous traffic
//! gets a bucket per client: one client hammering `/ready` must not empty the
//! bucket every other client's `/.well-known/oauth-protected-resource` uses
//! (issue 12).
//!
//! The address is the downstream peer (`source.address`), or, behind proxies
//! you run (an Istio ingress gateway: every external request then comes from
//! its pod), a header those proxies set: `x-forwarded-for` read
//! `trusted_hops` entries from the right, like Istio's `numTrustedProxies`, or
//! a single-value header such as `x-envoy-external-address`.

use crate::config::{AnonymousClient, ClientSource};

/// Longest client key kept (an IPv6 address is at most 45 characters).
const MAX_CLIENT_LEN: usize = 45;

/// The key of clients whose address cannot be read: they share one bucket.
pub const UNKNOWN_CLIENT: &str = "unknown";

/// The client key of one anonymous request from the raw value read (the
/// `source.address` property or the header), or [`UNKNOWN_CLIENT`].
pub fn client_key(config: &AnonymousClient, raw: Option<&str>) -> String {
    let address = match config.from {
        ClientSource::None => return String::new(),
        ClientSource::SourceAddress => raw.map(strip_port),
        ClientSource::Header => raw.and_then(|v| {
            let hops = usize::try_from(config.trusted_hops).unwrap_or(usize::MAX);
            v.rsplit(',').nth(hops).map(str::trim).map(strip_port)
        }),
    };
    match address {
        Some(a) if is_address(a) => a.to_ascii_lowercase(),
        _ => UNKNOWN_CLIENT.to_string(),
    }
}

/// `1.2.3.4:5678` -> `1.2.3.4`, `[::1]:80` -> `::1`; a bare address stays.
fn strip_port(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match value.rsplit_once(':') {
        // One colon: IPv4 with a port. More: a bare IPv6 address.
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => value,
    }
}

/// Only address characters, so a client cannot mint keys of its own shape.
fn is_address(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= MAX_CLIENT_LEN
        && value
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(source: ClientSource, hops: u32) -> AnonymousClient {
        AnonymousClient {
            from: source,
            trusted_hops: hops,
            ..AnonymousClient::default()
        }
    }

    #[test]
    fn source_addresses_lose_their_port() {
        let c = AnonymousClient::default();
        assert_eq!(client_key(&c, Some("10.1.2.3:51234")), "10.1.2.3");
        assert_eq!(client_key(&c, Some("[2001:DB8::1]:443")), "2001:db8::1");
        assert_eq!(client_key(&c, Some("::1")), "::1");
        assert_eq!(client_key(&c, None), UNKNOWN_CLIENT);
    }

    #[test]
    fn forwarded_for_is_read_past_the_trusted_hops() {
        let xff = Some("6.6.6.6, 203.0.113.9, 10.0.0.5");
        assert_eq!(client_key(&from(ClientSource::Header, 0), xff), "10.0.0.5");
        assert_eq!(
            client_key(&from(ClientSource::Header, 1), xff),
            "203.0.113.9"
        );
        assert_eq!(
            client_key(&from(ClientSource::Header, 5), xff),
            UNKNOWN_CLIENT
        );
    }

    #[test]
    fn junk_cannot_mint_keys() {
        let c = from(ClientSource::Header, 0);
        for junk in ["evil|orl1|acme", "", "x".repeat(100).as_str(), "1.2.3.4 5"] {
            assert_eq!(client_key(&c, Some(junk)), UNKNOWN_CLIENT, "{junk}");
        }
        assert_eq!(
            client_key(&from(ClientSource::None, 0), Some("1.2.3.4")),
            ""
        );
    }
}
