//! Glob patterns over an object store: the pattern's literal prefix is listed, and
//! the keys are matched like a local glob (sorted) — what `Dataset.from_files` needs
//! for `s3://bucket/train/*.npy`.

use super::object::{list, ObjectInfo};
use super::{Location, RemoteUrl};
use crate::error::{Error, Result};

/// Whether `s` holds a glob wildcard (`*`, `?`, `[`).
pub fn has_wildcard(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// The objects whose URLs match the glob `pattern` (a URL whose key may hold `*`,
/// `?`, `[...]` / `[!...]` — matching within one path segment — and `**`, matching
/// across segments), sorted by URL. One listing of the pattern's literal prefix.
pub fn glob(pattern: &RemoteUrl) -> Result<Vec<ObjectInfo>> {
    let text = pattern.as_str();
    let first = text.find(['*', '?', '[']).unwrap_or(text.len());
    let prefix = &text[..first];
    let listed = match Location::parse(prefix, pattern.options())? {
        Location::Remote(r) => list(&r)?,
        Location::Local(_) => {
            return Err(Error::InvalidArgument(format!("{text}: not a URL pattern")))
        }
    };
    Ok(listed
        .into_iter()
        .filter(|o| matches(text.as_bytes(), o.url.as_bytes()))
        .collect())
}

/// Glob match of `name` against `pat`.
fn matches(pat: &[u8], name: &[u8]) -> bool {
    match pat.first() {
        None => name.is_empty(),
        Some(b'*') if pat.get(1) == Some(&b'*') => {
            let rest = &pat[2..];
            (0..=name.len()).any(|i| matches(rest, &name[i..]))
        }
        Some(b'*') => {
            let rest = &pat[1..];
            let seg = name.iter().position(|&c| c == b'/').unwrap_or(name.len());
            (0..=seg).any(|i| matches(rest, &name[i..]))
        }
        Some(b'?') => name.first().is_some_and(|&c| c != b'/') && matches(&pat[1..], &name[1..]),
        Some(b'[') => {
            let Some(close) = pat.iter().skip(2).position(|&c| c == b']').map(|i| i + 2) else {
                return name.first() == Some(&b'[') && matches(&pat[1..], &name[1..]);
            };
            let Some(&c) = name.first() else {
                return false;
            };
            let (negate, set) = match pat[1] {
                b'!' | b'^' => (true, &pat[2..close]),
                _ => (false, &pat[1..close]),
            };
            let mut hit = false;
            let mut i = 0;
            while i < set.len() {
                if i + 2 < set.len() && set[i + 1] == b'-' {
                    hit |= (set[i]..=set[i + 2]).contains(&c);
                    i += 3;
                } else {
                    hit |= set[i] == c;
                    i += 1;
                }
            }
            c != b'/' && hit != negate && matches(&pat[close + 1..], &name[1..])
        }
        Some(&p) => name.first() == Some(&p) && matches(&pat[1..], &name[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn glob_rules() {
        let m = |p: &str, n: &str| matches(p.as_bytes(), n.as_bytes());
        assert!(m("s3://b/d/*.npy", "s3://b/d/x.npy"));
        assert!(!m("s3://b/d/*.npy", "s3://b/d/e/x.npy"));
        assert!(m("s3://b/**/*.npy", "s3://b/d/e/x.npy"));
        assert!(m("s3://b/d/x?.npy", "s3://b/d/x1.npy"));
        assert!(!m("s3://b/d/x?.npy", "s3://b/d/x12.npy"));
        assert!(m("s3://b/d/[a-c]*.npy", "s3://b/d/b7.npy"));
        assert!(!m("s3://b/d/[!a-c]*.npy", "s3://b/d/b7.npy"));
        assert!(!m("s3://b/d/*.npy", "s3://b/d/x.npz"));
    }
}
