//! The manager login's lock-out (`spec/terminal-interfaces.md`, "Lock-out, precisely"):
//! five wrong PINs in a row lock the login for five minutes; during the lock every attempt
//! is refused unchecked and counts for nothing; when it ends the count starts again from
//! zero. Wrong PINs sent in parallel count one each.
//!
//! Pure bookkeeping over the daemon's clock (so a test can move time): the handler asks
//! [`LoginThrottle::admit`] before it checks a PIN and tells [`LoginThrottle::succeeded`]
//! after a right one. An attempt counts as wrong when it is admitted, not when its check
//! ends: nothing is held while the slow hash runs, so a request that goes away mid-check
//! cannot leave the login blocked, and parallel guesses cannot slip past the count.

use jiff::{SignedDuration, Timestamp};

pub const ATTEMPTS: u32 = 5;
pub const LOCK: SignedDuration = SignedDuration::from_secs(300);

/// Why an attempt was not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub until: Timestamp,
}

#[derive(Debug, Default)]
pub struct LoginThrottle {
    wrong: u32,
    locked_until: Option<Timestamp>,
}

impl LoginThrottle {
    /// Admits an attempt to be checked (counting it as wrong until it proves right), or
    /// refuses it while the login is locked.
    pub fn admit(&mut self, now: Timestamp) -> Result<(), Locked> {
        if let Some(until) = self.locked_until {
            // A clock set back does not stretch the lock past five minutes from now.
            let until = until.min(now.checked_add(LOCK).unwrap_or(Timestamp::MAX));
            if now < until {
                self.locked_until = Some(until);
                return Err(Locked { until });
            }
            // An expired lock is no lock: the count starts again.
            *self = LoginThrottle::default();
        }
        self.wrong += 1;
        if self.wrong >= ATTEMPTS {
            self.locked_until = Some(now.checked_add(LOCK).unwrap_or(Timestamp::MAX));
        }
        Ok(())
    }

    /// A right PIN: the wrong ones before it no longer count.
    pub fn succeeded(&mut self) {
        *self = LoginThrottle::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_holds_for_five_minutes_and_comes_back_after_five_more_wrong_pins() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut throttle = LoginThrottle::default();
        for cycle in 0..3 {
            let start = t0 + SignedDuration::from_secs(cycle * 1000);
            for _ in 0..ATTEMPTS {
                assert_eq!(throttle.admit(start), Ok(()), "cycle {cycle}");
            }
            let locked = throttle.admit(start).unwrap_err();
            assert_eq!(locked.until, start + LOCK);
            // Refused attempts count for nothing: the lock does not grow.
            for s in [1, 100, 299] {
                assert_eq!(throttle.admit(start + SignedDuration::from_secs(s)), Err(locked));
            }
        }
    }

    #[test]
    fn a_right_pin_resets_the_count_and_the_clock_set_back_does_not_stretch_the_lock() {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let mut throttle = LoginThrottle::default();
        for _ in 0..ATTEMPTS - 1 {
            throttle.admit(t0).unwrap();
        }
        throttle.succeeded();
        for _ in 0..ATTEMPTS {
            throttle.admit(t0).unwrap();
        }
        assert!(throttle.admit(t0).is_err());
        let back = t0 - SignedDuration::from_hours(1);
        assert_eq!(throttle.admit(back).unwrap_err().until, back + LOCK);
        assert!(throttle.admit(back + LOCK).is_ok());
    }
}
