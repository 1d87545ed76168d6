//! Tests of the masker: examples, and a property test of streaming against one-shot masking.

use proptest::prelude::*;

use super::*;

/// A deliberately naive leftmost-longest replacement, independent of the automaton.
fn reference_mask(text: &[u8], patterns: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut position = 0;
    while position < text.len() {
        let longest = patterns
            .iter()
            .filter(|pattern| !pattern.is_empty() && text[position..].starts_with(pattern))
            .map(Vec::len)
            .max();
        match longest {
            Some(len) => {
                out.extend_from_slice(MASK);
                position += len;
            }
            None => {
                out.push(text[position]);
                position += 1;
            }
        }
    }
    out
}

fn masker(secrets: &[&str]) -> Masker {
    Masker::new(secrets).expect("small secret sets always compile")
}

fn stream_in_pieces(masker: &Masker, text: &[u8], cuts: &[usize], idle_after: &[bool]) -> Vec<u8> {
    let mut stream = masker.stream();
    let mut out = Vec::new();
    let mut start = 0;
    for (index, &cut) in cuts.iter().enumerate() {
        let end = cut.clamp(start, text.len());
        stream.feed(&text[start..end], &mut out);
        if idle_after.get(index).copied().unwrap_or(false) {
            stream.release_undecided(&mut out);
        }
        start = end;
    }
    stream.feed(&text[start..], &mut out);
    stream.finish(&mut out);
    out
}

#[test]
fn secrets_are_replaced_and_other_text_is_kept() {
    let masker = masker(&["hunter2", ""]);
    assert_eq!(
        masker.mask(b"pw=hunter2; again hunter2\n"),
        b"pw=******; again ******\n"
    );
    assert_eq!(masker.mask_str("nothing here"), "nothing here");
}

#[test]
fn empty_secrets_mask_nothing() {
    let masker = masker(&["", ""]);
    assert!(masker.is_empty());
    assert_eq!(masker.mask(b"abc"), b"abc");
}

#[test]
fn a_multi_line_secret_is_masked_whole_and_line_by_line() {
    let masker = masker(&["-----BEGIN KEY-----\nAAAA\n-----END KEY-----"]);
    assert_eq!(
        masker.mask(b"x -----BEGIN KEY-----\nAAAA\n-----END KEY----- y"),
        b"x ****** y"
    );
    assert_eq!(masker.mask(b"only AAAA here\n"), b"only ****** here\n");
}

#[test]
fn a_secret_fed_byte_by_byte_never_leaks_a_prefix() {
    let masker = masker(&["topsecret"]);
    let mut stream = masker.stream();
    let mut out = Vec::new();
    for byte in b"say topsecret now\n" {
        stream.feed(std::slice::from_ref(byte), &mut out);
        stream.release_undecided(&mut out);
        assert!(
            !String::from_utf8_lossy(&out).contains("top"),
            "leaked: {out:?}"
        );
    }
    stream.finish(&mut out);
    assert_eq!(out, b"say ****** now\n");
}

#[test]
fn release_undecided_lets_a_finished_line_through() {
    let masker = masker(&["a-long-secret-value"]);
    let mut stream = masker.stream();
    let mut out = Vec::new();
    stream.feed(b"hello\n", &mut out);
    assert_eq!(
        out, b"",
        "short input is held while it could still begin a secret"
    );
    stream.release_undecided(&mut out);
    assert_eq!(out, b"hello\n");
    assert_eq!(stream.held_len(), 0);
}

proptest! {
    #[test]
    fn streaming_equals_one_shot_masking(
        secrets in prop::collection::vec("[ab\n]{0,5}", 1..4),
        pieces in prop::collection::vec(("[abc\n]{0,12}", any::<bool>()), 0..8),
        cuts in prop::collection::vec(0usize..120, 0..12),
        idle_after in prop::collection::vec(any::<bool>(), 0..12),
    ) {
        // Build a text that contains the secrets often, with noise in between.
        let mut text = Vec::new();
        for (index, (noise, insert)) in pieces.iter().enumerate() {
            text.extend_from_slice(noise.as_bytes());
            if *insert {
                text.extend_from_slice(secrets[index % secrets.len()].as_bytes());
            }
        }
        let mut cuts = cuts;
        cuts.sort_unstable();
        let masker = masker(&secrets.iter().map(String::as_str).collect::<Vec<_>>());
        let one_shot = masker.mask(&text);
        let patterns: Vec<Vec<u8>> =
            masker.patterns.as_ref().map(|patterns| patterns.texts.clone()).unwrap_or_default();
        prop_assert_eq!(&one_shot, &reference_mask(&text, &patterns));
        prop_assert_eq!(stream_in_pieces(&masker, &text, &cuts, &idle_after), one_shot);
    }
}

#[test]
fn debug_output_never_shows_a_secret() {
    let masker = masker(&["hunter2"]);
    let mut stream = masker.stream();
    stream.feed(b"hunt", &mut Vec::new());
    let task = crate::task::JobTask {
        env: vec![("TOKEN".to_owned(), "hunter2".to_owned())],
        secrets: vec!["hunter2".to_owned()],
        ..crate::task::JobTask::default()
    };
    let shown = format!("{masker:?} {stream:?} {task:?}");
    assert!(!shown.contains("hunt"), "{shown}");
    assert!(shown.contains("TOKEN"), "{shown}");
}
