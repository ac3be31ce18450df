//! Names people give things (miners, pools, addresses, tokens) must be visible: a name made of
//! zero-width or bidirectional-control characters looks empty, or like another name, on every
//! page.

/// Characters that take no space: zero-width spaces and joiners, the word joiner and the
/// invisible operators, the BOM, the soft hyphen, the Mongolian vowel separator, the combining
/// grapheme joiner and the Hangul fillers; and the bidirectional marks, embeddings, overrides
/// and isolates (Unicode 15, UAX #9 table 4).
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{180E}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{3164}'
            | '\u{FEFF}'
            | '\u{FFA0}'
    )
}

/// Whether nothing of `name` would be seen: it is empty once the invisible characters above,
/// white space and control characters are taken out.
pub fn looks_empty(name: &str) -> bool {
    name.chars()
        .all(|c| is_invisible(c) || c.is_whitespace() || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_names_are_caught() {
        for bad in [
            "",
            "   ",
            "\u{200B}",
            "\u{200B}\u{200C}\u{200D}\u{FEFF}",
            "\u{202E}\u{202D}",
            "\u{2066}\u{2069} \u{00A0}",
            "\u{3164}",
        ] {
            assert!(looks_empty(bad), "{bad:?}");
        }
        for ok in ["garage-1", "\u{202E}1-egarag", "шкаф", "🐑", "a\u{200B}b"] {
            assert!(!looks_empty(ok), "{ok:?}");
        }
    }
}
