//! Failed attempts per network address. The per-account lockout stops a
//! guesser aiming at one officer; this stops one address trying many
//! accounts (or many codes) at once. Only failures count, so a station
//! whose officers share one address is not slowed by its own sign-ins.
//! An IPv6 client is counted by its /64 network: one subscriber commonly
//! holds a whole /64 and could otherwise change address on every try.
//!
//! One instance counts in memory. Instances sharing a PostgreSQL database
//! count in it, so that two of them do not each allow the limit.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use crate::domain::Code;
use crate::store::Store;
use crate::Error;

/// Addresses tracked at most; past this, the quietest are forgotten first
/// so a flood of spoofed-looking addresses cannot grow memory without end.
const MAX_ADDRESSES: usize = 100_000;

/// Failures per address within a sliding window.
pub struct AddressLimiter {
    max: u32,
    window: u64,
    failures: Mutex<HashMap<String, VecDeque<u64>>>,
    /// The database and this limiter's name in it, when shared.
    shared: Option<(Arc<Store>, &'static str)>,
}

impl AddressLimiter {
    /// At most `max` failures from one address in `window` seconds.
    pub fn new(max: u32, window: u64) -> Self {
        AddressLimiter {
            max,
            window,
            failures: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// The same limit, counted in `store` under `kind`, for every
    /// instance that shares it.
    pub fn shared(max: u32, window: u64, store: Arc<Store>, kind: &'static str) -> Self {
        AddressLimiter {
            shared: Some((store, kind)),
            ..Self::new(max, window)
        }
    }

    /// Refuses `ip` while it has too many recent failures. An empty address
    /// (a command on the server itself) is never limited.
    pub fn check(&self, ip: &str, now: u64) -> Result<(), Error> {
        if ip.is_empty() {
            return Ok(());
        }
        let (count, oldest) = match &self.shared {
            Some((store, kind)) => {
                store.address_events(kind, &network(ip), (now + 1).saturating_sub(self.window))?
            }
            None => {
                let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                let Some(times) = map.get_mut(&network(ip)) else {
                    return Ok(());
                };
                self.forget_old(times, now);
                (times.len() as u32, times.front().copied())
            }
        };
        if count < self.max {
            return Ok(());
        }
        let retry = oldest.map_or(0, |t| (t + self.window).saturating_sub(now));
        Err(Error::refused(
            Code::TooManyAttempts,
            format!(
                "Too many failed attempts from this network. Try again in {} minute(s).",
                retry.div_ceil(60).max(1)
            ),
        ))
    }

    /// Counts an event of kind `what` (its own count: one kind of event
    /// does not use up another's) from `ip` if the address is still under
    /// the limit, in one step (`true`), or refuses it (`false`): of many
    /// requests at once, on any instance, no more than the limit pass.
    /// (Shared counts check and count in one write transaction, which the
    /// write lock serialises; a store error refuses.)
    pub fn take(&self, what: &str, ip: &str, now: u64) -> bool {
        if ip.is_empty() {
            return true;
        }
        let key = format!("{what} {}", network(ip));
        match &self.shared {
            Some((store, kind)) => {
                let since = (now + 1).saturating_sub(self.window);
                store
                    .write(now, |w| {
                        w.take_address_event(kind, &key, since, self.max, now)
                    })
                    .unwrap_or(false)
            }
            None => {
                // One lock over the check and the count.
                let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
                let times = self.slot(&mut map, key, now);
                if times.len() >= self.max as usize {
                    return false;
                }
                times.push_back(now);
                true
            }
        }
    }

    /// The in-memory count of `key`, made room for: at most
    /// [`MAX_ADDRESSES`] are kept. When full, the counts that aged out
    /// go, and if that is not enough the quietest eighth, so that a flood
    /// of new addresses costs one sort per many of them, not a scan each.
    fn slot<'m>(
        &self,
        map: &'m mut HashMap<String, VecDeque<u64>>,
        key: String,
        now: u64,
    ) -> &'m mut VecDeque<u64> {
        if map.len() >= MAX_ADDRESSES && !map.contains_key(&key) {
            map.retain(|_, times| times.back().is_some_and(|t| t + self.window > now));
            if map.len() >= MAX_ADDRESSES {
                let mut by_last: Vec<(u64, String)> = map
                    .iter()
                    .map(|(k, times)| (times.back().copied().unwrap_or(0), k.clone()))
                    .collect();
                by_last.sort_unstable();
                for (_, k) in by_last.into_iter().take(MAX_ADDRESSES / 8) {
                    map.remove(&k);
                }
            }
        }
        let times = map.entry(key).or_default();
        self.forget_old(times, now);
        times
    }

    /// Counts a failure from `ip`. (A shared count that cannot be written
    /// is logged: the per-account limits, in the database too, still hold.)
    pub fn failed(&self, ip: &str, now: u64) {
        if ip.is_empty() {
            return;
        }
        let ip = network(ip);
        if let Some((store, kind)) = &self.shared {
            if let Err(e) = store.write(now, |w| w.add_address_event(kind, &ip, now)) {
                tracing::error!(error = %e, "counting a failure by address failed");
            }
            return;
        }
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        self.slot(&mut map, ip, now).push_back(now);
    }

    /// Forgets failures older than the window (shared counts; the memory
    /// count forgets as it goes).
    pub fn purge(&self, now: u64) -> Result<(), Error> {
        if let Some((store, kind)) = &self.shared {
            let before = (now + 1).saturating_sub(self.window);
            store.write(now, |w| w.purge_limits(kind, before, now))?;
        }
        Ok(())
    }

    fn forget_old(&self, times: &mut VecDeque<u64>, now: u64) {
        while times.front().is_some_and(|t| t + self.window <= now) {
            times.pop_front();
        }
    }
}

/// What limits count against: the address itself for IPv4 (and
/// anything that does not parse), the /64 network for IPv6.
pub fn network(ip: &str) -> String {
    match ip.parse::<IpAddr>().map(network_of) {
        Ok(IpAddr::V6(prefix)) => format!("{prefix}/64"),
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Err(_) => ip.to_string(),
    }
}

/// [`network`] as an address: the IPv4 address (also when mapped into
/// IPv6), or the first address of the IPv6 /64.
pub fn network_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_max_failures_until_they_age_out() {
        let l = AddressLimiter::new(3, 600);
        for t in 0..3 {
            assert!(l.check("203.0.113.7", 100 + t).is_ok());
            l.failed("203.0.113.7", 100 + t);
        }
        let err = l.check("203.0.113.7", 200).unwrap_err();
        assert_eq!(err.code(), "too_many_attempts");
        assert!(
            err.to_string().contains("Try again in 9 minute(s)"),
            "{err}"
        );
        assert!(
            l.check("198.51.100.1", 200).is_ok(),
            "other addresses go on"
        );
        assert!(
            l.check("203.0.113.7", 700).is_ok(),
            "the first failure aged out"
        );
    }

    #[test]
    fn an_ipv6_network_counts_as_one_address() {
        let l = AddressLimiter::new(2, 600);
        l.failed("2001:db8:1:2::1", 1);
        l.failed("2001:db8:1:2:ffff:ffff:ffff:fffe", 2);
        assert!(l.check("2001:db8:1:2::abcd", 3).is_err(), "same /64");
        assert!(l.check("2001:db8:1:3::1", 3).is_ok(), "next /64");
        assert_eq!(network("::ffff:192.0.2.9"), "192.0.2.9");
        assert_eq!(network("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(network("192.0.2.9"), "192.0.2.9");
    }

    #[test]
    fn take_counts_and_refuses_in_one_step() {
        let l = AddressLimiter::new(1, 60);
        assert!(l.take("a", "203.0.113.7", 100));
        assert!(!l.take("a", "203.0.113.7", 101), "one a minute");
        assert!(l.take("b", "203.0.113.7", 101), "per kind of event");
        assert!(l.take("a", "198.51.100.1", 101), "per address");
        assert!(l.take("a", "203.0.113.7", 161), "the minute passed");
    }

    #[test]
    fn many_addresses_do_not_grow_the_counts_without_end() {
        let l = AddressLimiter::new(1, 60);
        for i in 0..(MAX_ADDRESSES as u32 + 500) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
            assert!(l.take("a", &ip, 100));
        }
        let kept = l.failures.lock().unwrap().len();
        assert!(kept <= MAX_ADDRESSES, "{kept}");
    }

    #[test]
    fn the_server_itself_is_never_limited() {
        let l = AddressLimiter::new(1, 600);
        l.failed("", 1);
        l.failed("", 2);
        assert!(l.check("", 3).is_ok());
    }
}
