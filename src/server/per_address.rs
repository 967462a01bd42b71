//! Connections held at once per client address, so one client cannot take every slot of a
//! listener: over the cap a new connection from that address is closed as soon as it is
//! accepted, while other addresses are still served.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections by client address (IPv6 by /64, see [`crate::rate_limit`]).
#[derive(Clone)]
pub struct PerAddress {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count; given back when dropped.
pub struct AddressPermit {
    address: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerAddress {
    /// At most `max` connections per address; 0 means no per-address cap.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            open: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// A permit for one more connection from `address`, or `None` when it holds `max` already.
    pub fn acquire(&self, address: IpAddr) -> Option<AddressPermit> {
        let address = crate::rate_limit::client_key(address);
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let count = open.entry(address).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(AddressPermit {
            address,
            open: Arc::clone(&self.open),
        })
    }
}

impl Drop for AddressPermit {
    fn drop(&mut self) {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_cap() {
        let limit = PerAddress::new(2);
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        let b: IpAddr = "192.0.2.2".parse().expect("address");
        let first = limit.acquire(a).expect("first");
        let _second = limit.acquire(a).expect("second");
        assert!(limit.acquire(a).is_none(), "third from the same address");
        assert!(limit.acquire(b).is_some(), "another address");
        drop(first);
        assert!(limit.acquire(a).is_some(), "a slot given back");
    }

    #[test]
    fn counts_are_forgotten_when_closed() {
        let limit = PerAddress::new(1);
        let a: IpAddr = "192.0.2.1".parse().expect("address");
        drop(limit.acquire(a));
        assert!(limit.open.lock().expect("lock").is_empty());
    }
}
