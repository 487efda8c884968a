//! The group key file: how a group key is stored, made and rotated.
//!
//! A group key is a 32-byte random secret that every member holds and nobody
//! else does; with it, datagrams are sealed (see [`mpcomm_core::seal`]) and
//! control connections authenticated (see `secure`, feature `control`).
//! `mpcomm keygen FILE` makes one. The file is text, so that an operator can
//! see what it holds (not the secret's meaning, but its epochs):
//!
//! ```text
//! # mpcomm group key. Keep it secret: whoever holds it is a member.
//! mpcomm-key-file v1
//! send 2 4f1c…(64 hex digits)…
//! accept 1 9a0b…(64 hex digits)…
//! ```
//!
//! * The first line that is not blank or a `#` comment names the format and
//!   its version: exactly `mpcomm-key-file v1`.
//! * `send EPOCH HEX`: the key this process seals with (exactly one).
//! * `accept EPOCH HEX`: one more key it accepts, during a rotation (at most
//!   one, with another epoch).
//! * `EPOCH` is a decimal `u32`; `HEX` is 64 hexadecimal digits (32 bytes).
//!
//! # Rotation
//!
//! A key is rotated in three steps, each copied to every member before the
//! next (`mpcomm keygen --rotate FILE` makes each step from the previous):
//!
//! 1. `send E old`, `accept E+1 new`: everyone can already open the new key;
//! 2. `send E+1 new`, `accept E old`: members switch, one by one;
//! 3. `send E+1 new`: the old key is retired.
//!
//! At each moment, members at adjacent steps understand each other, so the
//! group never stops (`docs/security.md`).

use std::fmt::Write as _;
use std::path::Path;

use mpcomm_core::seal::{GroupKey, KEY_LEN, KeyRing};
use thiserror::Error;

/// The line that names the format.
pub const FORMAT_LINE: &str = "mpcomm-key-file v1";
/// A key file is never longer than this (it holds two short lines).
pub const MAX_FILE_LEN: usize = 4096;

/// Why a key file cannot be used.
#[derive(Debug, Error)]
pub enum KeyFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// The contents are not a key file.
    #[error("{0}")]
    Format(String),
}

fn format_err(line: usize, msg: impl std::fmt::Display) -> KeyFileError {
    KeyFileError::Format(format!("line {line}: {msg}"))
}

/// Parses the text of a key file. Total: any input gives keys or an error
/// naming the line and what is wrong; the secret never appears in errors.
pub fn parse(text: &str) -> Result<KeyRing, KeyFileError> {
    if text.len() > MAX_FILE_LEN {
        return Err(KeyFileError::Format(format!(
            "{} bytes: not a key file (at most {MAX_FILE_LEN} bytes)",
            text.len()
        )));
    }
    let mut seen_format = false;
    let mut send: Option<GroupKey> = None;
    let mut accept: Option<GroupKey> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !seen_format {
            if line != FORMAT_LINE {
                return Err(format_err(
                    n,
                    format!(
                        "expected {FORMAT_LINE:?} (is this an mpcomm key file? make one with `mpcomm keygen FILE`)"
                    ),
                ));
            }
            seen_format = true;
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let (Some(role), Some(epoch), Some(hex), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format_err(
                n,
                "expected `send EPOCH HEX` or `accept EPOCH HEX`",
            ));
        };
        let epoch: u32 = epoch
            .parse()
            .map_err(|_| format_err(n, "the epoch must be a whole number from 0 to 4294967295"))?;
        let secret = decode_hex(hex).ok_or_else(|| {
            format_err(
                n,
                format!("the key must be {} hexadecimal digits", 2 * KEY_LEN),
            )
        })?;
        let key = GroupKey::new(epoch, secret);
        let slot = match role {
            "send" => &mut send,
            "accept" => &mut accept,
            _ => {
                return Err(format_err(n, "a key line starts with `send` or `accept`"));
            }
        };
        if slot.is_some() {
            return Err(format_err(
                n,
                format!("a second `{role}` key (at most one)"),
            ));
        }
        *slot = Some(key);
    }
    if !seen_format {
        return Err(KeyFileError::Format(format!(
            "empty: no {FORMAT_LINE:?} line (make a key with `mpcomm keygen FILE`)"
        )));
    }
    let Some(send) = send else {
        return Err(KeyFileError::Format(
            "no `send EPOCH HEX` line: the file holds no key to send with".into(),
        ));
    };
    KeyRing::new(send, accept).map_err(|e| KeyFileError::Format(e.to_string()))
}

fn decode_hex(s: &str) -> Option<[u8; KEY_LEN]> {
    let b = s.as_bytes();
    if b.len() != 2 * KEY_LEN {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    let mut out = [0u8; KEY_LEN];
    for (i, o) in out.iter_mut().enumerate() {
        *o = digit(b[2 * i])? << 4 | digit(b[2 * i + 1])?;
    }
    Some(out)
}

/// The text of a key file holding `keys`.
pub fn format(keys: &KeyRing) -> String {
    let mut s = String::new();
    s.push_str("# mpcomm group key. Keep it secret: whoever holds it is a member.\n");
    s.push_str("# `send` seals; `accept` is also accepted (during a rotation).\n");
    s.push_str(FORMAT_LINE);
    s.push('\n');
    let mut line = |role: &str, k: &GroupKey| {
        let _ = write!(s, "{role} {} ", k.epoch());
        for b in k.secret() {
            let _ = write!(s, "{b:02x}");
        }
        s.push('\n');
    };
    line("send", keys.send_key());
    if let Some(a) = keys.accept_key() {
        line("accept", a);
    }
    s
}

/// A fresh key of `epoch` from the operating system's random generator.
pub fn generate(epoch: u32) -> Result<GroupKey, getrandom::Error> {
    let mut secret = [0u8; KEY_LEN];
    getrandom::fill(&mut secret)?;
    Ok(GroupKey::new(epoch, secret))
}

/// The next step of a rotation (see the [module documentation](self)):
/// one key → add a new one as accepted; send old + accept newer → send the
/// newer, accept the old; send new + accept older → drop the older.
pub fn rotate(keys: &KeyRing, fresh: impl FnOnce(u32) -> GroupKey) -> (KeyRing, &'static str) {
    let send = keys.send_key().clone();
    match keys.accept_key().cloned() {
        None => {
            let next = fresh(send.epoch().wrapping_add(1));
            let ring = KeyRing::new(send, Some(next)).unwrap_or_else(|_| keys.clone());
            (
                ring,
                "step 1 of 3: a new key is added as `accept`; copy this file to every member, then run --rotate again",
            )
        }
        Some(accept) if is_newer(accept.epoch(), send.epoch()) => {
            let ring = KeyRing::new(accept, Some(send)).unwrap_or_else(|_| keys.clone());
            (
                ring,
                "step 2 of 3: the new key now seals, the old one is still accepted; copy this file to every member, then run --rotate again",
            )
        }
        Some(_) => (
            KeyRing::single(send),
            "step 3 of 3: the old key is retired; copy this file to every member",
        ),
    }
}

/// Epochs count up and may wrap around: `a` is newer than `b` if it is
/// ahead by less than half the space.
fn is_newer(a: u32, b: u32) -> bool {
    a != b && a.wrapping_sub(b) < 1 << 31
}

/// Reads and parses a key file. Warns (through `tracing`) if others than the
/// owner may read it.
pub fn load(path: &Path) -> Result<KeyRing, KeyFileError> {
    load_inner(path, true)
}

fn load_inner(path: &Path, check_mode: bool) -> Result<KeyRing, KeyFileError> {
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > MAX_FILE_LEN as u64 {
        return Err(KeyFileError::Format(format!(
            "{}: {} bytes is too long for a key file",
            path.display(),
            meta.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if check_mode && meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                "the key file {} may be read by other users; run `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    let text = std::fs::read_to_string(path).map_err(io)?;
    parse(&text).map_err(|e| match e {
        KeyFileError::Format(m) => KeyFileError::Format(format!("{}: {m}", path.display())),
        other => other,
    })
}

/// Writes `keys` to `path` with mode 0600. Without `overwrite`, an existing
/// file is an error; with it, the file is replaced atomically (written
/// beside it, then renamed over it).
pub fn save(path: &Path, keys: &KeyRing, overwrite: bool) -> Result<(), KeyFileError> {
    use std::io::Write;
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let text = format(keys);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    if !overwrite {
        let mut f = opts.open(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Format(format!(
                    "{} already exists: not overwriting a key (use --force to replace it, or --rotate to rotate it)",
                    path.display()
                ))
            } else {
                io(e)
            }
        })?;
        f.write_all(text.as_bytes()).map_err(io)?;
        return f.sync_all().map_err(io);
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Where a long-lived process gets its keys: fixed, or a file read again
/// whenever keys are needed (a new connection, a new run), so that an
/// operator rotates a key by replacing the file on every host — no process
/// has to restart. A file that cannot be read or parsed any more keeps the
/// last good keys (with a warning).
#[derive(Debug)]
pub struct KeySource {
    path: Option<std::path::PathBuf>,
    last: std::sync::Mutex<Option<KeyRing>>,
}

impl KeySource {
    /// Always these keys (or none).
    pub fn fixed(keys: Option<KeyRing>) -> KeySource {
        KeySource {
            path: None,
            last: std::sync::Mutex::new(keys),
        }
    }

    /// The keys in `path`, loaded now (an error if they cannot be) and again
    /// at every [`KeySource::current`].
    pub fn file(path: &Path) -> Result<KeySource, KeyFileError> {
        let keys = load(path)?;
        Ok(KeySource {
            path: Some(path.to_path_buf()),
            last: std::sync::Mutex::new(Some(keys)),
        })
    }

    /// The keys to use now.
    pub fn current(&self) -> Option<KeyRing> {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(path) = &self.path {
            match load_inner(path, false) {
                Ok(keys) => {
                    if last.as_ref() != Some(&keys) {
                        tracing::info!("key file {} changed: now {keys:?}", path.display());
                    }
                    *last = Some(keys);
                }
                Err(e) => tracing::warn!("{e}; keeping the keys read before"),
            }
        }
        last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(epoch: u32, b: u8) -> GroupKey {
        GroupKey::new(epoch, [b; KEY_LEN])
    }

    #[test]
    fn format_then_parse_is_the_identity() {
        for ring in [
            KeyRing::single(key(1, 0xab)),
            KeyRing::new(key(7, 1), Some(key(6, 2))).unwrap(),
        ] {
            assert_eq!(parse(&format(&ring)).unwrap(), ring);
        }
    }

    #[test]
    fn bad_files_are_refused_with_the_line_and_never_the_secret() {
        let hex = "ab".repeat(32);
        let cases = [
            ("", "empty"),
            ("hello\n", "line 1"),
            ("mpcomm-key-file v2\n", "line 1"),
            ("mpcomm-key-file v1\n", "no `send"),
            (&*format!("mpcomm-key-file v1\nsend x {hex}\n"), "epoch"),
            (
                &*format!("mpcomm-key-file v1\nsend 1 {}\n", &hex[1..]),
                "hexadecimal",
            ),
            (
                &*format!("mpcomm-key-file v1\nsend 1 {}zz\n", &hex[2..]),
                "hexadecimal",
            ),
            (
                &*format!("mpcomm-key-file v1\nsend 1 {hex}\nsend 2 {hex}\n"),
                "second",
            ),
            (
                &*format!("mpcomm-key-file v1\nsend 1 {hex}\naccept 1 {hex}\n"),
                "epochs must differ",
            ),
            (
                &*format!("mpcomm-key-file v1\nkeep 1 {hex}\n"),
                "starts with",
            ),
            (
                &*format!("mpcomm-key-file v1\nsend 1 {hex} extra\n"),
                "expected",
            ),
        ];
        for (text, want) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
            assert!(!err.contains(&hex[..16]), "the secret leaked: {err}");
        }
        assert!(parse(&" ".repeat(MAX_FILE_LEN + 1)).is_err());
        // Comments, blank lines, CRLF and upper-case hex are fine.
        let ok = format!(
            "# c\r\n\r\nmpcomm-key-file v1\r\n  send 4294967295 {}\r\n",
            hex.to_uppercase()
        );
        assert_eq!(parse(&ok).unwrap().send_key().epoch(), u32::MAX);
    }

    #[test]
    fn rotation_goes_through_three_steps() {
        let start = KeyRing::single(key(5, 1));
        let (s1, _) = rotate(&start, |e| key(e, 2));
        assert_eq!(s1.send_key().epoch(), 5);
        assert_eq!(s1.accept_key().map(GroupKey::epoch), Some(6));
        let (s2, _) = rotate(&s1, |_| unreachable!());
        assert_eq!(s2.send_key(), &key(6, 2));
        assert_eq!(s2.accept_key().map(GroupKey::epoch), Some(5));
        let (s3, _) = rotate(&s2, |_| unreachable!());
        assert_eq!(s3, KeyRing::single(key(6, 2)));
        // Epochs wrap around.
        let (w, _) = rotate(&KeyRing::single(key(u32::MAX, 1)), |e| key(e, 2));
        assert_eq!(w.accept_key().map(GroupKey::epoch), Some(0));
        let (w2, _) = rotate(&w, |_| unreachable!());
        assert_eq!(w2.send_key().epoch(), 0);
    }

    #[test]
    fn save_refuses_to_overwrite_and_writes_mode_0600() {
        let dir = std::env::temp_dir().join(format!("mpcomm-keyfile-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("k");
        let _ = std::fs::remove_file(&path);
        let ring = KeyRing::single(generate(1).unwrap());
        save(&path, &ring, false).unwrap();
        assert_eq!(load(&path).unwrap(), ring);
        let err = save(&path, &KeyRing::single(key(1, 1)), false).unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(load(&path).unwrap(), ring, "the old key is intact");
        save(&path, &KeyRing::single(key(2, 2)), true).unwrap();
        assert_eq!(load(&path).unwrap().send_key().epoch(), 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
