//! Text a client chose (an SDP `mid` or `rid`, an error that quotes its SDP or candidate),
//! fit for a log line: every control character escaped, so a `\n` cannot start a forged
//! line, and cut short, so a large input cannot grow the log. Log fields that may carry
//! such text show it through [`Untrusted`]; names, chat and whole SDPs are never logged.
use std::fmt::{self, Display, Write};

/// Characters shown at most; longer text ends with `…`.
pub const MAX_CHARS: usize = 80;

/// Shows `T`'s text escaped and cut to [`MAX_CHARS`].
pub struct Untrusted<'a, T: ?Sized>(pub &'a T);

impl<T: Display + ?Sized> Display for Untrusted<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.0.to_string();
        for (i, c) in text.chars().enumerate() {
            if i == MAX_CHARS {
                return f.write_char('…');
            }
            if c.is_control() || !c.is_ascii() && !c.is_alphanumeric() {
                for e in c.escape_default() {
                    f.write_char(e)?;
                }
            } else {
                f.write_char(c)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped_and_long_text_cut() {
        let forged = "0\n2026-01-01T00:00:00Z  INFO roomcast: admin logged in";
        let shown = Untrusted(forged).to_string();
        assert!(!shown.contains('\n'), "{shown}");
        assert!(shown.starts_with("0\\n2026"), "{shown}");
        assert_eq!(
            Untrusted("a\r\u{1b}[2J\u{202e}").to_string(),
            "a\\r\\u{1b}[2J\\u{202e}"
        );
        let long = "x".repeat(10_000);
        let shown = Untrusted(long.as_str()).to_string();
        assert_eq!(shown.chars().count(), MAX_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(Untrusted("video-1 Zoë").to_string(), "video-1 Zoë");
    }
}
