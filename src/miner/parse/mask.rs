//! Secret masking: the pool password never reaches the database or a page.

use std::borrow::Cow;

use super::scan::{json_string, params_array};

const MASK: &str = "***";

/// The line with the pool password masked ("***"): authorize params' second element, `poolPassword: x` echo, `"poolPassword": "x"` in the JSON dump.
///
/// Also masks any other JSON string whose key mentions a password (`"wifiPassword"`,
/// `"pool_pass"`) and any `...Password: value` echo, so forks that print more are covered.
pub fn mask_secrets(line: &str) -> Cow<'_, str> {
    // Fast path: almost no line mentions a password.
    if !contains_ignore_ascii_case(line, "pass") && !line.contains("mining.authorize") {
        return Cow::Borrowed(line);
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    authorize_password_span(line, &mut spans);
    json_password_spans(line, &mut spans);
    echo_password_spans(line, &mut spans);
    if spans.is_empty() {
        return Cow::Borrowed(line);
    }
    spans.sort_unstable();
    let mut out = String::with_capacity(line.len());
    let mut pos = 0;
    for (s, e) in spans {
        if s < pos {
            continue; // overlaps a span already masked
        }
        out.push_str(&line[pos..s]);
        out.push_str(MASK);
        pos = e;
    }
    out.push_str(&line[pos..]);
    Cow::Owned(out)
}

fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    let (hay, needle) = (hay.as_bytes(), needle.as_bytes());
    let Some((&first, rest)) = needle.split_first() else {
        return true;
    };
    let first = first.to_ascii_lowercase();
    // Only positions whose first byte matches are compared in full (runs once per line).
    hay.iter().enumerate().any(|(i, b)| {
        b.to_ascii_lowercase() == first
            && hay
                .get(i + 1..i + 1 + rest.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(rest))
    })
}

/// Second string of `"params": ["wallet", "password"]` in a `mining.authorize` request.
fn authorize_password_span(line: &str, spans: &mut Vec<(usize, usize)>) {
    if !line.contains("mining.authorize") {
        return;
    }
    let Some(r) = params_array(line) else { return };
    let r = r.trim_start();
    let Some((_, len)) = json_string(r) else {
        return;
    };
    let after = r[len..].trim_start();
    let Some(second) = after.strip_prefix(',').map(str::trim_start) else {
        return;
    };
    if let Some((value, len)) = json_string(second) {
        if !value.is_empty() {
            let start = line.len() - second.len() + 1;
            spans.push((start, start + len - 2));
        }
    }
}

/// `"<key with pass in it>": "value"` anywhere in the line.
fn json_password_spans(line: &str, spans: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(rel) = line[i..].find('"') {
        let at = i + rel;
        let Some((key, len)) = json_string(&line[at..]) else {
            return; // unterminated string: nothing further is JSON we can read
        };
        i = at + len;
        let rest = &line[i..];
        let Some(value) = rest.trim_start().strip_prefix(':').map(str::trim_start) else {
            continue;
        };
        if !contains_ignore_ascii_case(&key, "pass") {
            continue;
        }
        let vstart = line.len() - value.len();
        match json_string(value) {
            Some((v, vlen)) => {
                if !v.is_empty() {
                    spans.push((vstart + 1, vstart + vlen - 1));
                }
                i = vstart + vlen;
            }
            // The dump was cut inside the value: hide whatever follows the quote.
            None if value.starts_with('"') => {
                spans.push((vstart + 1, line.len()));
                return;
            }
            None => {}
        }
    }
}

/// `poolPassword: x` and other `...password: value` echoes (not JSON: no quote before
/// the colon). The value runs to the end of the line.
fn echo_password_spans(line: &str, spans: &mut Vec<(usize, usize)>) {
    const KEY: &[u8] = b"password:";
    let bytes = line.as_bytes();
    let mut i = 0;
    while i + KEY.len() <= bytes.len() {
        if bytes[i..i + KEY.len()].eq_ignore_ascii_case(KEY) {
            let mut v = i + KEY.len();
            if bytes.get(v) == Some(&b' ') {
                v += 1;
            }
            if v < bytes.len() {
                spans.push((v, bytes.len()));
            }
            return;
        }
        i += 1;
    }
}
