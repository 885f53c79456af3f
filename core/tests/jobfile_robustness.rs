//! Job files are untrusted input: whatever the text, parsing returns a graph or an error with a
//! position inside the text, and never panics.

use proptest::prelude::*;
use rivulet_core::jobfile::{parse_job, ParseOptions};

const EXAMPLES: [&str; 4] = [
    include_str!("../../examples/quickstart.toml"),
    include_str!("../../examples/w1.toml"),
    include_str!("../../examples/w2.toml"),
    include_str!("../../examples/sales_batch.toml"),
];

fn check(text: &str) {
    if let Err(e) = parse_job(text, &ParseOptions::default()) {
        let lines = text.split('\n').count();
        assert!(e.line >= 1 && e.line <= lines.max(1), "line {} of {lines}: {e}", e.line);
        assert!(e.column >= 1, "{e}");
        assert!(!e.message.is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn mutated_examples_never_panic(
        example in 0usize..EXAMPLES.len(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..4, "[ -~\n]{0,12}"), 1..6),
    ) {
        let mut text = EXAMPLES[example].to_owned();
        for (at, kind, insert) in edits {
            let mut i = at.index(text.len() + 1);
            while !text.is_char_boundary(i) {
                i -= 1;
            }
            match kind {
                // Delete a few characters.
                0 => {
                    let mut end = (i + insert.len().max(1)).min(text.len());
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.replace_range(i..end, "");
                }
                // Insert arbitrary printable text.
                1 => text.insert_str(i, &insert),
                // Swap a number for an extreme one.
                2 => text.insert_str(i, ["-1", "0", "99999999999999999999", "9223372036854775807"][insert.len() % 4]),
                // Duplicate a line.
                _ => {
                    let start = text[..i].rfind('\n').map_or(0, |s| s + 1);
                    let end = text[i..].find('\n').map_or(text.len(), |e| i + e);
                    let line = format!("{}\n", &text[start..end]);
                    text.insert_str(start, &line);
                }
            }
        }
        check(&text);
    }
}
