//! `bank`: a replicated bank account whose operations do not commute.
//!
//! Every member keeps a copy of one account, which starts at
//! [`INITIAL_BALANCE`]. Each message carries one operation; every member
//! applies the operations in the order it delivers them:
//!
//! * `deposit 5.00` adds 5.00;
//! * `withdraw 4.00` takes 4.00 away — unless the balance is smaller, in
//!   which case the bank refuses it (and counts the refusal);
//! * `interest 1.50%` adds 1.5 % of the balance, rounded down to the cent.
//!
//! Order matters: 100.00 with a deposit of 10.00 and then 1 % interest is
//! 111.10; the interest first gives 111.00. If two members deliver those
//! two messages in different orders, their accounts differ from then on —
//! the course's classic demonstration of why replicas need total order.
//!
//! Money is counted in whole cents (`u64`), so every member computes
//! exactly the same numbers on every machine: no floating point.
//!
//! The operations come from [`TABLE`]: message `q` of member `s` carries
//! row [`op_for`]`(seed, s, q)`. The table is data, and its tests check
//! every row against its own text — the course's hand-written tables had a
//! withdrawal that added and a row count that did not match.

use std::fmt;
use std::str::FromStr;

use super::{OpParseError, mix};

/// What every account holds at the start: 100.00.
pub const INITIAL_BALANCE: u64 = 10_000;

/// One operation on the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BankOp {
    /// Add this many cents.
    Deposit {
        /// Amount in cents.
        cents: u64,
    },
    /// Take this many cents away if the balance allows; otherwise refuse.
    Withdraw {
        /// Amount in cents.
        cents: u64,
    },
    /// Add this share of the balance, rounded down to the cent.
    Interest {
        /// Rate in basis points: 150 is 1.50 %.
        basis_points: u64,
    },
}

/// The operations members draw from: 5 deposits (1.00 to 10.00), 4
/// withdrawals (2.00 to 8.00) and 3 interest rates (1 % to 2 %), the
/// ranges of the course's assignment.
pub const TABLE: [BankOp; 12] = [
    BankOp::Deposit { cents: 100 },
    BankOp::Withdraw { cents: 200 },
    BankOp::Interest { basis_points: 100 },
    BankOp::Deposit { cents: 250 },
    BankOp::Withdraw { cents: 400 },
    BankOp::Deposit { cents: 500 },
    BankOp::Interest { basis_points: 150 },
    BankOp::Withdraw { cents: 600 },
    BankOp::Deposit { cents: 750 },
    BankOp::Withdraw { cents: 800 },
    BankOp::Interest { basis_points: 200 },
    BankOp::Deposit { cents: 1000 },
];

/// The operation of member `sender`'s message `seq` in a run with `seed`.
pub fn op_for(seed: u64, sender: u16, seq: u64) -> BankOp {
    TABLE[(mix(seed, sender, seq) % TABLE.len() as u64) as usize]
}

/// One copy of the account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Account {
    /// The balance, in cents.
    pub balance: u64,
    /// Withdrawals refused for lack of funds.
    pub refused: u64,
}

impl Default for Account {
    fn default() -> Account {
        Account::new()
    }
}

impl Account {
    /// An account at [`INITIAL_BALANCE`].
    pub const fn new() -> Account {
        Account {
            balance: INITIAL_BALANCE,
            refused: 0,
        }
    }

    /// Applies one operation.
    pub fn apply(&mut self, op: &BankOp) {
        match *op {
            BankOp::Deposit { cents } => self.balance = self.balance.saturating_add(cents),
            BankOp::Withdraw { cents } => match self.balance.checked_sub(cents) {
                Some(left) => self.balance = left,
                None => self.refused += 1,
            },
            BankOp::Interest { basis_points } => {
                let interest = u128::from(self.balance) * u128::from(basis_points) / 10_000;
                let interest = u64::try_from(interest).unwrap_or(u64::MAX);
                self.balance = self.balance.saturating_add(interest);
            }
        }
    }

    /// Bytes that identify the state, for its hash.
    pub(crate) fn canonical(&self) -> Vec<u8> {
        let mut out = b"bank".to_vec();
        out.extend_from_slice(&self.balance.to_be_bytes());
        out.extend_from_slice(&self.refused.to_be_bytes());
        out
    }
}

impl fmt::Display for Account {
    /// `balance 112.34` or `balance 3.10, 2 withdrawals refused`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "balance {}", Money(self.balance))?;
        match self.refused {
            0 => Ok(()),
            1 => write!(f, ", 1 withdrawal refused"),
            n => write!(f, ", {n} withdrawals refused"),
        }
    }
}

/// An amount in cents, written with two decimals: `Money(1234)` is `12.34`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Money(pub u64);

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}

/// Parses a decimal with at most two places (`12`, `12.3`, `12.34`) into
/// hundredths.
pub(crate) fn hundredths(s: &str) -> Option<u64> {
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac: u64 = match frac.len() {
        0 => 0,
        1 => frac.parse::<u64>().ok()? * 10,
        _ => frac.parse().ok()?,
    };
    whole.checked_mul(100)?.checked_add(frac)
}

impl fmt::Display for BankOp {
    /// `deposit 5.00`, `withdraw 4.00`, `interest 1.50%`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BankOp::Deposit { cents } => write!(f, "deposit {}", Money(cents)),
            BankOp::Withdraw { cents } => write!(f, "withdraw {}", Money(cents)),
            BankOp::Interest { basis_points } => write!(f, "interest {}%", Money(basis_points)),
        }
    }
}

impl FromStr for BankOp {
    type Err = OpParseError;

    fn from_str(s: &str) -> Result<BankOp, OpParseError> {
        let bad = || OpParseError(s.to_string());
        let (verb, arg) = s.split_once(' ').ok_or_else(bad)?;
        match verb {
            "deposit" => Ok(BankOp::Deposit {
                cents: hundredths(arg).ok_or_else(bad)?,
            }),
            "withdraw" => Ok(BankOp::Withdraw {
                cents: hundredths(arg).ok_or_else(bad)?,
            }),
            "interest" => Ok(BankOp::Interest {
                basis_points: hundredths(arg.strip_suffix('%').ok_or_else(bad)?).ok_or_else(bad)?,
            }),
            _ => Err(bad()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every row does what its text says, from an account rich enough for
    /// any withdrawal: a deposit adds exactly its amount, a withdrawal
    /// takes exactly its amount away, interest adds its rate.
    #[test]
    fn every_row_does_what_it_says() {
        for row in TABLE {
            let text = row.to_string();
            assert_eq!(text.parse::<BankOp>(), Ok(row), "{text} reads back");
            let rich = Account {
                balance: 100_000,
                refused: 0,
            };
            let mut after = rich;
            after.apply(&row);
            let (verb, amount) = text.split_once(' ').unwrap();
            let change = after.balance as i64 - rich.balance as i64;
            match verb {
                "deposit" => assert_eq!(change, hundredths(amount).unwrap() as i64, "{text}"),
                "withdraw" => assert_eq!(change, -(hundredths(amount).unwrap() as i64), "{text}"),
                "interest" => {
                    let bp = hundredths(amount.trim_end_matches('%')).unwrap();
                    assert_eq!(change as u64, rich.balance * bp / 10_000, "{text}");
                    assert!(change > 0);
                }
                other => panic!("unknown verb {other} in {text}"),
            }
            assert_eq!(after.refused, 0, "{text}");
        }
    }

    /// The table has the rows its documentation promises, within the
    /// assignment's ranges.
    #[test]
    fn the_table_matches_its_description() {
        let count = |f: fn(&BankOp) -> bool| TABLE.iter().filter(|r| f(r)).count();
        assert_eq!(count(|r| matches!(r, BankOp::Deposit { .. })), 5);
        assert_eq!(count(|r| matches!(r, BankOp::Withdraw { .. })), 4);
        assert_eq!(count(|r| matches!(r, BankOp::Interest { .. })), 3);
        for row in TABLE {
            match row {
                BankOp::Deposit { cents } => assert!((100..=1000).contains(&cents)),
                BankOp::Withdraw { cents } => assert!((200..=800).contains(&cents)),
                BankOp::Interest { basis_points } => {
                    assert!((100..=200).contains(&basis_points))
                }
            }
        }
        // Every row is drawn by some message.
        let mut seen = [false; TABLE.len()];
        for q in 0..1000 {
            let op = op_for(7, 1, q);
            seen[TABLE.iter().position(|r| *r == op).unwrap()] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    /// Order matters: that is the point of the workload. A deposit or a
    /// withdrawal and an interest payment never commute on the starting
    /// balance.
    #[test]
    fn operations_do_not_commute() {
        for a in TABLE {
            for b in TABLE {
                let interest = |o: &BankOp| matches!(o, BankOp::Interest { .. });
                if interest(&a) == interest(&b) {
                    continue;
                }
                let (mut ab, mut ba) = (Account::new(), Account::new());
                ab.apply(&a);
                ab.apply(&b);
                ba.apply(&b);
                ba.apply(&a);
                assert_ne!(ab, ba, "{a} and {b} commute");
            }
        }
    }

    #[test]
    fn the_module_example_and_refusals() {
        let mut a = Account::new();
        a.apply(&"deposit 10.00".parse().unwrap());
        a.apply(&"interest 1%".parse().unwrap());
        assert_eq!(a.to_string(), "balance 111.10");
        let mut b = Account::new();
        b.apply(&"interest 1%".parse().unwrap());
        b.apply(&"deposit 10".parse().unwrap());
        assert_eq!(b.to_string(), "balance 111.00");
        let mut poor = Account {
            balance: 300,
            refused: 0,
        };
        poor.apply(&BankOp::Withdraw { cents: 400 });
        assert_eq!(poor.to_string(), "balance 3.00, 1 withdrawal refused");
    }

    #[test]
    fn bad_text_is_refused() {
        for bad in [
            "deposit",
            "deposit -1",
            "deposit 1.234",
            "deposit .5",
            "withdraw 1,00",
            "interest 1",
            "interest %",
            "lend 5.00",
            "deposit 99999999999999999999",
        ] {
            assert!(bad.parse::<BankOp>().is_err(), "{bad}");
        }
    }
}
