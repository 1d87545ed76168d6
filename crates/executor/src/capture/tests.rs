//! Tests of line splitting and batching, without processes.

use super::*;

fn collect(pushes: &[(&[u8], i64)], masker: &Masker) -> Vec<LogChunk> {
    let mut lines = LineCapture::new(3, LogStream::Stdout, masker);
    let mut ready = Vec::new();
    let mut last_at = 0;
    for (raw, at) in pushes {
        lines.push(raw, Timestamp::from_millis(*at), &mut ready);
        last_at = *at;
    }
    lines.finish(Timestamp::from_millis(last_at + 1), &mut ready);
    ready
}

fn joined(chunks: &[LogChunk]) -> Vec<u8> {
    chunks
        .iter()
        .flat_map(|chunk| chunk.data.iter().copied())
        .collect()
}

#[test]
fn every_chunk_holds_complete_lines_and_a_partial_last_line_gets_a_newline() {
    let chunks = collect(&[(b"one\ntw", 10), (b"o\nthree", 10)], &Masker::none());
    assert_eq!(joined(&chunks), b"one\ntwo\nthree\n");
    for chunk in &chunks {
        assert_eq!(chunk.data.last(), Some(&b'\n'));
        assert_eq!((chunk.step, chunk.stream), (3, LogStream::Stdout));
    }
}

#[test]
fn lines_completed_in_different_milliseconds_get_their_own_timestamps() {
    let chunks = collect(&[(b"a\n", 10), (b"b\nc", 10), (b"\n", 25)], &Masker::none());
    let stamped: Vec<(i64, &[u8])> = chunks
        .iter()
        .map(|chunk| (chunk.at.as_millis(), chunk.data.as_slice()))
        .collect();
    assert_eq!(stamped, vec![(10, &b"a\nb\n"[..]), (25, &b"c\n"[..])]);
}

#[test]
fn a_line_longer_than_the_limit_is_cut_into_pieces() {
    let long = vec![b'x'; 2 * MAX_LINE_BYTES + 10];
    let mut input = long.clone();
    input.extend_from_slice(b"\nshort\n");
    let chunks = collect(&[(&input, 1)], &Masker::none());
    let data = joined(&chunks);
    let lines: Vec<&[u8]> = data.split(|byte| *byte == b'\n').collect();
    let lengths: Vec<usize> = lines.iter().map(|line| line.len()).collect();
    assert_eq!(lengths, vec![MAX_LINE_BYTES, MAX_LINE_BYTES, 10, 5, 0]);
}

#[test]
fn many_lines_are_batched_into_few_chunks() {
    let line = b"0123456789012345678901234567890123456789\n";
    let input: Vec<u8> = line
        .iter()
        .copied()
        .cycle()
        .take(line.len() * 10_000)
        .collect();
    let pushes: Vec<(&[u8], i64)> = input.chunks(4096).map(|piece| (piece, 7)).collect();
    let chunks = collect(&pushes, &Masker::none());
    assert_eq!(joined(&chunks), input);
    assert!(
        chunks.len() <= input.len() / CHUNK_BYTES + 2,
        "{} chunks",
        chunks.len()
    );
}

#[test]
fn a_secret_split_across_reads_and_lines_is_masked() {
    let masker = Masker::new(&["first-half\nsecond-half"]).expect("compiles");
    let chunks = collect(
        &[(b"x first-", 1), (b"half\nsec", 2), (b"ond-half y\n", 3)],
        &masker,
    );
    assert_eq!(joined(&chunks), b"x ****** y\n");
}

#[test]
fn idle_ships_a_finished_line_even_while_the_masker_holds_bytes() {
    let masker = Masker::new(&["a-rather-long-secret"]).expect("compiles");
    let mut lines = LineCapture::new(0, LogStream::Stderr, &masker);
    let mut ready = Vec::new();
    lines.push(b"done\na-rather", Timestamp::from_millis(5), &mut ready);
    assert!(ready.is_empty());
    lines.idle(Timestamp::from_millis(60), &mut ready);
    assert_eq!(joined(&ready), b"done\n");
    assert!(lines.has_pending(), "the secret prefix stays held");
}
