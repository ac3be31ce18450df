//! Small scanners. All take `&str`, skip leading blanks, and return what follows.

/// The marker at `start` is not glued to a preceding word.
pub(super) fn word_start(line: &str, start: usize) -> bool {
    line[..start]
        .chars()
        .next_back()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
}

pub(super) fn float_at(line: &str, end: usize) -> Option<f64> {
    parse_f64(&line[end..]).map(|(v, _)| v)
}

pub(super) fn int_at(line: &str, end: usize) -> Option<i64> {
    parse_i64(&line[end..]).map(|(v, _)| v)
}

/// Leading IPv4/IPv6 text after the marker, cut where interleaved output starts.
pub(super) fn ip_at(line: &str, end: usize) -> Option<String> {
    let r = line[end..].trim_start();
    let n = r
        .bytes()
        .take_while(|b| b.is_ascii_hexdigit() || *b == b'.' || *b == b':')
        .count();
    let ip = &r[..n];
    let plausible = ip.bytes().any(|b| b.is_ascii_digit()) && ip.contains(['.', ':']);
    plausible.then(|| ip.to_owned())
}

pub(super) fn parse_u64(s: &str) -> Option<(u64, &str)> {
    let s = s.trim_start();
    let n = s.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

pub(super) fn parse_i64(s: &str) -> Option<(i64, &str)> {
    let s = s.trim_start();
    let sign = usize::from(s.starts_with(['-', '+']));
    let n = s[sign..].bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..sign + n].parse().ok()?, &s[sign + n..]))
}

/// A decimal number as printf/Arduino print it (`-1.5`, `0.000150000000`, `1e-05`).
pub(super) fn parse_f64(s: &str) -> Option<(f64, &str)> {
    let s = s.trim_start();
    let b = s.as_bytes();
    let mut i = usize::from(b.first().is_some_and(|c| *c == b'-' || *c == b'+'));
    let int_digits = b[i..].iter().take_while(|c| c.is_ascii_digit()).count();
    i += int_digits;
    let mut frac_digits = 0;
    if b.get(i) == Some(&b'.') {
        frac_digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        i += 1 + frac_digits;
    }
    if int_digits + frac_digits == 0 {
        return None;
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(b.get(j), Some(b'-' | b'+')) {
            j += 1;
        }
        let exp_digits = b[j.min(b.len())..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        if exp_digits > 0 {
            i = j + exp_digits;
        }
    }
    let v: f64 = s[..i].parse().ok()?;
    v.is_finite().then_some((v, &s[i..]))
}

/// Best difficulty as `suffix_string()` prints it: `0.0312`, `1.23K`, `  2.34M`, `12T`.
pub(super) fn parse_suffixed(s: &str) -> Option<f64> {
    let (v, rest) = parse_f64(s)?;
    let mult = match rest.trim_start().chars().next() {
        Some('k' | 'K') => 1e3,
        Some('M') => 1e6,
        Some('G') => 1e9,
        Some('T') => 1e12,
        Some('P') => 1e15,
        Some('E') => 1e18,
        _ => 1.0,
    };
    Some(v * mult)
}

/// `0  01:23:45` (days, two spaces, hh:mm:ss); also `0d 01:23:45` and a bare `01:23:45`.
pub(super) fn parse_uptime(s: &str) -> Option<u64> {
    let (first, rest) = parse_u64(s)?;
    let (days, hms) = if rest.starts_with(':') {
        (0, s.trim_start())
    } else {
        let rest = rest.strip_prefix('d').unwrap_or(rest);
        (first, rest)
    };
    let (h, r) = parse_u64(hms)?;
    let (m, r) = parse_u64(r.strip_prefix(':')?)?;
    let (sec, _) = parse_u64(r.strip_prefix(':')?)?;
    if m >= 60 || sec >= 60 {
        return None;
    }
    days.checked_mul(86_400)?
        .checked_add(h.checked_mul(3_600)?)?
        .checked_add(m * 60 + sec)
}

/// Text right after `"key"` and its colon, in a JSON object on the line.
pub(super) fn json_value_after_key<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let mut from = 0;
    while let Some(rel) = s[from..].find(key) {
        let at = from + rel;
        from = at + key.len();
        if at == 0 || s.as_bytes()[at - 1] != b'"' || !s[from..].starts_with('"') {
            continue;
        }
        if let Some(v) = s[from + 1..].trim_start().strip_prefix(':') {
            return Some(v.trim_start());
        }
    }
    None
}

/// Inside the `"params": [` array of a stratum request: the text after `[`.
pub(super) fn params_array(line: &str) -> Option<&str> {
    json_value_after_key(line, "params")?.strip_prefix('[')
}

/// First element of `params` when it is a string.
pub(super) fn first_param_string(line: &str) -> Option<String> {
    let r = params_array(line)?.trim_start();
    json_string(r).map(|(s, _)| s)
}

/// A JSON string literal at the start of `s` (which must begin with `"`): its decoded
/// value and its byte length including the quotes.
pub(super) fn json_string(s: &str) -> Option<(String, usize)> {
    let body = s.strip_prefix('"')?;
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, i + 2)),
            '\\' => {
                let (_, e) = chars.next()?;
                match e {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    'b' => out.push('\u{8}'),
                    'f' => out.push('\u{c}'),
                    'u' => {
                        let mut code = 0u32;
                        for _ in 0..4 {
                            let (_, h) = chars.next()?;
                            code = code * 16 + h.to_digit(16)?;
                        }
                        out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                    }
                    other => out.push(other),
                }
            }
            c => out.push(c),
        }
    }
    None
}
