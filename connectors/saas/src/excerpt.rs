//! Excerpts of a server's text for messages, cut on a character boundary: `String::truncate` panics inside a
//! character, and a server's text may put one anywhere.

/// `text` cut to at most `max_bytes` bytes on a character boundary, with `…` when it was cut.
pub fn excerpt(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        text.truncate(text.floor_char_boundary(max_bytes));
        text.push('…');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saas_excerpt_cuts_inside_no_character() {
        assert_eq!(excerpt("aé".to_string(), 2), "a…");
        assert_eq!(excerpt("ab".to_string(), 2), "ab");
        assert_eq!(excerpt("日本語".to_string(), 4), "日…");
    }
}
