//! Typing option values the way oslo.config does: booleans, bounded
//! integers, ports, hosts, `host:port` lists, comma lists, socket addresses.
//! Each parser takes the substituted text and returns the value or the
//! reason it is not one; the caller adds file, section, option and value.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// oslo.config booleans: true/false, yes/no, on/off, 1/0, any case.
pub(crate) fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err("not a boolean (true/false, yes/no, on/off, 1/0)".to_string()),
    }
}

/// The bounds `min..=max` as messages state them.
pub(crate) fn range(min: u64, max: u64) -> String {
    if max == u64::MAX {
        format!("must be at least {min}")
    } else {
        format!("must be between {min} and {max}")
    }
}

/// A whole number in `min..=max`.
pub(crate) fn integer(text: &str, min: u64, max: u64) -> Result<u64, String> {
    let range = || range(min, max);
    let t = text.trim();
    let digits = t.strip_prefix('+').unwrap_or(t);
    if let Some(negative) = digits.strip_prefix('-') {
        if !negative.is_empty() && negative.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("negative: {}", range()));
        }
    }
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("not a whole number ({})", range()));
    }
    match digits.parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!("out of range: {}", range())),
    }
}

/// A TCP port, 1-65535.
pub(crate) fn port(text: &str) -> Result<u16, String> {
    let t = text.trim();
    match t.parse::<u16>() {
        Ok(p) if p > 0 && t.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err("not a port number (1-65535)".to_string()),
    }
}

/// An IP address or a host name (oslo's HostAddressOpt).
pub(crate) fn host(text: &str) -> Result<String, String> {
    let t = text.trim();
    if is_host(t) {
        Ok(t.to_string())
    } else {
        Err("not an IP address or host name".to_string())
    }
}

fn is_host(t: &str) -> bool {
    if t.parse::<IpAddr>().is_ok() {
        return true;
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().is_ok();
    }
    !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// One `host:port`, IPv6 hosts in brackets (`[::1]:9092`).
fn host_port(item: &str) -> Result<String, String> {
    let bad = || format!("{item:?} is not host:port");
    let (h, p) = item.rsplit_once(':').ok_or_else(bad)?;
    if h.contains(':') && !(h.starts_with('[') && h.ends_with(']')) {
        return Err(format!(
            "{item:?} is not host:port (write IPv6 hosts in brackets: [::1]:9092)"
        ));
    }
    if !is_host(h) {
        return Err(format!(
            "{item:?} is not host:port: {h:?} is not an IP address or host name"
        ));
    }
    port(p)
        .map_err(|_| format!("{item:?} is not host:port: {p:?} is not a port number (1-65535)"))?;
    Ok(item.to_string())
}

/// A comma list of `host:port` items; at least one.
pub(crate) fn host_port_list(text: &str) -> Result<Vec<String>, String> {
    let items = list(text);
    if items.is_empty() {
        return Err("no host:port given".to_string());
    }
    items.iter().map(|i| host_port(i)).collect()
}

/// A comma list: items trimmed, empty items dropped.
pub(crate) fn list(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// An `IP:port` socket address to listen on.
pub(crate) fn socket_addr(text: &str) -> Result<SocketAddr, String> {
    text.trim().parse::<SocketAddr>().map_err(|_| {
        "not an IP:port address (for example 127.0.0.1:8091 or [::1]:8091)".to_string()
    })
}

/// A non-empty string (names Kafka and InfluxDB refuse when empty).
pub(crate) fn non_empty(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.is_empty() {
        Err("must not be empty".to_string())
    } else {
        Ok(t.to_string())
    }
}

/// What `group_instance_name` is when no file sets it: the host name.
pub(crate) const HOST_NAME: &str = "<host name>";

/// Longest static-membership instance name: the ids made of it,
/// `<name>-<topic>-<thread>`, must stay within Kafka's 249 characters.
const MAX_GROUP_INSTANCE_NAME: usize = 160;

/// A static-membership instance name: the characters Kafka allows in a
/// `group.instance.id` (letters, digits, `.`, `_`, `-`), [`HOST_NAME`], or
/// empty (static membership off).
pub(crate) fn group_instance_name(text: &str) -> Result<Option<String>, String> {
    let t = text.trim();
    if t == HOST_NAME {
        return Ok(None);
    }
    if let Some(c) = t
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{c:?} is not allowed in a Kafka group instance id (letters, digits, '.', '_' and '-' are; empty turns static membership off)"
        ));
    }
    if t.len() > MAX_GROUP_INSTANCE_NAME {
        return Err(format!(
            "too long: at most {MAX_GROUP_INSTANCE_NAME} characters (the instance ids <name>-<topic>-<thread> must fit Kafka's 249)"
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_follow_oslo() {
        for t in ["true", "TRUE", "Yes", "on", "1", " True "] {
            assert_eq!(boolean(t), Ok(true), "{t}");
        }
        for t in ["false", "False", "NO", "off", "0"] {
            assert_eq!(boolean(t), Ok(false), "{t}");
        }
        for t in ["", "2", "y", "enabled", "truee"] {
            assert!(boolean(t).is_err(), "{t}");
        }
    }

    #[test]
    fn integers_are_bounded() {
        assert_eq!(integer("42", 1, 100), Ok(42));
        assert_eq!(integer("+7", 0, u64::MAX), Ok(7));
        assert_eq!(
            integer("-1", 1, u64::MAX),
            Err("negative: must be at least 1".to_string())
        );
        assert_eq!(
            integer("0", 1, 10),
            Err("out of range: must be between 1 and 10".to_string())
        );
        assert!(integer("abc", 0, 10)
            .unwrap_err()
            .starts_with("not a whole number"));
        assert!(integer("1.5", 0, 10).is_err());
        assert!(integer("99999999999999999999999", 0, u64::MAX)
            .unwrap_err()
            .starts_with("out of range"));
        assert!(integer("-", 0, 10)
            .unwrap_err()
            .starts_with("not a whole number"));
    }

    #[test]
    fn ports_are_1_to_65535() {
        assert_eq!(port("8086"), Ok(8086));
        for t in ["0", "65536", "abc", "-1", "+80", ""] {
            assert_eq!(
                port(t),
                Err("not a port number (1-65535)".to_string()),
                "{t}"
            );
        }
    }

    #[test]
    fn hosts_and_host_port_lists() {
        for t in [
            "127.0.0.1",
            "::1",
            "[::1]",
            "influx-1.example.com",
            "kafka_1",
        ] {
            assert!(host(t).is_ok(), "{t}");
        }
        for t in ["", "a b", "-x", "a..b", "http://x"] {
            assert!(host(t).is_err(), "{t}");
        }
        assert_eq!(
            host_port_list(" a:1, ,b.c:9092,[::1]:9093,"),
            Ok(vec![
                "a:1".to_string(),
                "b.c:9092".to_string(),
                "[::1]:9093".to_string()
            ])
        );
        assert!(host_port_list("a")
            .unwrap_err()
            .contains("\"a\" is not host:port"));
        assert!(host_port_list("a:0")
            .unwrap_err()
            .contains("not a port number"));
        assert!(host_port_list("::1:9092").unwrap_err().contains("brackets"));
        assert!(host_port_list(" , ").is_err());
    }

    #[test]
    fn lists_trim_and_drop_empties() {
        assert_eq!(list(" a ,,b,\n c "), vec!["a", "b", "c"]);
        assert!(list("").is_empty());
    }

    #[test]
    fn socket_addresses() {
        assert_eq!(socket_addr("0.0.0.0:8091").map(|a| a.port()), Ok(8091));
        assert!(socket_addr("localhost:8091").is_err());
        assert!(socket_addr("127.0.0.1").is_err());
    }
}
