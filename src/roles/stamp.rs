//! Time-stamped directory names: `YYYYMMDD-HHMMSS` in UTC, so that the
//! directories of demos, runs and sweeps sort by when they were made.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as `YYYYMMDD-HHMMSS` (UTC).
pub fn now_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    utc_stamp(secs)
}

/// `YYYYMMDD-HHMMSS` in UTC for seconds since the epoch. Days become a
/// civil date with H. Hinnant's "civil from days" algorithm: count in
/// 400-year eras of 146,097 days from 0000-03-01, so that the leap day is
/// the last day of each year and needs no special case.
pub fn utc_stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Creates `base/name`, or `base/name-1`, `base/name-2`, … when that exists
/// (two runs in the same second), and returns it. `base` must exist.
pub fn create_unique_dir(base: &Path, name: &str) -> io::Result<PathBuf> {
    for k in 0..1000 {
        let dir = if k == 0 {
            base.join(name)
        } else {
            base.join(format!("{name}-{k}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("1000 directories named {name} in {}", base.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_stamp(0), "19700101-000000");
        assert_eq!(utc_stamp(951_782_400), "20000229-000000");
        assert_eq!(utc_stamp(1_795_900_000), "20261128-210640");
    }

    #[test]
    fn unique_dirs_get_a_counter() {
        let base = std::env::temp_dir().join(format!("mpcomm-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(&base).unwrap();
        let a = create_unique_dir(&base, "x").unwrap();
        let b = create_unique_dir(&base, "x").unwrap();
        assert_eq!(a, base.join("x"));
        assert_eq!(b, base.join("x-1"));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
