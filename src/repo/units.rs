//! Parsers for the short forms users write: durations, memory sizes, CPUs, ports, volumes.

use crate::model::{Mount, Port};

/// `500ms`, `2s`, `1m30s`, `1h`; a bare number is seconds.
pub fn duration_ms(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let too_long = || {
        format!("duration {text:?} is too long: at most {MAX_DURATION_MS} ms (about 292 years, Docker counts in nanoseconds)")
    };
    if let Ok(secs) = t.parse::<u64>() {
        return secs
            .checked_mul(1000)
            .filter(|ms| *ms <= MAX_DURATION_MS)
            .ok_or_else(too_long);
    }
    let bad = || format!("invalid duration {text:?}: use forms like 500ms, 10s, 1m30s, 1h");
    let mut total = 0u64;
    let mut rest = t;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| too_long())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(factor)
            .and_then(|part| total.checked_add(part))
            .filter(|t| *t <= MAX_DURATION_MS)
            .ok_or_else(too_long)?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// The longest duration Docker can take: i64 nanoseconds, in milliseconds.
pub const MAX_DURATION_MS: u64 = (i64::MAX / 1_000_000) as u64;

/// `268435456`, `512k`, `256m`, `256MB`, `512Mi`, `1g`, `1GiB`: bytes (powers of 1024,
/// as Docker reads them).
pub fn memory_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("invalid memory size {text:?}: use forms like 512m, 1g, 256Mi");
    let n: f64 = num.parse().map_err(|_| bad())?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "ki" | "kib" => 1 << 10,
        "m" | "mb" | "mi" | "mib" => 1 << 20,
        "g" | "gb" | "gi" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = (n * factor as f64).round();
    if !bytes.is_finite() || bytes > i64::MAX as f64 {
        return Err(format!("memory {text:?} is larger than Docker can take"));
    }
    let bytes = bytes as u64;
    if bytes < 6 << 20 {
        return Err(format!("memory {text:?} is below Docker's minimum of 6m"));
    }
    Ok(bytes)
}

/// `0.5`, `2`, `1500m`: milli-CPUs.
pub fn millicpus(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let bad = || format!("invalid CPU amount {text:?}: use forms like 0.5, 2 or 500m");
    let m = if let Some(milli) = t.strip_suffix('m') {
        milli.parse::<u64>().map_err(|_| bad())?
    } else {
        let n: f64 = t.parse().map_err(|_| bad())?;
        if !n.is_finite() || n < 0.0 {
            return Err(bad());
        }
        (n * 1000.0).round().min(u64::MAX as f64) as u64
    };
    if m == 0 {
        return Err(bad());
    }
    // Docker takes CPUs as i64 nano-CPUs.
    if m > (i64::MAX / 1_000_000) as u64 {
        return Err(format!(
            "CPU amount {text:?} is larger than Docker can take"
        ));
    }
    Ok(m)
}

/// `8080`, `8080:80`, `53:53/udp`, `9000/tcp`.
pub fn port(text: &str) -> Result<Port, String> {
    let bad = |why: &str| {
        format!("invalid port {text:?}: {why} (use container, host:container, with /tcp or /udp)")
    };
    let (spec, protocol) = match text.trim().split_once('/') {
        Some((s, p)) => (s, p.to_string()),
        None => (text.trim(), "tcp".to_string()),
    };
    if protocol != "tcp" && protocol != "udp" {
        return Err(bad("protocol must be tcp or udp"));
    }
    let num = |s: &str| {
        s.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("ports are 1 to 65535"))
    };
    let (host, container) = match spec.split_once(':') {
        Some((h, c)) => (Some(num(h)?), num(c)?),
        None => (None, num(spec)?),
    };
    Ok(Port {
        host,
        container,
        protocol,
    })
}

/// `name:/path`, `/host/path:/path`, with an optional `:ro` or `:rw`.
pub fn mount(text: &str) -> Result<Mount, String> {
    let bad = || {
        format!("invalid volume {text:?}: use name:/path or /host/path:/path, optionally with :ro")
    };
    let parts: Vec<&str> = text.trim().split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [s, t] => (*s, *t, false),
        [s, t, "ro"] => (*s, *t, true),
        [s, t, "rw"] => (*s, *t, false),
        _ => return Err(bad()),
    };
    if source.is_empty() || !target.starts_with('/') {
        return Err(bad());
    }
    Ok(Mount {
        source: source.to_string(),
        target: target.to_string(),
        read_only,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration_ms("500ms"), Ok(500));
        assert_eq!(duration_ms("2s"), Ok(2000));
        assert_eq!(duration_ms("1m30s"), Ok(90_000));
        assert_eq!(duration_ms("3"), Ok(3000));
        assert!(duration_ms("2 s").is_err());
        assert!(duration_ms("s").is_err());
        assert!(duration_ms("").is_err());
    }

    #[test]
    fn values_too_large_fail_instead_of_wrapping() {
        for text in [
            "18446744073709552",
            "18446744073709552s",
            "99999999999999999999ms",
            "9000000000000s",
            "5000000000h1s",
        ] {
            let e = duration_ms(text).unwrap_err();
            assert!(e.contains("too long"), "{text}: {e}");
        }
        assert_eq!(
            duration_ms("292y").map_err(|e| e.contains("invalid")),
            Err(true)
        );
        assert!(memory_bytes("99999999999999999999g")
            .unwrap_err()
            .contains("larger"));
        assert!(memory_bytes("1e400").is_err());
        assert!(millicpus("1e300").unwrap_err().contains("larger"));
        assert!(millicpus("NaN").is_err());
        assert!(millicpus("-1").is_err());
    }

    #[test]
    fn memory() {
        assert_eq!(memory_bytes("256m"), Ok(256 << 20));
        assert_eq!(memory_bytes("256Mi"), Ok(256 << 20));
        assert_eq!(memory_bytes("1g"), Ok(1 << 30));
        assert_eq!(memory_bytes("1.5GB"), Ok(3 << 29));
        assert!(memory_bytes("1k").is_err());
        assert!(memory_bytes("lots").is_err());
    }

    #[test]
    fn cpus() {
        assert_eq!(millicpus("0.5"), Ok(500));
        assert_eq!(millicpus("2"), Ok(2000));
        assert_eq!(millicpus("250m"), Ok(250));
        assert!(millicpus("0").is_err());
    }

    #[test]
    fn ports() {
        assert_eq!(port("8080:80").unwrap().to_string(), "8080:80/tcp");
        assert_eq!(port("53:53/udp").unwrap().to_string(), "53:53/udp");
        assert_eq!(port("9000").unwrap().to_string(), "9000/tcp");
        assert!(port("0:80").is_err());
        assert!(port("80/sctp").is_err());
        assert!(port("x").is_err());
    }

    #[test]
    fn mounts() {
        let m = mount("data:/var/lib/data:ro").unwrap();
        assert!(m.read_only && m.is_named_volume());
        assert!(!mount("/srv:/srv").unwrap().is_named_volume());
        assert!(mount("data").is_err());
        assert!(mount("data:relative").is_err());
    }
}
